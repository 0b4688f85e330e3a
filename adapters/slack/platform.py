"""Slack as a `ChatPlatform`: the core's views posted and edited through the Web API.

A session lives in the thread of its root message (`Place.thread` is the root's `ts`). Rate
limits (429) are retried by the client as Slack asks (`Retry-After`); a send Slack refuses for
good raises `PlatformError`, so the core pauses the session with the error recorded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from adapters.slack import blocks
from adapters.slack.blocks import SlackMessage, SlackRenderer
from bot.adapter import PlatformError
from bot.metrics import Metrics
from bot.models import MessageRef, Place
from bot.presenter.views import ResultView, SessionHeaderView, SummaryView, View

log = logging.getLogger(__name__)

NAME: Final = "slack"
RATE_LIMIT_RETRIES: Final = 3
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


class SlackPlatform:
    """The core's views in Slack. `client` carries the bot token of the (one) workspace."""

    name = NAME
    metrics: Metrics | None = None  # given by Core.add_platform: failed API calls are counted
    receiving: Callable[[], Awaitable[bool]] | None = None  # set by the adapter: socket / HTTP server up

    def __init__(self, client: AsyncWebClient, result_inline: int = blocks.RESULT_INLINE) -> None:
        self.client = client
        self.renderer = SlackRenderer(result_inline)

    async def connected(self) -> bool:
        """For /healthz. The adapter adds the platform to the core only once auth.test passed;
        after that, whether its Socket Mode client or HTTP server is up (`receiving`)."""
        return self.receiving is None or await self.receiving()

    # ------------------------------------------------------------------ ChatPlatform

    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        msg = self.renderer.render(view)
        try:
            ts = await self._post(place.channel, None, msg)
        except PlatformError as exc:
            if "not_in_channel" not in str(exc) or not await self._join(place.channel):
                raise
            ts = await self._post(place.channel, None, msg)
        return place.model_copy(update={"thread": ts})

    async def post(self, place: Place, view: View) -> MessageRef:
        msg = self.renderer.render(view)
        # the final word also goes to the channel, so the outcome is seen without opening the thread
        broadcast = isinstance(view, SummaryView) and place.thread is not None
        ts = await self._post(place.channel, place.thread, msg, broadcast=broadcast)
        if isinstance(view, ResultView) and self.renderer.needs_attachment(view):
            try:
                await self.upload(
                    place,
                    f"result-{view.session_id}-step{view.step_no}.txt",
                    view.output.encode("utf-8"),
                    f"The full result of step {view.step_no} ({view.command}), "
                    f"{len(view.output):,} characters.",
                )
            except PlatformError as exc:  # the shortened result is posted; say the rest is missing
                log.warning("session %s: attaching a result failed: %s", view.session_id, exc)
                failed = self.renderer.result(view, attach_error=str(exc))
                ref = MessageRef(platform=self.name, channel=place.channel, id=ts, thread=place.thread)
                try:
                    await self._update(ref, failed)
                except PlatformError as again:
                    log.warning("session %s: could not say so: %s", view.session_id, again)
        return MessageRef(platform=self.name, channel=place.channel, id=ts, thread=place.thread)

    async def update(self, ref: MessageRef, view: View) -> None:
        await self._update(ref, self.renderer.render(view))

    async def _update(self, ref: MessageRef, msg: SlackMessage) -> None:
        await self._call(
            "chat.update",
            self.client.chat_update,
            channel=ref.channel,
            ts=ref.id,
            text=msg.text,
            blocks=msg.blocks,
        )

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        await self._call(
            "files.upload",
            self.client.files_upload_v2,
            channel=place.channel,
            thread_ts=place.thread,
            content=content,
            filename=filename,
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
