"""The bot under test run against a `FakeDiscord`: its settings, and the core with the Discord
adapter started on them (moved here verbatim from tests/fakes/discord_api.py)."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from pydantic import SecretStr

from adapters.discord.adapter import DiscordAdapter
from adapters.discord.settings import DiscordSettings
from bot.core import Core
from bot.settings import Settings
from tests.fakes.discord import ADMIN, CHANNEL_ID, TOKEN, FakeDiscord, Message


def discord_settings(api: FakeDiscord, **overrides: Any) -> DiscordSettings:
    """Discord against `api` (`overrides`: DiscordSettings fields)."""
    values: dict[str, Any] = {
        "bot_token": SecretStr(TOKEN),
        "api_url": api.api_url,
        "gateway_url": api.gateway_url,
        "admin_user_ids": [str(ADMIN)],
    }
    values.update(overrides)
    return DiscordSettings(_env_file=None, **values)  # type: ignore[call-arg]


class DiscordBot:
    """The core and the Discord adapter, started against a `FakeDiscord` (and restartable)."""

    def __init__(self, settings: Settings, api: FakeDiscord, discord: DiscordSettings | None = None) -> None:
        self.settings = settings
        self.discord = discord or discord_settings(api)
        self.api = api
        self.core: Core | None = None
        self.adapter: DiscordAdapter | None = None

    @property
    def c(self) -> Core:
        assert self.core is not None
        return self.core

    async def start(self) -> None:
        self.core = await Core.start(self.settings)
        self.adapter = DiscordAdapter(self.core, self.discord, guild_ready_timeout=0.05)
        try:
            await self.adapter.start()
        except BaseException:
            await self.core.close()
            raise
        await self.core.resume_all()

    async def stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.stop()
        if self.core is not None:
            await self.core.close()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def settle(self, within: float = 15.0) -> None:
        """Until the bot has handled what it was sent and the sessions it kicked wait or ended:
        no handler runs, no session is driven, and the fake heard nothing for a moment."""
        assert self.adapter is not None
        deadline = time.monotonic() + within
        calm = 0
        while calm < 2:
            left = max(0.1, deadline - time.monotonic())
            assert time.monotonic() < deadline, "the bot did not settle"
            await asyncio.wait_for(self.adapter.idle(), left)
            await self.c.runner.idle(left)
            await asyncio.sleep(0.02)
            quiet = self.adapter.busy == 0 and self.c.runner.busy == 0 and self.api.quiet_for() >= 0.02
            calm = calm + 1 if quiet else 0

    # -- looking at the chat
    def root(self, session_id: str) -> Message:
        found = [m for m in self.api.in_channel(CHANNEL_ID) if f"`{session_id}`" in m.content]
        assert len(found) == 1, f"expected one root message of {session_id}, found {len(found)}"
        return found[0]

    def thread_id(self, session_id: str) -> int:
        return int(self.api.thread_of(self.root(session_id))["id"])

    def thread(self, session_id: str) -> list[Message]:
        return self.api.in_channel(self.thread_id(session_id))

    def step(self, session_id: str, step_no: int) -> Message:
        found = [m for m in self.thread(session_id) if m.title.startswith(f"Step {step_no} ·")]
        assert len(found) == 1, f"expected one message for step {step_no}, found {len(found)}"
        return found[0]

    def of_kind(self, session_id: str, title: str) -> list[Message]:
        return [m for m in self.thread(session_id) if m.title.startswith(title)]

    def session_id_in(self, texts: list[str]) -> str:
        for text in texts:
            if match := re.search(r"Started session (\w+)", text):
                return match.group(1)
        raise AssertionError(f"no session was started: {texts}")
