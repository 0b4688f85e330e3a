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
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
from adapters.slack.progress import MIN_GAP_S, Pacer
from adapters.slack.settings import SlackSettings
from bot.adapter import AdapterStartError, ChatAdapter, Inflight, PlatformError
from bot.core import Core
from bot.llm.client import connect_reason
from bot.models import MessageRef, Place
from bot.presenter.views import ProgressView, ResultView, SessionHeaderView, SummaryView, TaskListView, View
from bot.redact import mask_url

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
FORGET_AFTER_S: Final = 30.0  # a session's task list is forgotten this long after its summary
ASSISTANT_STATUS_MAX: Final = 100  # characters of an assistant thread's status ("Thinking...")
ASSISTANT_TITLE_MAX: Final = 80  # characters of an assistant thread's title (its first goal)


class SlackStartError(AdapterStartError):
    """Slack cannot be started with these settings; the message is one line for the admin."""


@dataclass
class TaskList:
    """A session's task list message as last posted or edited by this process (process memory:
    after a restart the next task list update teaches it again), the status line it shows now,
    and when it was last edited; one edit of it at a time."""

    ref: MessageRef
    view: TaskListView
    status: str | None = None
    edited: float = float("-inf")
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


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


def unreachable(exc: BaseException, timeout: float) -> str | None:
    """Why Slack could not be reached, in a few words ("connection refused", "the name X does not
    resolve", "no answer within 30 s"); None when Slack answered (a refusal is Slack's answer)."""
    if isinstance(exc, SlackApiError):
        return None
    if reason := connect_reason(exc):
        return reason
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g} s"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientError | OSError):
        return (getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)[:200]
    return None


