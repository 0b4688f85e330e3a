"""The Feedback button of a step: opens a modal for the text (its metadata holds only ids)."""

from __future__ import annotations

from adapters.slack import blocks, ids
from adapters.slack.deps import NOT_UNDERSTOOD, Click, SlackDeps, on_click
from bot.adapter import PlatformError
from bot.decisions import Decision


@on_click("feedback")
async def feedback_button(deps: SlackDeps, click: Click) -> None:
    if click.button is None or click.trigger_id is None:
        await deps.tell(click.channel, click.user, NOT_UNDERSTOOD, click.thread)
        return
    session_id, step_no = click.button.session_id, click.button.step_no
    # the core says whether feedback would be taken now (read-only), before a form is opened
    check = await deps.core.service.check(
        session_id, deps.actor(click.user), Decision(action="feedback", step_no=step_no)
    )
    if not check.ok:
        await deps.tell(click.channel, click.user, check.message, click.thread)
        return
    session = await deps.core.service.session_of(session_id)
    step = next((s for s in session.steps if s.no == step_no), None) if session else None
    command = step.command.name if step else "a command"
    try:
        await deps.adapter.open_modal(click.trigger_id, blocks.feedback_modal(session_id, step_no, command))
    except PlatformError as exc:
        await deps.tell(
            click.channel,
            click.user,
            f"Could not open the feedback form ({exc}). Reply in this thread instead, or use "
            f"`{ids.COMMAND} feedback {session_id} <text>`.",
            click.thread,
        )
