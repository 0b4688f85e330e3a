"""The words of what the core shows, the same on every platform: where a step stands, who
decided what, how a session ended, a session's state, a session's line in a list. An adapter
adds its own marks (an emoji per `Mood`, a colour) and markup (a mention, a time stamp)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.models import Session, SessionState
from bot.presenter.views import StepView, SummaryView

Mood = Literal[
    "waiting",
    "auto",
    "continuous",
    "approved",
    "feedback",
    "stopped",
    "running",
    "done",
    "invalid",
    "interrupted",
]


@dataclass(frozen=True)
class Line:
    """One line about a step: `who` (a user's label) comes before the words, `code` (a command)
    after them, then `at` (when)."""

    mood: Mood
    text: str
    who: str | None = None
    code: str | None = None
    at: datetime | None = None


PROGRESS: dict[str, Line] = {
    "pending": Line("waiting", "Waiting for a decision."),
    "done": Line("done", "Ran; the result follows."),
    "invalid": Line("invalid", "Not run: the command was not valid (see the note); the agent was told."),
    "interrupted": Line(
        "interrupted",
        "Interrupted: the process running it stopped. It may or may not have taken effect; check before "
        "repeating it.",
    ),
}


def decided(view: StepView) -> Line | None:
    """Who decided on the step, and what: None while nobody has."""
    if view.decided_by == "auto":
        left = f" ({view.approvals_left} more to go)" if view.approvals_left else ""
        return Line("auto", f"Approved in advance{left}")
    if view.decided_by == "continuous":
        return Line("continuous", "Approved automatically (continuous mode)")
    if view.decided_by == "policy" and view.granted_by:
        return Line("auto", "always allowed this command here: it runs without asking", who=view.granted_by)
    if view.decided_by == "policy":
        return Line("auto", "Runs without asking: allowed by TOOL_POLICY")
    if not view.decided_by:
        return None
    decision = view.decision or "decided"
    mood: Mood = {"gave feedback": "feedback", "stopped": "stopped"}.get(decision, "approved")  # type: ignore[assignment]
    return Line(mood, decision, who=view.decided_by, at=view.decided_at)


def progress(view: StepView) -> Line | None:
    """Where the step stands: waiting, running, ran, not run, interrupted."""
    if view.status == "running":
        return Line("running", "Running", code=view.command)
    return PROGRESS.get(view.status)


def status_word(view: StepView) -> str:
    """The step's state in a few words (a notification's text)."""
    if view.status == "pending":
        return "waiting for a decision"
    if view.status == "decided" and view.decision:
        return view.decision
    if view.status == "auto" and view.decided_by == "policy":
        return "allowed without asking"
    return {"auto": "approved in advance", "running": "running"}.get(view.status, view.status)


OUTCOMES: dict[str, str] = {
    "finished": "Session finished",
    "stopped": "Session stopped",
    "failed": "Session failed",
    "paused": "Session paused",
}

STATES: dict[str, str] = {
    SessionState.PLANNING: "planning",
    SessionState.RUNNING: "running",
    SessionState.AWAITING_APPROVAL: "waiting for you",
    SessionState.PAUSED: "paused",
    SessionState.FINISHED: "finished",
    SessionState.STOPPED: "stopped",
    SessionState.FAILED: "failed",
}


def spent(view: SummaryView) -> str:
    return f"{view.cycles} cycles, ${view.cost_usd:.4f}"


def resume_hint(view: SummaryView, command: str) -> str | None:
    """How to go on with a paused session, with the platform's way to type a command."""
    if view.outcome != "paused":
        return None
    return (
        f"Resume it with `{command} approve {view.session_id}`, or end it with "
        f"`{command} stop {view.session_id}`."
    )


def session_line(session: Session) -> str:
    """A session in a list: id, state, cycles, spend, first goal."""
    goal = session.goals[0] if session.goals else ""
    if len(goal) > 60:
        goal = goal[:57] + "..."
    state, cost = session.state.value, session.usage.cost_usd
    return f"{session.id}  {state:<17} {session.cycles:>3} cycles  ${cost:.4f}  {goal}"


def describe(session: Session) -> str:
    """A session in full, for `status ID`."""
    parts = [
        f"Session {session.id}: {session.state.value} ({session.mode})",
        "Goals: " + "; ".join(session.goals),
        f"Cycles: {session.cycles}, spent ${session.usage.cost_usd:.4f} "
        f"({session.usage.prompt_tokens}+{session.usage.completion_tokens} tokens)",
    ]
    if session.tasks:
        parts.append("Next task: " + session.tasks[0])
    if session.pending_step is not None:
        step = session.pending_step
        parts.append(f"Waiting for a decision on step {step.no}: {step.command.name} {step.command.args}")
    if session.grants:
        parts.append(
            "Always allowed here: "
            + ", ".join(f"{g.tool} (by {g.by}, {g.at:%Y-%m-%d %H:%M} UTC)" for g in session.grants)
        )
    if session.reason:
        parts.append("Reason: " + session.reason)
    return "\n".join(parts)


def spoken_summary(session: Session) -> str:
    """The summary, said aloud (--speak)."""
    outcome = OUTCOMES.get(session.state.value, f"Session {session.state.value}")
    reason = f": {session.reason}" if session.reason else ""
    return f"{outcome}{reason}. {session.cycles} cycles."


DOING: dict[str, str] = {
    "planning": "Making the task list...",
    "thinking": "Thinking...",
    "tasks": "Updating the task list...",
    "running": "Running {command}...",
    "speaking": "Speaking...",
}


def doing(phase: str, command: str | None = None) -> str:
    """A phase of the engine in words, for a live indicator."""
    return DOING.get(phase, phase).format(command=command or "the command")
