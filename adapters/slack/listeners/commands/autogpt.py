"""`/autogpt <command>`: the shared grammar. The answer is ephemeral, for the user who asked."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext, AsyncRespond

from adapters.slack.deps import deps_of, run_command

log = logging.getLogger(__name__)


async def autogpt_command(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    async with deps.inflight():
        await ack()  # first: Slack hears back at once, whatever the work below takes
        actor = deps.actor(command["user_id"])
        place = deps.place(command["channel_id"], context.team_id or command.get("team_id"))
        answer = await run_command(deps, actor, place, command.get("text") or "")
        try:
            await respond(
                text=answer.text, blocks=answer.blocks, response_type="ephemeral", replace_original=False
            )
        except Exception as exc:  # the response_url expired or Slack is down: nothing else to do
            log.warning("could not answer /autogpt for %s: %s", actor.user_id, exc)
