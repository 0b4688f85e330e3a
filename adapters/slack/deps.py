"""What the listeners share: the core, the adapter, and the helpers every listener uses.

The Bolt app puts a `SlackDeps` in each request's context (`context["autogpt"]`); a listener
gets it with `deps_of(context)`. Listeners import from here, never from `app.py`, so the
package has no import cycle (the bolt starter template's layout)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from adapters.slack import blocks
from adapters.slack.blocks import SlackMessage
from adapters.slack.settings import SlackSettings
from bot import grammar
from bot.adapter import PlatformError
from bot.core import Core
from bot.grammar import GoalCommand, HelpCommand, ListCommand, StatusCommand, UsageError
from bot.inbox import Incoming
from bot.models import Actor, Place
from bot.presenter.ids import Button, parse
from bot.presenter.views import Shown

if TYPE_CHECKING:
    from adapters.slack.adapter import SlackAdapter

log = logging.getLogger(__name__)

DEPS_KEY: Final = "autogpt"
NAME: Final = "slack"


@dataclass
class SlackDeps:
    """What the listeners need: the core, Slack's settings and the adapter."""

    core: Core
    settings: SlackSettings
    adapter: SlackAdapter

    @property
    def inflight(self) -> Any:
        return self.adapter.inflight

    def actor(self, user_id: str) -> Actor:
        # The name is a mention: Slack shows it as the user's current display name everywhere.
        return Actor(
            platform=NAME,
            user_id=user_id,
            name=blocks.mention(user_id),
            is_admin=user_id in self.settings.admin_user_ids,
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
            await self.adapter.ephemeral(channel, user, text, thread)
        except PlatformError as exc:
            log.warning("could not tell %s in %s: %s", user, channel, exc)


def deps_of(context: AsyncBoltContext) -> SlackDeps:
    deps = context.get(DEPS_KEY)
    if not isinstance(deps, SlackDeps):
        raise RuntimeError("the Slack app was built without its dependencies (use build_app)")
    return deps


async def run_command(
    deps: SlackDeps,
    actor: Actor,
    place: Place,
    text: str,
    files: list[Incoming] | None = None,
    thread: str | None = None,
) -> SlackMessage:
    """The shared grammar for `/autogpt` and mentions; the answer is for the asking user only.
    `files`: shared with a mention (a goal's attachments). `thread`: the thread a mention was
    typed in: a command is about that thread (its session), a goal starts in the channel."""
    try:
        command = grammar.parse(text, max_goal_chars=deps.core.settings.max_goal_chars)
    except UsageError as exc:
        return blocks.reply(exc.message, verbatim=exc.usage)
    if thread is not None and not isinstance(command, GoalCommand):
        place = place.model_copy(update={"thread": thread})
    outcome = await deps.core.service.handle(actor, place, command, files)
    if isinstance(outcome, Shown):
        return deps.adapter.renderer.render(outcome.view)
    if isinstance(command, HelpCommand) and outcome.ok:
        return blocks.reply("", verbatim=outcome.message)
    message = outcome.message
    if isinstance(command, GoalCommand) and outcome.ok:
        message += " Follow it in the thread of the message above."
    listing = isinstance(command, ListCommand) or (
        isinstance(command, StatusCommand) and command.session_id is None
    )
    return blocks.reply(message, monospace=listing)


NOT_UNDERSTOOD: Final = "This button is not one the bot understands; nothing changed."


@dataclass(frozen=True)
class Click:
    """A button pressed: who, where (the message's channel and thread; none in the Home tab),
    and the button as the core's codec reads its value (None: not one of ours)."""

    user: str
    channel: str
    thread: str | None
    button: Button | None
    trigger_id: str | None
    team: str | None


ClickHandler = Callable[[SlackDeps, Click], Awaitable[None]]


def on_click(*actions: str) -> Callable[[ClickHandler], Callable[..., Awaitable[None]]]:
    """A button's listener: acknowledged first, then `handler(deps, click)` with the click's
    button if it is one of `actions` (None otherwise)."""

    def wrap(handler: ClickHandler) -> Callable[..., Awaitable[None]]:
        async def listener(
            ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
        ) -> None:
            deps = deps_of(context)
            async with deps.inflight():
                await ack()
                channel, thread = where(body)
                button = parse(action.get("value"))
                if button is not None and button.action not in actions:
                    button = None
                user = str(body["user"]["id"])
                await handler(
                    deps, Click(user, channel, thread, button, body.get("trigger_id"), context.team_id)
                )

        # named after the handler (not functools.wraps: Bolt reads the listener's own signature)
        listener.__module__, listener.__name__ = handler.__module__, handler.__name__
        listener.__qualname__, listener.__doc__ = handler.__qualname__, handler.__doc__
        return listener

    return wrap


def where(body: dict[str, Any]) -> tuple[str, str | None]:
    """The channel and thread of the message a button was clicked in."""
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = (body.get("channel") or {}).get("id") or container.get("channel_id") or ""
    return channel, container.get("thread_ts") or message.get("thread_ts")
