"""Slack as a `ChatAdapter`: Socket Mode (default) or HTTP at /slack/events, and the core's views
posted and edited through the Web API.

A session lives in the thread of its root message (`Place.thread` is the root's `ts`). Rate
limits (429) are retried by the client as Slack asks (`Retry-After`); a send Slack refuses for
good raises `PlatformError`, so the core pauses the session with the error recorded.

    adapter = SlackAdapter(core, SlackSettings())
    await adapter.start()      # checks the token, adds itself to the core, connects or listens
    ...                        # (the caller resumes sessions once every adapter has started)
    await adapter.stop()       # stops receiving, lets running listeners finish
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final

import aiohttp
from aiohttp import web
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack import blocks
from adapters.slack.app import build_app
from adapters.slack.blocks import SlackMessage, SlackRenderer
from adapters.slack.deps import SlackDeps
from adapters.slack.inbound import SlackEndpoint
from adapters.slack.settings import SlackSettings
from bot.adapter import AdapterStartError, ChatAdapter, Inflight, PlatformError
from bot.core import Core
from bot.models import MessageRef, Place
from bot.presenter.views import ResultView, SessionHeaderView, SummaryView, View

log = logging.getLogger(__name__)

NAME: Final = "slack"
PATH: Final = "/slack/events"
RATE_LIMIT_RETRIES: Final = 3
STOP_GRACE_S: Final = 10.0
CONNECT_TIMEOUT_S: Final = 30.0
HINTS: Final[dict[str, str]] = {
    "not_in_channel": "invite the app to the channel first (/invite @AutoGPT)",
    "channel_not_found": "the app cannot see this channel; invite it first (/invite @AutoGPT)",
    "is_archived": "the channel is archived",
    "ratelimited": "still rate limited after retrying",
    "invalid_auth": "check SLACK_BOT_TOKEN",
    "not_authed": "check SLACK_BOT_TOKEN",
    "account_inactive": "the app was uninstalled or its token revoked",
    "missing_scope": "reinstall the app with the scopes of deploy/slack-manifest.yaml",
}


class SlackStartError(AdapterStartError):
    """Slack cannot be started with these settings; the message is one line for the admin."""


def make_client(token: str, base_url: str, rate_limit_retries: int = RATE_LIMIT_RETRIES) -> AsyncWebClient:
    """The Web API client: connection errors, 5xx and 429 (after Retry-After) are retried."""
    return AsyncWebClient(
        token=token,
        base_url=base_url if base_url.endswith("/") else base_url + "/",
        timeout=30,
        retry_handlers=[
            AsyncConnectionErrorRetryHandler(max_retry_count=2),
            AsyncServerErrorRetryHandler(max_retry_count=2),
            AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries),
        ],
    )


def error_code(exc: BaseException) -> str:
    if isinstance(exc, SlackApiError):
        return str(exc.response.get("error") or f"HTTP {exc.response.status_code}")
    return f"{type(exc).__name__}: {exc}"


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()).strip() if getter else ""


class SlackAdapter(ChatAdapter):
    name: ClassVar[str] = NAME
    settings_class: ClassVar[type[SlackSettings]] = SlackSettings

    @classmethod
    def wanted(cls, settings: SlackSettings) -> bool:
        """Whether the admin set Slack up at all (then `problem` must be None to start it)."""
        return any(_secret(x) for x in (settings.bot_token, settings.app_token, settings.signing_secret))

    @classmethod
    def problem(cls, settings: SlackSettings) -> str | None:
        bot, app, secret = (
            _secret(settings.bot_token),
            _secret(settings.app_token),
            _secret(settings.signing_secret),
        )
        if not bot:
            return "Slack is partly set up: set SLACK_BOT_TOKEN (xoxb-...) too (adapters/slack/README.md)."
        if not bot.startswith("xoxb-"):
            return "SLACK_BOT_TOKEN must be the bot token (xoxb-...), from OAuth & Permissions."
        if settings.mode == "socket":
            if not app:
                return (
                    "SLACK_MODE=socket needs SLACK_APP_TOKEN (xapp-..., Basic Information > App-Level "
                    "Tokens, scope connections:write); or set SLACK_MODE=http with SLACK_SIGNING_SECRET."
                )
            if not app.startswith("xapp-"):
                return "SLACK_APP_TOKEN must be an app-level token (xapp-...), from Basic Information."
        elif not secret:
            return "SLACK_MODE=http needs SLACK_SIGNING_SECRET (Basic Information > App Credentials)."
        return None

    def __init__(
        self,
        core: Core,
        settings: SlackSettings,
        *,
        host: str = "0.0.0.0",
        rate_limit_retries: int = RATE_LIMIT_RETRIES,
        result_inline: int = blocks.RESULT_INLINE,
    ) -> None:
        if problem := self.problem(settings):
            raise SlackStartError(problem)

        self.core = core
        self.settings = settings
        self.mode = settings.mode
        self.host = host
        self.port = settings.http_port
        self.client = make_client(_secret(settings.bot_token), settings.api_url, rate_limit_retries)
        self.renderer = SlackRenderer(result_inline)
        self.inflight = Inflight()
        self.deps = SlackDeps(core=core, settings=settings, adapter=self)
        self.app: AsyncApp = build_app(self.deps)
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self.client.session is None:
            # One HTTP session (and its keep-alive connections) for every Web API call: without
            # one, slack_sdk opens and closes a connection for each call.
            self.client.session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.client.timeout)
            )
        try:
            auth = await self.client.auth_test()
        except Exception as exc:
            await self._close_session()
            raise SlackStartError(f"Slack refused SLACK_BOT_TOKEN: {error_code(exc)}") from exc
        self.core.add_platform(self)
        if self.mode == "http":
            endpoint = SlackEndpoint(self.app, _secret(self.settings.signing_secret))
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
            app_token = _secret(self.settings.app_token)
            try:  # the handler would retry a refused token forever: say so once instead
                await self.client.apps_connections_open(app_token=app_token)
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
        log.info("Slack: connected as %s to %s, %s", auth.get("user"), auth.get("team"), where)

    async def connected(self) -> bool:
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
            await asyncio.wait_for(self.inflight.wait(), STOP_GRACE_S)
        except TimeoutError:
            log.warning("Slack: %d listeners still running at shutdown", self.inflight.busy)
        await self._close_session()

    async def _close_session(self) -> None:
        session, self.client.session = self.client.session, None
        if session is not None:  # a later call (a run winding down) gets a session of its own
            await session.close()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}{PATH}"

    # ------------------------------------------------------------------ what the core calls

    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        msg = self.renderer.render(view)
        try:
            ts = await self._post(place.channel, None, msg)
        except PlatformError as exc:
            if "not_in_channel" not in str(exc) or not await self._join(place.channel):
                raise
            ts = await self._post(place.channel, None, msg)
        return place.model_copy(update={"thread": ts, "origin": None})

    async def post(self, place: Place, view: View) -> MessageRef:
        msg = self.renderer.render(view)
        # the final word also goes to the channel, so the outcome is seen without opening the thread
        broadcast = isinstance(view, SummaryView) and place.thread is not None
        ts = await self._post(place.channel, place.thread, msg, broadcast=broadcast)
        ref = MessageRef(platform=self.name, channel=place.channel, id=ts, thread=place.thread)
        if isinstance(view, ResultView):
            await self._attach(place, ref, view)
        return ref

    async def _attach(self, place: Place, ref: MessageRef, view: ResultView) -> None:
        """Upload the files that came with a result (a command's full output), or a long result
        whole; when that fails, the result's message says so."""
        uploads = [(f.filename, f.content, f.comment or f.name) for f in view.files]
        if not uploads and self.renderer.needs_attachment(view):
            uploads = [
                (
                    f"result-{view.session_id}-step{view.step_no}.txt",
                    view.output.encode("utf-8"),
                    f"The full result of step {view.step_no} ({view.command}), "
                    f"{len(view.output):,} characters.",
                )
            ]
        for filename, content, comment in uploads:
            try:
                await self.upload(place, filename, content, comment)
            except PlatformError as exc:  # the shortened result is posted; say the rest is missing
                log.warning("session %s: attaching a result failed: %s", view.session_id, exc)
                try:
                    await self._update(ref, self.renderer.result(view, attach_error=str(exc)))
                except PlatformError as again:
                    log.warning("session %s: could not say so: %s", view.session_id, again)
                return

    async def update(self, ref: MessageRef, view: View) -> None:
        await self._update(ref, self.renderer.render(view))

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        await self._call(
            "files.upload",
            self.client.files_upload_v2,
            channel=place.channel,
            thread_ts=place.thread,
            content=content,
            filename=filename.rsplit("/", 1)[-1],  # a workspace path: the file's own name
            title=filename,
            initial_comment=comment,
        )

    # ------------------------------------------------------------------ for the listeners

    async def ephemeral(
        self, channel: str, user: str, text: str | SlackMessage, thread: str | None = None
    ) -> None:
        """A message only `user` sees, where they clicked (in the thread when there is one)."""
        msg = blocks.reply(text) if isinstance(text, str) else text
        await self._call(
            "chat.postEphemeral",
            self.client.chat_postEphemeral,
            channel=channel,
            user=user,
            text=msg.text,
            blocks=msg.blocks,
            thread_ts=thread,
        )

    async def open_modal(self, trigger_id: str, view: dict[str, Any]) -> None:
        await self._call("views.open", self.client.views_open, trigger_id=trigger_id, view=view)

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        await self._call("views.publish", self.client.views_publish, user_id=user, view=view)

    # ------------------------------------------------------------------ plumbing

    async def _post(
        self, channel: str, thread: str | None, msg: SlackMessage, broadcast: bool = False
    ) -> str:
        kwargs: dict[str, Any] = {
            "channel": channel,
            "text": msg.text,
            "blocks": msg.blocks,
            "unfurl_links": False,
            "unfurl_media": False,
        }
        if thread:
            kwargs["thread_ts"] = thread
            if broadcast:
                kwargs["reply_broadcast"] = True
        response = await self._call("chat.postMessage", self.client.chat_postMessage, **kwargs)
        return str(response["ts"])

    async def _update(self, ref: MessageRef, msg: SlackMessage) -> None:
        await self._call(
            "chat.update",
            self.client.chat_update,
            channel=ref.channel,
            ts=ref.id,
            text=msg.text,
            blocks=msg.blocks,
        )

    async def _join(self, channel: str) -> bool:
        """Join a public channel the command came from, so the app can post and read replies."""
        try:
            await self._call("conversations.join", self.client.conversations_join, channel=channel)
            return True
        except PlatformError as exc:
            log.info("could not join %s: %s", channel, exc)
            return False

    async def _call(
        self, method: str, fn: Callable[..., Awaitable[AsyncSlackResponse]], **kwargs: Any
    ) -> AsyncSlackResponse:
        try:
            return await fn(**kwargs)
        except (TimeoutError, SlackApiError, SlackClientError, aiohttp.ClientError) as exc:
            code = error_code(exc)
            if self.metrics is not None:
                self.metrics.platform_error(self.name, method)
            hint = HINTS.get(code)
            raise PlatformError(f"Slack {method} failed: {code}" + (f" ({hint})" if hint else "")) from exc


async def serve(
    core: Core, settings: SlackSettings, stop_event: asyncio.Event, *, host: str = "0.0.0.0"
) -> None:
    """Run Slack until `stop_event` is set. Sessions are resumed once it is connected."""
    adapter = SlackAdapter(core, settings, host=host)
    await adapter.start()
    try:
        await core.resume_all()
        await stop_event.wait()
    finally:
        await adapter.stop()
