"""The feedback modal submitted: the step is skipped and the text goes to the agent."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from adapters.slack import ids
from adapters.slack.deps import deps_of
from bot.decisions import Decision
from bot.presenter.ids import parse


def typed_text(view: dict[str, Any]) -> str:
    values = (view.get("state") or {}).get("values") or {}
    return str(((values.get(ids.FEEDBACK_BLOCK) or {}).get(ids.FEEDBACK_INPUT) or {}).get("value") or "")


async def feedback_submitted(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    async with deps.inflight():
        parsed = parse(view.get("private_metadata"))
        parsed = parsed if parsed is not None and parsed.action == "feedback" else None
        text = typed_text(view)
        if parsed is not None and not text.strip():
            await ack(
                response_action="errors", errors={ids.FEEDBACK_BLOCK: "Tell the agent what to do instead."}
            )
            return
        await ack()
        if parsed is None:
            return
        session_id, step_no = parsed.session_id, parsed.step_no
        user = body["user"]["id"]
        outcome = await deps.core.service.decide(
            session_id, deps.actor(user), Decision(action="feedback", step_no=step_no, text=text)
        )
        if not outcome.ok:
            session = await deps.core.service.session_of(session_id)
            if session is not None:
                await deps.tell(session.place.channel, user, outcome.message, session.place.thread)
