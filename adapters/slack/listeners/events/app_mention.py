"""`@AutoGPT <command>` in a channel: the same grammar as `/autogpt`, answered to that user only.
Files shared with it go to the session the goal starts, or to the session of the thread."""

from __future__ import annotations

import re
from typing import Any, Final

from slack_bolt.async_app import AsyncBoltContext

from adapters.slack.blocks import unescape
from adapters.slack.deps import deps_of, run_command
from adapters.slack.files import shared_files

LEADING_MENTION: Final = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>[\s:,]*")


async def app_mention(event: dict[str, Any], context: AsyncBoltContext) -> None:
    user, channel = event.get("user"), event.get("channel")
    if not user or not channel or event.get("bot_id") or user == context.bot_user_id:
        return
    deps = deps_of(context)
    text = unescape(LEADING_MENTION.sub("", str(event.get("text") or ""), count=1))
    thread = event.get("thread_ts")
    async with deps.inflight():
        actor, files = deps.actor(user), await shared_files(deps, event)
        if files and thread:  # shared in a session's thread: for its agent
            received = await deps.core.service.receive(
                actor, deps.place(channel, context.team_id, thread), files
            )
            if received is not None and not received.ok:
                await deps.tell(channel, user, received.message, thread)
            files = []
        # a goal's attachments go to the session it starts
        place = deps.place(channel, context.team_id)
        answer = await run_command(deps, actor, place, text, files, thread=thread)
        await deps.tell(channel, user, answer, event.get("thread_ts"))
