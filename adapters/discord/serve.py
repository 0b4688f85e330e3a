"""Running the Discord adapter next to the core.

    adapter = DiscordAdapter(core, settings)
    await adapter.start()      # endpoints, login, registers the platform, connects, waits for READY
    ...                        # (the caller resumes sessions once every adapter has started)
    await adapter.stop()       # disconnects, lets running handlers finish

`serve(core, settings, stop)` does all three for a caller that runs Discord on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Final

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.app import AutoGPTClient
from adapters.discord.platform import NAME, DiscordPlatform, describe
from bot.core import Core
from bot.settings import Settings

log = logging.getLogger(__name__)

# What the bot needs in a channel (deploy/discord.md explains each); 311385246720.
PERMISSIONS: Final = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_application_commands=True,
)
SCOPES: Final = ("bot", "applications.commands")
READY_TIMEOUT_S: Final = 60.0
STOP_GRACE_S: Final = 10.0
INTENT_HINT: Final = (
    "DISCORD_MESSAGE_CONTENT=true needs the Message Content intent: turn it on in the Developer "
    "Portal (your application > Bot > Privileged Gateway Intents), or unset DISCORD_MESSAGE_CONTENT."
)


class DiscordStartError(Exception):
    """Discord cannot be started with these settings; the message is one line for the admin."""


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()).strip() if getter else ""


def configured(settings: Settings) -> str | None:
    """None when Discord can be started; else why not, in one line."""
    if not _secret(settings.discord_bot_token):
        return "DISCORD_BOT_TOKEN is not set (see deploy/discord.md)."
    api = yarl.URL(settings.discord_api_url.strip())
    if api.scheme not in ("http", "https") or not api.host:
        return f"DISCORD_API_URL must be an http(s) URL, got {settings.discord_api_url!r}."
    gateway = yarl.URL(settings.discord_gateway_url.strip())
    if gateway.scheme not in ("ws", "wss") or not gateway.host:
        return f"DISCORD_GATEWAY_URL must be a ws(s) URL, got {settings.discord_gateway_url!r}."
    return None


def invite_url(application_id: int | str) -> str:
    """The link that adds the bot to a server with the permissions it needs."""
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)


def configure_endpoints(api_url: str, gateway_url: str) -> None:
    """Point discord.py at a Discord: the REST base (`Route.BASE`, shared by webhooks and
    interaction callbacks) and the gateway a plain `Client` connects to. They are class
    attributes, so this is process-wide."""
    Route.BASE = api_url.strip().rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url.strip())


def intents(settings: Settings) -> discord.Intents:
    """The default (unprivileged) intents; Message Content only when asked for."""
    wanted = discord.Intents.default()
    wanted.message_content = settings.discord_message_content
    return wanted


class DiscordAdapter:
    def __init__(self, core: Core, settings: Settings, **client_options: Any) -> None:
        """`client_options` go to the discord.py client (e.g. `guild_ready_timeout`), plus
        `sync_commands=False` to leave the registered application commands alone."""
        if problem := configured(settings):
            raise DiscordStartError(problem)
        self.core = core
        self.settings = settings
        self.client_options = client_options
        self.client: AutoGPTClient | None = None
        self._connection: asyncio.Task[None] | None = None

    @property
    def platform(self) -> DiscordPlatform | None:
        return self.client.platform if self.client is not None else None

    async def start(self) -> None:
        s = self.settings
        configure_endpoints(s.discord_api_url, s.discord_gateway_url)
        client = AutoGPTClient(self.core.service, s, intents=intents(s), **self.client_options)
        self.client = client
        try:
            await client.login(_secret(s.discord_bot_token).removeprefix("Bot ").strip())
        except discord.LoginFailure as exc:
            await client.close()
            raise DiscordStartError(
                "Discord refused DISCORD_BOT_TOKEN: copy it again from the Bot page (Reset Token)."
            ) from exc
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            await client.close()
            raise DiscordStartError(f"Cannot reach Discord at {s.discord_api_url}: {describe(exc)}") from exc
        self.core.add_platform(client.platform)
        self._connection = asyncio.create_task(client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready())
        await asyncio.wait(
            {self._connection, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if not ready.done():
            ready.cancel()
            problem = self._why_down() or f"no READY within {READY_TIMEOUT_S:g} s"
            await self.stop()
            if self.core.platforms.get(NAME) is client.platform:
                del self.core.platforms[NAME]
            raise DiscordStartError(f"Could not connect to the Discord gateway: {problem}")
        user = client.user
        log.info("Discord: connected as %s (%s) to %d servers", user, user and user.id, len(client.guilds))
        if not client.guilds and client.application_id:
            log.warning(
                "Discord: the bot is in no server yet; add it with %s", invite_url(client.application_id)
            )

    def _why_down(self) -> str | None:
        task = self._connection
        if task is None or not task.done() or task.cancelled():
            return None
        exc = task.exception()
        if isinstance(exc, discord.PrivilegedIntentsRequired):
            return INTENT_HINT
        if isinstance(exc, discord.ConnectionClosed) and exc.code == 4004:
            return "Discord refused DISCORD_BOT_TOKEN (4004)."
        return describe(exc) if exc else "the connection ended"

    async def wait_closed(self) -> None:
        """Until the gateway connection ends for good (discord.py reconnects by itself until then)."""
        if self._connection is not None:
            await asyncio.wait({self._connection})

    async def stop(self) -> None:
        """Disconnect, then give handlers already running time to finish."""
        if self.client is not None:
            with contextlib.suppress(Exception):
                await self.client.close()
        if self._connection is not None:
            done, _ = await asyncio.wait({self._connection}, timeout=STOP_GRACE_S)
            if not done:
                self._connection.cancel()
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.handlers.inflight.wait(), STOP_GRACE_S)
            except TimeoutError:
                log.warning(
                    "Discord: %d handlers still running at shutdown", self.client.handlers.inflight.busy
                )

    @property
    def busy(self) -> int:
        return self.client.handlers.inflight.busy if self.client is not None else 0

    async def idle(self) -> None:
        """Until no handler runs (tests and shutdown)."""
        if self.client is not None:
            await self.client.handlers.inflight.wait()


async def serve(core: Core, settings: Settings, stop: asyncio.Event) -> None:
    """Run Discord until `stop` is set (or the connection ends for good). Sessions are resumed
    once it is connected."""
    adapter = DiscordAdapter(core, settings)
    await adapter.start()
    try:
        await core.resume_all()
        stopping = asyncio.create_task(stop.wait())
        closed = asyncio.create_task(adapter.wait_closed())
        await asyncio.wait({stopping, closed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopping, closed):
            task.cancel()
        if not stop.is_set():
            raise DiscordStartError(f"The Discord connection ended: {adapter._why_down()}")
    finally:
        await adapter.stop()
