"""The Feedback button of a step: opens a modal for the text (its metadata holds only ids)."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from adapters.slack import blocks, ids
from adapters.slack.deps import deps_of, where
from bot.adapter import PlatformError
from bot.decisions import Decision
from bot.presenter.ids import parse


async def feedback_button(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    async with deps.inflight():
        await ack()
        user = body["user"]["id"]
        channel, thread = where(body)
        parsed = parse(action.get("value"))
        if parsed is None or parsed.action != "feedback":
            await deps.tell(
                channel, user, "This button is not one the bot understands; nothing changed.", thread
            )
            return
        session_id, step_no = parsed.session_id, parsed.step_no
        # the core says whether feedback would be taken now (read-only), before a form is opened
        check = await deps.core.service.check(
            session_id, deps.actor(user), Decision(action="feedback", step_no=step_no)
        )
        if not check.ok:
            await deps.tell(channel, user, check.message, thread)
            return
        session = await deps.core.service.session_of(session_id)
        step = next((s for s in session.steps if s.no == step_no), None) if session else None
        command = step.command.name if step else "a command"
        try:
            await deps.adapter.open_modal(
                body["trigger_id"], blocks.feedback_modal(session_id, step_no, command)
            )
        except PlatformError as exc:
            await deps.tell(
                channel,
                user,
                f"Could not open the feedback form ({exc}). Reply in this thread instead, or use "
                f"`{ids.COMMAND} feedback {session_id} <text>`.",
                thread,
            )
