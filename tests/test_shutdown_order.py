"""Stopping `autogpt-bot run` (ROLE=all) while a command runs: it stops receiving first, lets the
drive wind down while the adapter can still post, and only then closes the adapter.

A real process on Discord (the fake gateway and REST API in this test's loop), a continuous
session whose first command reads a slow page. SIGTERM arrives while the command runs; during the
wind-down the step's message is edited to say the command is running (RUNNING_NOTICE_S), and the
command, ending within the engine's grace, has its result recorded. With the adapter closed
before the drive (the old order) that edit went through a closed discord.py client: "Session is
closed", a RuntimeError, and the session paused with an internal error.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from bot.models import SessionState, StepStatus
from bot.store.redis_store import RedisStore
from tests.conftest import REDIS_URL
from tests.fakes.discord_api import OWNER, TOKEN, FakeDiscord, Message
from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.fakes.pages import PageServer
from tests.test_console_e2e import clean_environ


@pytest.fixture
def pages() -> Iterator[PageServer]:
    with PageServer(second_address=False) as server:
        yield server


@pytest.fixture
def restore_endpoints() -> Iterator[None]:
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


def _step_one(api: FakeDiscord) -> Message | None:
    found = [m for m in api.messages.values() if m.title.startswith("Step 1 ")]
    return found[0] if found else None


async def test_sigterm_lets_the_running_drive_post_before_the_adapter_closes(
    tmp_path: Path,
    llm: ScriptedLLM,
    pages: PageServer,
    redis_prefix: str,
    restore_endpoints: None,
) -> None:
    url = f"{pages.base}/slow?s=1.0"
    llm.script("execution_reply", agent_reply("browse_website", {"url": url, "question": "what is it?"}))
    llm.default["text"] = lambda _body: "A slow page."
    env = clean_environ()
    env.update(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=llm.base_url,
        SMART_LLM="gpt-4o",
        FAST_LLM="gpt-4o-mini",
        DATA_DIR=str(tmp_path / "data"),
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX=redis_prefix,
        DISCORD_BOT_TOKEN=TOKEN,
        OPS_PORT="0",
        MEMORY_BACKEND="no_memory",
        BROWSE_ALLOWED_HOSTS="127.0.0.1",
        RUNNING_NOTICE_S="0.4",
        LOG_LEVEL="INFO",
    )
    log = tmp_path / "output.log"
    async with FakeDiscord() as api:
        env.update(DISCORD_API_URL=api.api_url, DISCORD_GATEWAY_URL=api.gateway_url)
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "adapters.cli", "run"),
                cwd=tmp_path,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + 30
            while "autogpt-bot is running" not in log.read_text(errors="replace"):
                assert proc.returncode is None, log.read_text(errors="replace")
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                await asyncio.sleep(0.05)
            await api.say(OWNER, "goal --continuous 3 read the slow page")
            deadline = time.monotonic() + 15
            while (step := _step_one(api)) is None:
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                await asyncio.sleep(0.02)
            while not pages.requests:  # the command is running: the page is being read
                assert time.monotonic() < deadline, log.read_text(errors="replace")
                await asyncio.sleep(0.02)
            edits_before = step.edits
            os.kill(proc.pid, signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        output = log.read_text(errors="replace")
        assert proc.returncode == 0, output
        assert "Session is closed" not in output and "Traceback" not in output, output
        # the wind-down's edit reached Discord: the step's message says its command is running
        assert step.edits > edits_before, output
        assert "running" in step.all_text().lower(), step.all_text()
        assert api.problems() == []

    store = RedisStore(REDIS_URL, redis_prefix)
    await store.open()
    try:
        [session] = await store.sessions_of(f"discord:{OWNER}")
    finally:
        await store.close()
    assert session is not None
    # the command ended within the grace and its result was recorded (not interrupted), and the
    # session was not paused by an error: it continues at the next start
    assert session.steps[0].status == StepStatus.DONE, session.steps[0]
    assert session.state == SessionState.RUNNING, (session.state, session.reason)