def start_failure(exc: BaseException, token_name: str, api_url: str, timeout: float) -> str:
    """Why Slack did not start, in one line for the admin: it could not be reached (the network,
    or SLACK_API_URL), or it refused `token_name`."""
    if reason := unreachable(exc, timeout):
        return f"Cannot reach Slack at {mask_url(api_url)} ({reason}): check the network or SLACK_API_URL"
    return f"Slack refused {token_name}: {error_code(exc)}"


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
        # live progress (progress.py): paced per session, shown on the task list message in a
        # channel thread, or as the thread's status in an assistant thread
        self.pacer = Pacer(self.inflight)
        self._lists: dict[str, TaskList] = {}
        self._assistant: dict[tuple[str, str], bool] = {}  # (channel, thread): an assistant thread?
        self._closed = False

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
            raise SlackStartError(self._start_failure(exc, "SLACK_BOT_TOKEN")) from exc
        self.core.add_platform(self)
        if self.post_only:  # a worker: the Web API only; an ingress process receives
            log.info("Slack: posting as %s to %s (Web API only)", auth.get("user"), auth.get("team"))
            return
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
                raise SlackStartError(self._start_failure(exc, "SLACK_APP_TOKEN")) from exc
            self._socket = AsyncSocketModeHandler(self.app, app_token)
            try:
                await asyncio.wait_for(self._socket.connect_async(), CONNECT_TIMEOUT_S)
            except TimeoutError as exc:
                await self.stop()
                raise SlackStartError("Could not connect to Slack in Socket Mode within 30 s") from exc
            where = "Socket Mode"
        log.info("Slack: connected as %s to %s, %s", auth.get("user"), auth.get("team"), where)

    def _start_failure(self, exc: BaseException, token_name: str) -> str:
        return start_failure(exc, token_name, self.settings.api_url, float(self.client.timeout))

    async def connected(self) -> bool:
        """Whether Slack can reach us: the Socket Mode connection is up, or the HTTP server listens."""
        if self._socket is not None:
            return bool(await self._socket.client.is_connected())
        if self.post_only:  # nothing receives here: up once started (the Web API answered)
            return self.client.session is not None
        return self._runner is not None

    async def stop_receiving(self) -> None:
        """Close the Socket Mode connection or the HTTP endpoint and give listeners that already
        acknowledged time to finish; the Web API client stays open (drives winding down post)."""
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

    async def stop(self) -> None:
        """Stop receiving, give listeners that already acknowledged time to finish, then close
        the Web API client."""
        await self.stop_receiving()
        self._closed = True
        await self.pacer.close()  # nothing runs here any more: no status line is left up
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
        """Post the session's root message in the channel; its thread is the session's place. A
        place that is a thread already (an assistant thread) keeps it: the header goes in there."""
        msg = self.renderer.render(view)
        if place.thread:
            await self._post(place.channel, place.thread, msg)
            return place.model_copy(update={"origin": None})
        try:
            ts = await self._post(place.channel, None, msg)
        except PlatformError as exc:
            if "not_in_channel" not in str(exc) or not await self._join(place.channel):
                raise
            ts = await self._post(place.channel, None, msg)
        self._assistant[(place.channel, ts)] = False  # a thread of our own: never an assistant's
        return place.model_copy(update={"thread": ts, "origin": None})

    async def post(self, place: Place, view: View) -> MessageRef:
        if isinstance(view, TaskListView):
            return await self._post_tasks(place, view)
        msg = self.renderer.render(view)
        # the final word also goes to the channel, so the outcome is seen without opening the
        # thread (an assistant thread is a conversation of its own: there it stays in the thread)
        broadcast = (
            isinstance(view, SummaryView) and place.thread is not None and not self.is_assistant(place)
        )
        ts = await self._post(place.channel, place.thread, msg, broadcast=broadcast)
        ref = MessageRef(platform=self.name, channel=place.channel, id=ts, thread=place.thread)
        if isinstance(view, ResultView):
            await self._attach(place, ref, view)
        if isinstance(view, SummaryView):  # forgotten once its last status line is surely down
            asyncio.get_running_loop().call_later(FORGET_AFTER_S, self._lists.pop, view.session_id, None)
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
        if isinstance(view, TaskListView):
            await self._update_tasks(ref, view)
            return
        await self._update(ref, self.renderer.render(view))

    # ------------------------------------------------------------------ live progress

    async def progress(self, place: Place, view: ProgressView) -> None:
        """What the engine is doing, paced (progress.py): in an assistant thread as the thread's
        status (`assistant.threads.setStatus`), elsewhere as a status line at the bottom of the
        session's task list message. Returns at once; the pacer passes it on."""
        if self._closed:
            return
        key = view.session_id
        if self.is_assistant(place):
            text = blocks.plain(view.text, ASSISTANT_STATUS_MAX) if view.doing else None
            self.pacer.want(key, text, functools.partial(self._show_status, place, key))
            return
        if key not in self._lists:  # no task list known yet (planning, or just restarted)
            return
        self.pacer.want(key, blocks.status_line(view), functools.partial(self._show_on_list, key))

    def is_assistant(self, place: Place) -> bool:
        """Whether `place` is an assistant thread (in the app's DM with a user, Slack's Agents &
        AI Apps surface): known from its events, else taken to be one when it is a thread in a
        DM until Slack says otherwise."""
        if not place.thread:
            return False
        known = self._assistant.get((place.channel, place.thread))
        return known if known is not None else place.channel.startswith("D")

    def assistant_thread(self, channel: str, thread: str) -> None:
        """An assistant thread's event came in: it is one."""
        self._assistant[(channel, thread)] = True

    async def _show_status(self, place: Place, key: str, text: str | None) -> None:
        assert place.thread is not None
        try:
            await self.set_status(place.channel, place.thread, text or "")
        except PlatformError as exc:
            if "ratelimited" in str(exc):
                raise
            # not an assistant thread after all (a DM thread of its own): the task list shows it
            log.info("%s/%s: no thread status (%s); using the task list", place.channel, place.thread, exc)
            self._assistant[(place.channel, place.thread)] = False
            self.pacer.forget(key)

    async def _show_on_list(self, key: str, text: str | None) -> None:
        board = self._lists.get(key)
        if board is None:
            return
        async with board.lock:
            if board.status == text:
                return  # a task list update took it along
            await self._pace(board)
            board.status = text
            await self._edit_tasks(board)

    async def _pace(self, board: TaskList) -> None:
        """Wait until the task list message may be edited again (about once a second)."""
        wait = board.edited + MIN_GAP_S - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _edit_tasks(self, board: TaskList) -> None:
        board.edited = time.monotonic()
        await self._with_plan_fallback(
            lambda: self._update(board.ref, self.renderer.tasks(board.view, board.status))
        )

    async def _post_tasks(self, place: Place, view: TaskListView) -> MessageRef:
        old = self._lists.get(view.session_id)
        status = old.status if old is not None else None
        ts = await self._with_plan_fallback(
            lambda: self._post(place.channel, place.thread, self.renderer.tasks(view, status))
        )
        ref = MessageRef(platform=self.name, channel=place.channel, id=ts, thread=place.thread)
        self._lists[view.session_id] = TaskList(ref, view, status, time.monotonic())
        return ref

    async def _update_tasks(self, ref: MessageRef, view: TaskListView) -> None:
        """A new version of the task list: edited in place, paced with the status line edits,
        and carrying the status line that is up (or due) now."""
        board = self._lists.get(view.session_id)
        if board is None or board.ref.id != ref.id or board.ref.channel != ref.channel:
            board = self._lists[view.session_id] = TaskList(ref, view)
        async with board.lock:
            await self._pace(board)
            board.view = view
            item = self.pacer.get(view.session_id)
            if item is not None and not self.is_assistant(ref_place(ref)):
                # a status line about to be due comes along in this edit rather than in another
                wait = self.pacer.ripe_at(item) - time.monotonic()
                if item.wanted is not None and item.wanted != item.shown and 0 < wait <= MIN_GAP_S:
                    await asyncio.sleep(wait)
                board.status = self.pacer.for_edit(item)
            await self._edit_tasks(board)

    async def _with_plan_fallback(self, send: Callable[[], Awaitable[Any]]) -> Any:
        """A task list send; if Slack refuses the plan block, the text rendering from then on."""
        try:
            return await send()
        except PlatformError as exc:
            if not self.renderer.plan_blocks or "invalid_blocks" not in str(exc):
                raise
            log.warning("Slack refused the task list as a plan block (%s): showing it as text", exc)
            self.renderer.plan_blocks = False
            return await send()

    # ------------------------------------------------------------------ assistant threads

    async def set_status(self, channel: str, thread: str, status: str) -> None:
        await self._call(
            "assistant.threads.setStatus",
            self.client.assistant_threads_setStatus,
            channel_id=channel,
            thread_ts=thread,
            status=status,
        )

    async def set_title(self, channel: str, thread: str, title: str) -> None:
        await self._call(
            "assistant.threads.setTitle",
            self.client.assistant_threads_setTitle,
            channel_id=channel,
            thread_ts=thread,
            title=blocks.plain(title, ASSISTANT_TITLE_MAX) or "AutoGPT",
        )

    async def suggest(self, channel: str, thread: str, prompts: list[dict[str, str]], title: str) -> None:
        await self._call(
            "assistant.threads.setSuggestedPrompts",
            self.client.assistant_threads_setSuggestedPrompts,
            channel_id=channel,
            thread_ts=thread,
            prompts=prompts,
            title=title,
        )

    async def say(self, channel: str, thread: str, msg: SlackMessage) -> None:
        """A message in a thread everyone in it sees (in an assistant thread: the user)."""
        await self._post(channel, thread, msg)

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


def ref_place(ref: MessageRef) -> Place:
    return Place(platform=NAME, channel=ref.channel, thread=ref.thread)


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
