"""The Approve, Approve next N, Stop and (in a continuous run) Pause buttons of a step.

A button carries only ids; the core decides atomically (a second click, or a click on an old
step, changes nothing) and edits the step message in place. A refusal is told to the clicking
user only."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from adapters.slack import ids
from adapters.slack.deps import deps_of, where
from bot.decisions import Decision
from bot.presenter.ids import parse


async def decision_button(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    async with deps.inflight():
        await ack()
        user = body["user"]["id"]
        channel, thread = where(body)
        clicked = parse(action.get("value"))
        if clicked is None or action.get("action_id") != ids.ACTION_IDS.get(clicked.action):
            await deps.tell(
                channel, user, "This button is not one the bot understands; nothing changed.", thread
            )
            return
        decision = Decision(action=clicked.action, step_no=clicked.step_no, count=clicked.count)
        outcome = await deps.core.service.decide(clicked.session_id, deps.actor(user), decision)
        if not outcome.ok:
            await deps.tell(channel, user, outcome.message, thread)
