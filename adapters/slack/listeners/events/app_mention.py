"""`@AutoGPT <command>` in a channel: the same grammar as `/autogpt`, answered to that user only."""

from __future__ import annotations

import re
from typing import Any, Final

from slack_bolt.async_app import AsyncBoltContext

from adapters.slack.blocks import unescape
from adapters.slack.deps import deps_of, run_command

LEADING_MENTION: Final = re.compile(r"^\s*<@[UW][A-Z0-9]+(?:\|[^>]*)?>[\s:,]*")


async def app_mention(event: dict[str, Any], context: AsyncBoltContext) -> None:
    user, channel = event.get("user"), event.get("channel")
    if not user or not channel or event.get("bot_id") or user == context.bot_user_id:
        return
    deps = deps_of(context)
    text = unescape(LEADING_MENTION.sub("", str(event.get("text") or ""), count=1))
    async with deps.inflight():
        answer = await run_command(deps, deps.actor(user), deps.place(channel, context.team_id), text)
        await deps.tell(channel, user, answer, event.get("thread_ts"))
