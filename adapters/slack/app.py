"""The Bolt app: one set of listeners for Socket Mode and HTTP, and what they share.

Listeners are plain module functions (see `listeners/`, one file each, as in Slack's Bolt
starter template) and find the core through `context["autogpt"]`, put there by a middleware;
the same functions are registered on every app, whichever the mode.

Every listener acknowledges first (`await ack()`) and then works: Bolt answers Slack as soon as
`ack` is called, so Slack's 3-second rule holds whatever the LLM or the store is doing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from adapters.slack import blocks
from adapters.slack.blocks import SlackMessage
from adapters.slack.inbound import once
from adapters.slack.platform import NAME, SlackPlatform
from bot import grammar
from bot.adapter import PlatformError
from bot.core import Core
from bot.grammar import GoalCommand, HelpCommand, ListCommand, StatusCommand, UsageError
from bot.logs import bind
from bot.models import Actor, Place, Session
from bot.settings import Settings

log = logging.getLogger(__name__)

DEPS_KEY: Final = "autogpt"


class Inflight:
    """Counts listener work still running after its ack, so a shutdown (or a test) can wait for it."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        self._count += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._count -= 1
            if self._count == 0:
                self._idle.set()

    @property
    def busy(self) -> int:
        return self._count

    async def wait(self) -> None:
        await self._idle.wait()


@dataclass
class SlackDeps:
    """What the listeners need: the core, the settings and the platform."""

    core: Core
    settings: Settings
    platform: SlackPlatform
    inflight: Inflight = field(default_factory=Inflight)

    def actor(self, user_id: str) -> Actor:
        # The name is a mention: Slack shows it as the user's current display name everywhere.
        return Actor(
            platform=NAME,
            user_id=user_id,
            name=blocks.mention(user_id),
            is_admin=user_id in self.settings.slack_admin_user_ids,
        )

    def place(self, channel: str, team: str | None, thread: str | None = None) -> Place:
        return Place(platform=NAME, channel=channel, thread=thread, team=team)

    async def tell(
        self, channel: str, user: str, text: str | SlackMessage, thread: str | None = None
    ) -> None:
        """An ephemeral note to one user; a failure is logged, never raised into a listener."""
        if not channel:  # a click from a surface without a channel: there is nowhere to say it
            log.info("nothing told to %s: the request came from no channel", user)
            return
        try:
            await self.platform.ephemeral(channel, user, text, thread)
        except PlatformError as exc:
            log.warning("could not tell %s in %s: %s", user, channel, exc)

    async def session(self, session_id: str) -> Session | None:
        return await self.core.service.session_of(session_id)


def deps_of(context: AsyncBoltContext) -> SlackDeps:
    deps = context.get(DEPS_KEY)
    if not isinstance(deps, SlackDeps):
        raise RuntimeError("the Slack app was built without its dependencies (use build_app)")
    return deps


def build_app(deps: SlackDeps, logger: logging.Logger | None = None) -> AsyncApp:
    """The Bolt app, for either mode. Over HTTP every request's signature is checked with
    SLACK_SIGNING_SECRET (401 when it does not match or is older than five minutes)."""
    from adapters.slack.listeners import register_listeners

    secret = deps.settings.slack_signing_secret
    app = AsyncApp(
        client=deps.platform.client,
        signing_secret=secret.get_secret_value() if secret else "",
        name="autogpt-bot",
        logger=logger or logging.getLogger("adapters.slack.bolt"),
        process_before_response=False,
    )

    async def attach(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> None:
        context[DEPS_KEY] = deps
        bind(user=context.user_id, platform=NAME)  # each event runs in its own task
        await next()

    app.use(once(deps.core.store))  # first: a request delivered twice runs once (adapters/slack/inbound.py)
    app.use(attach)
    register_listeners(app)
    return app


# ---------------------------------------------------------------------------- shared by listeners


async def run_command(deps: SlackDeps, actor: Actor, place: Place, text: str) -> SlackMessage:
    """The shared grammar for `/autogpt` and mentions; the answer is for the asking user only."""
    try:
        command = grammar.parse(text, max_goal_chars=deps.settings.max_goal_chars)
    except UsageError as exc:
        return blocks.reply(exc.message, verbatim=exc.usage)
    outcome = await deps.core.service.handle(actor, place, command)
    if isinstance(command, HelpCommand) and outcome.ok:
        return blocks.reply("", verbatim=outcome.message)
    message = outcome.message
    if isinstance(command, GoalCommand) and outcome.ok:
        message += " Follow it in the thread of the message above."
    listing = isinstance(command, ListCommand) or (
        isinstance(command, StatusCommand) and command.session_id is None
    )
    return blocks.reply(message, monospace=listing)


def where(body: dict[str, Any]) -> tuple[str, str | None]:
    """The channel and thread of the message a button was clicked in."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
    return channel, container.get("thread_ts") or message.get("thread_ts")
