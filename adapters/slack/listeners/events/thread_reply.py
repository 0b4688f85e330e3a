"""A message in a session's thread: from the owner (or an admin) while a step waits, it is
feedback on that step (the core decides); files in it are saved for the agent. The bot's own
posts, other bots, edits and deletions are ignored, and so is a message addressed to the app (a
mention: that is a command)."""

from __future__ import annotations

from typing import Any, Final

from slack_bolt.async_app import AsyncBoltContext

from adapters.slack.blocks import unescape
from adapters.slack.deps import deps_of
from adapters.slack.files import shared_files

USER_SUBTYPES: Final = frozenset({None, "thread_broadcast", "file_share"})


async def thread_message(event: dict[str, Any], context: AsyncBoltContext) -> None:
    if event.get("subtype") not in USER_SUBTYPES or event.get("bot_id"):
        return  # message_changed (our own chat.update calls too), message_deleted, bot_message, ...
    user, channel = event.get("user"), event.get("channel")
    thread, ts = event.get("thread_ts"), event.get("ts")
    if not user or not channel or not thread or thread == ts or user == context.bot_user_id:
        return
    raw = str(event.get("text") or "")
    if context.bot_user_id and raw.lstrip().startswith(f"<@{context.bot_user_id}>"):
        return  # a command to the app, handled as an app_mention
    deps = deps_of(context)
    async with deps.inflight():
        place = deps.place(channel, context.team_id, thread)
        actor = deps.actor(user)
        if files := await shared_files(deps, event):  # saved for the agent; the core says so in the thread
            received = await deps.core.service.receive(actor, place, files)
            if received is not None and not received.ok:
                await deps.tell(channel, user, received.message, thread)
        if not raw.strip():
            return
        outcome = await deps.core.service.reply_in_thread(actor, place, unescape(raw))
        if outcome is not None and not outcome.ok:
            await deps.tell(channel, user, outcome.message, thread)
