"""The Approve, Approve next N, Stop and (in a continuous run) Pause buttons of a step.

A button carries only ids; the core decides atomically (a second click, or a click on an old
step, changes nothing) and edits the step message in place. A refusal is told to the clicking
user only."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from adapters.slack import ids
from adapters.slack.app import deps_of, where
from bot.decisions import Decision


async def decision_button(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    async with deps.inflight():
        await ack()
        user = body["user"]["id"]
        channel, thread = where(body)
        parsed = ids.parse_step_value(action.get("value"))
        decision = ids.DECISIONS.get(action.get("action_id", ""))
        if parsed is None or decision is None:
            await deps.tell(
                channel, user, "This button is not one the bot understands; nothing changed.", thread
            )
            return
        session_id, step_no, count = parsed
        outcome = await deps.core.service.decide(
            session_id,
            deps.actor(user),
            Decision(action=decision, step_no=step_no, count=count if decision == "approve_n" else 1),
        )
        if not outcome.ok:
            await deps.tell(channel, user, outcome.message, thread)
