"""The Approve, Approve next N, Always allow, Ask again, Stop and (in a run on its own) Pause
buttons of a step.

A button carries only ids; the core decides atomically (a second click, or a click on an old
step, changes nothing) and edits the step message in place. A refusal is told to the clicking
user only."""

from __future__ import annotations

from adapters.slack.deps import NOT_UNDERSTOOD, Click, SlackDeps, on_click
from bot.decisions import Decision


@on_click("approve", "approve_n", "allow_tool", "retry", "stop", "pause")
async def decision_button(deps: SlackDeps, click: Click) -> None:
    if click.button is None:
        await deps.tell(click.channel, click.user, NOT_UNDERSTOOD, click.thread)
        return
    b = click.button
    decision = Decision(action=b.action, step_no=b.step_no, count=b.count)  # type: ignore[arg-type]
    outcome = await deps.core.service.decide(b.session_id, deps.actor(click.user), decision)
    if not outcome.ok:
        await deps.tell(click.channel, click.user, outcome.message, click.thread)
