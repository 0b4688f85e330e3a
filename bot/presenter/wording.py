"""The words of what the core shows, the same on every platform: where a step stands, who
decided what, how a session ended, a session's state, a session's line in a list. An adapter
adds its own marks (an emoji per `Mood`, a colour) and markup (a mention, a time stamp)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from bot.models import Session, SessionState
from bot.presenter.views import ProfileView, StepView, SummaryView, UsageRow, UsageView

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
    moods = {"gave feedback": "feedback", "stopped": "stopped", "asked again": "feedback"}
    mood: Mood = moods.get(decision, "approved")  # type: ignore[assignment]
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
    if session.forked_from:
        parts.append(f"Forked from session {session.forked_from} at step {session.forked_at or 0}")
    if session.goal_changes:
        last = session.goal_changes[-1]
        parts.append(
            f"Goals changed {len(session.goal_changes)} times, last by {last.by} "
            f"({last.at:%Y-%m-%d %H:%M} UTC)"
        )
    if session.reason:
        parts.append("Reason: " + session.reason)
    return "\n".join(parts)


CHANGES_SHOWN = 5


def goals_text(session: Session) -> str:
    """`goals ID`: a session's goals, numbered, and who changed them lately."""
    lines = [f"Goals of session {session.id}:"]
    lines += [f"{i}. {g}" for i, g in enumerate(session.goals, 1)]
    changes = session.goal_changes[-CHANGES_SHOWN:]
    if changes:
        lines.append("Changed:")
        for c in changes:
            what = {
                "add": f'added goal {c.index} "{_clip(c.after)}"',
                "remove": f'removed goal {c.index} "{_clip(c.before)}"',
                "edit": f'changed goal {c.index} to "{_clip(c.after)}"',
            }[c.action]
            told = "" if c.told else " (the agent is told at its next step)"
            lines.append(f"- {c.at:%Y-%m-%d %H:%M} UTC {c.by} {what}, after step {c.after_step}{told}")
    if not session.state.terminal:
        lines.append(f"Change them with: goals {session.id} add <goal> | remove N | edit N <goal>")
    return "\n".join(lines)


def _clip(text: str | None, limit: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


# ---------------------------------------------------------------------------- usage reports

NOT_RECORDED = "(not recorded)"  # the model of spend recorded before spend per model was
BARS = " ▁▂▃▄▅▆▇█"
CHART_HEIGHT = 4


def money(usd: float) -> str:
    return f"${usd:.4f}"


def usage_heading(view: UsageView, who: str | None = None, where: str | None = None) -> str:
    """What a report covers: "Usage of everyone in C1, last 30 days". `who` / `where`: the
    user's and channel's names with the platform's markup (a mention), else their ids."""
    if view.mine:
        subject = "Your usage"
    elif view.user is not None:
        subject = f"Usage of {who or view.user_label or view.user}"
    else:
        subject = "Usage of everyone"
    if view.channel is not None:
        subject += f" in {where or view.channel}"
    return f"{subject}, last {view.days} day{'s' if view.days != 1 else ''} (since {view.since:%Y-%m-%d})"


def counted(n: int, word: str) -> str:
    """`3 sessions`, `1 session`."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def usage_line(row: UsageRow, model: bool = False) -> str:
    """What one user, channel or model used, in a line."""
    if model:
        return (
            f"{counted(row.calls, 'call')}, {counted(row.tokens, 'token')}, {money(row.cost_usd)} "
            f"({counted(row.sessions, 'session')})"
        )
    return (
        f"{counted(row.sessions, 'session')}, {counted(row.cycles, 'cycle')}, "
        f"{counted(row.calls, 'LLM call')}, {counted(row.tokens, 'token')}, {money(row.cost_usd)}"
    )


USAGE_TOTALS: tuple[tuple[str, str], ...] = (
    ("Sessions", "sessions"),
    ("Cycles", "cycles"),
    ("LLM calls", "calls"),
    ("Tokens", "tokens"),
    ("Spent", "cost_usd"),
)


def usage_totals(view: UsageView) -> list[tuple[str, str]]:
    """(label, value) of each total, for a platform's fields."""
    out = []
    for label, name in USAGE_TOTALS:
        value = getattr(view.total, name)
        out.append((label, money(value) if name == "cost_usd" else f"{value:,}"))
    return out


USAGE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("by_user", "By user"),
    ("by_channel", "By channel"),
    ("by_model", "By model"),
)
CHART_TITLE = "Spend per day"


