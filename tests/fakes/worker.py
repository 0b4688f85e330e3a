"""A headless bot process for multi-process tests: the core with schedules and session recovery
running, settings from the environment. Prints `READY <holder id>` once started."""

from __future__ import annotations

import asyncio
import logging
import signal

from bot.core import Core
from bot.settings import load_settings
from tests.fakes.chat import TestPlatform


async def main() -> None:
    settings = load_settings()
    logging.basicConfig(level=logging.WARNING)
    core = await Core.start(settings)
    core.add_platform(TestPlatform())  # the sessions of these tests live on the test platform
    core.start_background()
    print(f"READY {core.engine.holder}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await core.close()


if __name__ == "__main__":
    asyncio.run(main())
