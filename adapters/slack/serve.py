"""Running the Slack adapter next to the core: Socket Mode (default) or HTTP at /slack/events.

    adapter = SlackAdapter(core, settings)
    await adapter.start()      # registers the platform, checks the token, connects or listens
    ...                        # (the caller resumes sessions once every adapter has started)
    await adapter.stop()       # stops receiving, lets running listeners finish

`serve(core, settings, stop_event)` does all three for a caller that runs only Slack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Final

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp

from adapters.slack.app import SlackDeps, build_app
from adapters.slack.inbound import SlackEndpoint
from adapters.slack.platform import RATE_LIMIT_RETRIES, SlackPlatform, error_code, make_client
from bot.core import Core
from bot.settings import Settings

log = logging.getLogger(__name__)

PATH: Final = "/slack/events"
STOP_GRACE_S: Final = 10.0
CONNECT_TIMEOUT_S: Final = 30.0


class SlackStartError(Exception):
    """Slack cannot be started with these settings; the message is one line for the admin."""


def wanted(settings: Settings) -> bool:
    """Whether the admin set Slack up at all (then `config_problem` must be None to start it)."""
    return any(
        _secret(x)
        for x in (settings.slack_bot_token, settings.slack_app_token, settings.slack_signing_secret)
    )


def config_problem(settings: Settings) -> str | None:
    """What is missing or wrong for the configured mode, in one line; None when all is there."""
    bot, app, secret = (
        _secret(settings.slack_bot_token),
        _secret(settings.slack_app_token),
        _secret(settings.slack_signing_secret),
    )
    if not bot:
        return "Slack is partly configured: set SLACK_BOT_TOKEN (xoxb-...) too, see adapters/slack/README.md."
    if not bot.startswith("xoxb-"):
        return "SLACK_BOT_TOKEN must be the bot token (xoxb-...), from OAuth & Permissions."
    if settings.slack_mode == "socket":
        if not app:
            return (
                "SLACK_MODE=socket needs SLACK_APP_TOKEN (xapp-..., Basic Information > App-Level Tokens, "
                "scope connections:write); or set SLACK_MODE=http with SLACK_SIGNING_SECRET."
            )
        if not app.startswith("xapp-"):
            return "SLACK_APP_TOKEN must be an app-level token (xapp-...), from Basic Information."
    elif not secret:
        return "SLACK_MODE=http needs SLACK_SIGNING_SECRET (Basic Information > App Credentials)."
    return None


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()).strip() if getter else ""


class SlackAdapter:
    def __init__(
        self,
        core: Core,
        settings: Settings,
        *,
        host: str = "0.0.0.0",
        rate_limit_retries: int = RATE_LIMIT_RETRIES,
    ) -> None:
        if problem := config_problem(settings):
            raise SlackStartError(problem)
        self.core = core
        self.settings = settings
        self.mode = settings.slack_mode
        self.host = host
        self.port = settings.slack_http_port
        client = make_client(_secret(settings.slack_bot_token), settings.slack_api_url, rate_limit_retries)
        self.platform = SlackPlatform(client)
        self.deps = SlackDeps(core=core, settings=settings, platform=self.platform)
        self.app: AsyncApp = build_app(self.deps)
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None

    async def start(self) -> None:
        if self.platform.client.session is None:
            # One HTTP session (and its keep-alive connections) for every Web API call: without
            # one, slack_sdk opens and closes a connection for each call.
            self.platform.client.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.platform.client.timeout)
            )
        try:
            auth = await self.platform.client.auth_test()
        except Exception as exc:
            await self._close_session()
            raise SlackStartError(f"Slack refused SLACK_BOT_TOKEN: {error_code(exc)}") from exc
        self.core.add_platform(self.platform)
        if self.mode == "http":
            endpoint = SlackEndpoint(self.app, _secret(self.settings.slack_signing_secret))
            self._runner = web.AppRunner(endpoint.web_app(PATH), access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self.port)
            try:
                await site.start()
            except OSError as exc:
                await self._runner.cleanup()
                self._runner = None
                await self._close_session()
                raise SlackStartError(f"Cannot listen on port {self.port}: {exc.strerror or exc}") from exc
            self.port = int(self._runner.addresses[0][1])
            where = f"HTTP on {self.host}:{self.port}{PATH}"
        else:
            app_token = _secret(self.settings.slack_app_token)
            try:  # the handler would retry a refused token forever: say so once instead
                await self.platform.client.apps_connections_open(app_token=app_token)
            except Exception as exc:
                await self._close_session()
                raise SlackStartError(f"Slack refused SLACK_APP_TOKEN: {error_code(exc)}") from exc
            self._socket = AsyncSocketModeHandler(self.app, app_token)
            try:
                await asyncio.wait_for(self._socket.connect_async(), CONNECT_TIMEOUT_S)
            except TimeoutError as exc:
                await self.stop()
                raise SlackStartError("Could not connect to Slack in Socket Mode within 30 s") from exc
            where = "Socket Mode"
        self.platform.receiving = self.receiving  # for /healthz (bot/ops.py)
        log.info("Slack: connected as %s to %s, %s", auth.get("user"), auth.get("team"), where)

    async def receiving(self) -> bool:
        """Whether Slack can reach us: the Socket Mode connection is up, or the HTTP server listens."""
        if self._socket is not None:
            return bool(await self._socket.client.is_connected())
        return self._runner is not None

    async def stop(self) -> None:
        """Stop receiving, then give listeners that already acknowledged time to finish."""
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close_async()
            self._socket = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        try:
            await asyncio.wait_for(self.deps.inflight.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.warning("Slack: %d listeners still running at shutdown", self.deps.inflight.busy)
        await self._close_session()

    async def _close_session(self) -> None:
        session, self.platform.client.session = self.platform.client.session, None
        if session is not None:  # a later call (a run winding down) gets a session of its own
            await session.close()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}{PATH}"


async def serve(core: Core, settings: Settings, stop_event: asyncio.Event, *, host: str = "0.0.0.0") -> None:
    """Run Slack until `stop_event` is set. Sessions are resumed once it is connected."""
    adapter = SlackAdapter(core, settings, host=host)
    await adapter.start()
    try:
        await core.resume_all()
        await stop_event.wait()
    finally:
        await adapter.stop()
