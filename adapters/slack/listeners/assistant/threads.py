"""Assistant threads (Slack's Agents & AI Apps surface: the app's own pane and DM threads).

A new thread gets a greeting and suggested prompts. A user's message in it is a command of the
shared grammar when it reads as one (`status`, `list`, `help`, `goal ...`); otherwise it is
feedback on the step waiting in this thread, or, when none waits, a goal. The session then lives
in that very thread: its header, task list, steps (with their buttons), results and summary are
posted there, its title becomes the first goal, and while the agent works the thread's status
says what it is doing (`SlackAdapter.progress`).

Every handler runs after Bolt acknowledged the event (Slack's 3 seconds hold); answers are posted
in the thread, where the user is.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.middleware.assistant.async_assistant import AsyncAssistant

from adapters.slack import blocks
from adapters.slack.blocks import SlackMessage, unescape
from adapters.slack.deps import SlackDeps, deps_of
from adapters.slack.files import shared_files
from bot import grammar
from bot.adapter import PlatformError
from bot.grammar import Command, GoalCommand, HelpCommand, ListCommand, StatusCommand, UsageError
from bot.inbox import Incoming
from bot.models import Actor, Place
from bot.presenter.views import Shown

log = logging.getLogger(__name__)

PROMPTS_TITLE: Final = "Try one of these:"
PROMPTS: Final[list[dict[str, str]]] = [
    {"title": "Start a goal", "message": "goal write a haiku about autumn to haiku.txt"},
    {"title": "My sessions", "message": "list"},
    {"title": "Help", "message": "help"},
]
GREETING: Final = (
    "Hi! Tell me a goal and I will work on it here, one step at a time: you approve each step "
    "with its buttons, or reply to tell me what to do instead. Commands work too: `status`, "
    "`list`, `help`."
)


def build_assistant() -> AsyncAssistant:
    assistant = AsyncAssistant(logger=logging.getLogger("adapters.slack.bolt"))
    assistant.thread_started(thread_started)
    # Bolt's default keeps the thread's context in message metadata (conversations.replies and a
    # chat.update each time the user switches channels); the agent does not use it
    assistant.thread_context_changed(context_changed)
    assistant.user_message(user_message)
    return assistant


async def thread_started(event: dict[str, Any], context: AsyncBoltContext) -> None:
    thread = event.get("assistant_thread") or {}
    channel, ts = str(thread.get("channel_id") or ""), str(thread.get("thread_ts") or "")
    if not channel or not ts:
        return
    deps = deps_of(context)
    async with deps.inflight():
        deps.adapter.assistant_thread(channel, ts)
        try:
            await deps.adapter.say(channel, ts, blocks.reply(GREETING))
            await deps.adapter.suggest(channel, ts, PROMPTS, PROMPTS_TITLE)
        except PlatformError as exc:
            log.warning("assistant thread %s/%s: could not greet: %s", channel, ts, exc)


async def context_changed(event: dict[str, Any]) -> None:
    """The user looks at another channel while the thread is open: nothing to do."""


async def user_message(event: dict[str, Any], context: AsyncBoltContext) -> None:
    user, channel, thread = event.get("user"), event.get("channel"), event.get("thread_ts")
    if not user or not channel or not thread or user == context.bot_user_id:
        return
    deps = deps_of(context)
    async with deps.inflight():
        deps.adapter.assistant_thread(str(channel), str(thread))
        place = deps.place(str(channel), context.team_id, str(thread))
        actor = deps.actor(str(user))
        text = unescape(str(event.get("text") or "")).strip()
        answer = await turn(deps, actor, place, text, await shared_files(deps, event))
        if answer is not None:
            try:
                await deps.adapter.say(place.channel, str(thread), answer)
            except PlatformError as exc:
                log.warning("assistant thread %s/%s: could not answer: %s", channel, thread, exc)


async def turn(
    deps: SlackDeps, actor: Actor, place: Place, text: str, files: list[Incoming]
) -> SlackMessage | None:
    """One message of the user in an assistant thread; the answer to post there (None: nothing
    to say, what happened shows in the thread)."""
    service = deps.core.service
    max_chars = deps.core.settings.max_goal_chars
    command: Command | None = None
    if text:
        try:
            command = grammar.parse(text, max_goal_chars=max_chars)
        except UsageError:
            command = None  # not a command: words for the agent
    if command is None:
        session = await service.session_in(place)
        if files and session is not None:  # saved for the agent of this thread's session
            received = await service.receive(actor, place, files)
            files = []
            if received is not None and not received.ok:
                return blocks.reply(received.message)
        if not text:
            return None
        if (outcome := await service.reply_in_thread(actor, place, text)) is not None:
            return None if outcome.ok else blocks.reply(outcome.message)  # feedback on the waiting step
        if session is not None and not session.state.terminal:
            return blocks.reply(
                f"Session {session.id} is still going in this thread ({session.state.value}). Reply here "
                "when a step waits for you, or open a new thread for another goal."
            )
        try:
            command = grammar.parse(f"goal {text}", max_goal_chars=max_chars)
        except UsageError as exc:
            return blocks.reply(exc.message, verbatim=exc.usage)
    outcome = await service.handle(actor, place, command, files or None)
    if isinstance(command, GoalCommand):
        if not outcome.ok:
            return blocks.reply(outcome.message)
        try:
            await deps.adapter.set_title(place.channel, str(place.thread), command.goals[0])
        except PlatformError as exc:
            log.info("assistant thread %s: no title: %s", place.thread, exc)
        return None  # the session's header, just posted in the thread, says it started
    if isinstance(outcome, Shown):  # a usage report, a profile
        return deps.adapter.renderer.render(outcome.view)
    if isinstance(command, HelpCommand) and outcome.ok:
        return blocks.reply("", verbatim=outcome.message)
    listing = isinstance(command, ListCommand) or (
        isinstance(command, StatusCommand) and command.session_id is None
    )
    return blocks.reply(outcome.message, monospace=listing)