def unpriced_note(view: UsageView) -> str | None:
    if not view.unpriced:
        return None
    sessions = counted(view.unpriced, "session")
    return f"{sessions} from before spend per model was recorded: counted under {NOT_RECORDED}."


def columns(values: list[float], height: int = CHART_HEIGHT) -> list[str]:
    """`values` as a column chart of `height` text rows (top first), one column each, in
    eighths of a row; a value above zero shows at least one eighth."""
    top = max(values, default=0.0)
    levels = [0 if v <= 0 or top <= 0 else max(1, round(v / top * height * 8)) for v in values]
    return [
        "".join(BARS[min(8, max(0, level - row * 8))] for level in levels)
        for row in range(height - 1, -1, -1)
    ]


def usage_chart(view: UsageView) -> list[str]:
    """The spend of each day of the report as a small text chart: the columns, an axis, and
    the first and last day under it. Empty when there are no days."""
    if not view.daily:
        return []
    values = [d.cost_usd for d in view.daily]
    top = money(max(values))
    width = max(len(top), 2)
    lines = []
    for i, row in enumerate(columns(values)):
        lines.append(f"{top if i == 0 else '':>{width}} {'┤' if i == 0 else '│'}{row}")
    lines.append(f"{'$0':>{width}} └" + "─" * len(values))
    first, last = f"{view.daily[0].day:%m-%d}", f"{view.daily[-1].day:%m-%d}"
    gap = max(1, len(values) - len(first) - len(last))
    lines.append(" " * (width + 2) + first + (" " * gap + last if len(view.daily) > 1 else ""))
    return lines


def usage_text(view: UsageView) -> str:
    """A whole report in plain text (a terminal, or a platform that shows no view)."""
    lines = [usage_heading(view), "In all: " + usage_line(view.total)]
    if not view.total.sessions:
        lines.append("No sessions in this period.")
    for name, title in USAGE_SECTIONS:
        rows: list[UsageRow] = getattr(view, name)
        if not rows:
            continue
        width = min(28, max(len(r.label) for r in rows))
        lines += ["", f"{title}:"]
        lines += [f"  {r.label:<{width}}  {usage_line(r, model=name == 'by_model')}" for r in rows]
    if note := unpriced_note(view):
        lines += ["", note]
    if chart := usage_chart(view):
        lines += ["", f"{CHART_TITLE}:", *chart]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- channel profiles

PROFILE_HOW = (
    "Channel admins and bot admins change it: profile set KEY VALUE, profile unset KEY (help profile)."
)


def profile_heading(view: ProfileView, where: str | None = None) -> str:
    return f"Profile of {where or 'this channel'}"


def profile_changed(view: ProfileView) -> str | None:
    if view.updated_by is None or view.updated_at is None:
        return None
    return f"Last changed by {view.updated_by}, {view.updated_at:%Y-%m-%d %H:%M} UTC."


PROFILE_NOTHING = "Nothing is set: sessions here take the bot's settings."
PROFILE_ADMINS_ONLY = "Only channel admins and bot admins can change it."


def profile_footer(view: ProfileView) -> str:
    """How the profile is changed, and by whom."""
    return PROFILE_HOW if view.may_change else PROFILE_ADMINS_ONLY


def profile_text(view: ProfileView) -> str:
    """A channel's profile in plain text."""
    lines = [view.note] if view.note else []
    lines.append(profile_heading(view) + ":")
    lines += [f"  {f.label} ({f.key}): {f.value}" for f in view.fields]
    if changed := profile_changed(view):
        lines.append(changed)
    if not any(f.set for f in view.fields):
        lines.append(PROFILE_NOTHING)
    lines.append(profile_footer(view))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- a home page

HOME_USAGE = "Your last 30 days"
HOME_PROFILES = "Channel profiles"


def home_no_profiles(command: str) -> str:
    """`command`: how the platform's users type a command (`/autogpt`)."""
    return f"No channel has a profile yet: `{command} profile` in a channel shows its defaults."
