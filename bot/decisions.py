"""Human decisions as data, and the pure function that applies one.

A `Decision` is what a click or a typed command asks for: approve (this step and the next
count-1 without asking), allow_tool (approve this step, and run its command without asking in
this session from now on), feedback (skip the command, tell the agent), stop, pause (a run on
its own goes back to step-by-step approval), resume (a paused session goes on; continuously
for `continuous_limit` more cycles when set), retry (the waiting step is set aside and the agent
asked again) or goals (a goal added, removed or edited: the agent is told at its next cycle).
`decide(session, actor, decision, settings, now)` returns the `Transition` it makes (the session
after it, and what to say) or a `Refusal`, with no I/O: the engine applies a transition in one
compare-and-set, and an adapter can ask the same function, read-only, whether a click would be
refused (`Service.check`) before opening a form. The OpenAI Agents SDK's `RunState.approve/reject`
is the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from bot import policy
from bot.models import Actor, GoalChange, Phase, Session, SessionState, Step, StepStatus, ToolGrant
from bot.settings import Settings

MAX_APPROVE_N = 100  # "approve next N": the range of APPROVE_NEXT_N

Action = Literal[
    "approve", "approve_n", "allow_tool", "feedback", "stop", "pause", "resume", "retry", "goals"
]
GoalAction = Literal["add", "remove", "edit"]
MAX_GOALS = 5  # AutoGPT's limit (bot/grammar.py says the same to who types it)
MAX_TASKS = 20
#: who approved a step that no human approved one by one (its view offers Pause and Stop)
AUTO = "auto"  # approvals given in advance ("approve next N")
CONTINUOUS = "continuous"
POLICY = "policy"  # TOOL_POLICY or the session's "Always allow"
ON_ITS_OWN = frozenset({AUTO, CONTINUOUS, POLICY})


class Decision(BaseModel):
    """What a user decided. `step_no`: the step whose button was pressed (None: typed, about the
    session as it is now). `text`: the feedback, or for allow_tool the command the user named
    (None: the waiting step's)."""

    action: Action
    step_no: int | None = None
    count: int = Field(1, ge=1)
    text: str | None = None
    continuous_limit: int | None = Field(None, ge=1)
    change: GoalAction | None = None  # goals: what to do
    index: int | None = Field(None, ge=1)  # goals: which goal (remove, edit), from 1


@dataclass(frozen=True)
class Refusal:
    """Nothing changes; `message` says why, for the user who asked."""

    message: str


@dataclass(frozen=True)
class Transition:
    """What a decision does: `session` as it is after it, the words for the user, the step
    decided on (its message changes) and any other step whose message changes."""

    session: Session
    message: str
    decided: Step | None = None
    refresh: int | None = None
    notice: str | None = None  # said in the session's thread as well (a change of its goals)
    tasks_changed: bool = False  # the task list's message shows something else now


def may_decide(session: Session, actor: Actor, settings: Settings) -> bool:
    if actor.is_admin or settings.is_admin(actor.user_id):
        return True
    return actor.platform == session.place.platform and actor.user_id == session.owner


def decide(
    session: Session, actor: Actor, decision: Decision, settings: Settings, now: datetime
) -> Transition | Refusal:
    if not may_decide(session, actor, settings):
        return Refusal(
            f"Only {session.owner_name or session.owner} or an admin can decide on session {session.id}."
        )
    if session.state.terminal:
        return Refusal(f"Session {session.id} has already {session.state.value}; nothing changed.")
    if decision.action in ("feedback", "goals") and len(decision.text or "") > settings.max_goal_chars:
        return Refusal(
            f"Your feedback is {len(decision.text or ''):,} characters long; the limit is "
            f"{settings.max_goal_chars:,}. Nothing changed: say it in fewer words."
        )
    s = session.model_copy(deep=True)
    match decision.action:
        case "stop":
            return _stop(s, actor, decision, now)
        case "pause":
            return _pause(s)
        case "resume":
            return _resume(s, actor, decision, settings, now)
        case "retry":
            return _retry(s, actor, decision, settings, now)
        case "goals":
            return _change_goals(s, actor, decision, settings, now)
        case "approve" | "approve_n" if s.state == SessionState.PAUSED and s.pending_step is None:
            return _resume(s, actor, decision, settings, now)  # approving a paused session resumes it
        case "approve" | "approve_n" | "feedback" | "allow_tool":
            return _on_pending(s, actor, decision, now)
    return Refusal(f"Unknown decision {decision.action!r}.")


def _stop(s: Session, actor: Actor, decision: Decision, now: datetime) -> Transition | Refusal:
    last = s.last_step
    on_its_own = s.continuous or s.approvals_left > 0
    if decision.step_no is not None and not on_its_own and (last is None or last.no != decision.step_no):
        return Refusal(not_pending(s, decision.step_no))  # the Stop button of an old step
    s.state = SessionState.STOPPED
    s.reason = f"stopped by {actor.label}"
    s.finished_at = now
    pending = s.pending_step
    if pending is not None:
        pending.status = StepStatus.REJECTED
        pending.decided_by, pending.decision, pending.decided_at = actor.label, "stopped", now
        pending.decided_by_id = actor.user_id
    return Transition(s, f"Session {s.id} stopped.", decided=pending)


def _pause(s: Session) -> Transition | Refusal:
    if not (s.continuous or s.approvals_left > 0):
        return Refusal(f"Session {s.id} is not running on its own; nothing to pause.")
    s.continuous = False
    s.approvals_left = 0
    last = s.last_step
    return Transition(
        s,
        f"Session {s.id} paused: the next step will wait for approval.",
        refresh=last.no if last is not None else None,
    )


def _resume(
    s: Session, actor: Actor, decision: Decision, settings: Settings, now: datetime
) -> Transition | Refusal:
    """A paused session goes on. One that a limit paused gets one more allotment of cycles or
    budget (the user's daily budget still applies), so the choice to go on is explicit and
    bounded. `resume --continuous` also resumes a session that is not paused, continuously."""
    if s.state != SessionState.PAUSED and not (decision.action == "resume" and decision.continuous_limit):
        return Refusal(f"Session {s.id} is not paused ({s.state.value}).")
    if s.pause_kind == "limit":
        if s.cycles >= s.cycle_limit(settings.max_cycles):
            s.max_cycles = s.cycles + settings.max_cycles
        budget = s.budget(settings.session_budget_usd)
        allotment = (s.profile.budget_usd if s.profile else None) or settings.session_budget_usd
        if s.usage.cost_usd >= budget * 0.9:
            s.budget_usd = s.usage.cost_usd + allotment  # one more of what it started with
    s.continuous = decision.continuous_limit is not None
    s.continuous_limit = (
        s.cycles + decision.continuous_limit if decision.continuous_limit else s.continuous_limit
    )
    s.approvals_left = max(0, _count(decision) - 1)
    s.pause_kind = s.error = s.reason = None
    pending = s.pending_step
    decided = None
    if pending is not None and s.continuous:  # resuming continuously approves the waiting step
        approve(pending, actor.label, "approved (resumed continuously)", now, actor.user_id)
        s.phase = Phase.EXECUTE
        decided = pending
    s.state = SessionState.RUNNING if pending is None or decided else SessionState.AWAITING_APPROVAL
    return Transition(s, f"Session {s.id} resumed" + (" continuously." if s.continuous else "."), decided)


def _retry(
    s: Session, actor: Actor, decision: Decision, settings: Settings, now: datetime
) -> Transition | Refusal:
    """Ask the agent again for the step that waits (AutoGPT had no way but to stop): the step is
    kept for the record, marked retried, and left out of what the agent sees, so it is asked
    afresh from the same history. A session an error paused is asked again the same way."""
    pending = s.pending_step
    if decision.step_no is not None and (pending is None or pending.no != decision.step_no):
        return Refusal(not_pending(s, decision.step_no))
    if pending is None:
        if s.state == SessionState.PAUSED and s.pause_kind != "limit":
            return _resume(s, actor, decision.model_copy(update={"action": "resume"}), settings, now)
        if s.state == SessionState.PAUSED:
            return Refusal(
                f"Session {s.id} paused at a limit ({s.reason}); resume {s.id} gives it more and goes on."
            )
        return Refusal(
            f"Session {s.id} has no step waiting to be asked again ({s.state.value}): retry re-asks "
            "a step that waits for a decision, or a session an error paused."
        )
    pending.status = StepStatus.RETRIED
    pending.decided_by, pending.decided_at = actor.label, now
    pending.decided_by_id = actor.user_id
    pending.decision = "asked again"
    s.phase = Phase.THINK
    s.state = SessionState.RUNNING
    s.pause_kind = s.error = s.reason = None
    return Transition(s, f"Step {pending.no} set aside; the agent is asked again.", decided=pending)


def _change_goals(
    s: Session, actor: Actor, decision: Decision, settings: Settings, now: datetime
) -> Transition | Refusal:
    """Add, remove or edit a goal of a session under way. Recorded with who and when; the agent
    sees the new goals and is told what changed at its next cycle. The task list follows: an
    added goal is a task of its own, a removed goal's task goes, an edited goal's task changes."""
    goals = list(s.goals)
    text = " ".join((decision.text or "").split())
    index = decision.index
    if decision.change in ("remove", "edit") and (index is None or not 1 <= index <= len(goals)):
        listed = "; ".join(f"{i}. {g[:40]}" for i, g in enumerate(goals, 1))
        return Refusal(f"Session {s.id} has no goal {index}; its goals are: {listed}")
    if decision.change in ("add", "edit") and not text:
        return Refusal("Give the goal's text.")
    before: str | None = None
    match decision.change:
        case "add":
            if len(goals) >= MAX_GOALS:
                return Refusal(
                    f"Session {s.id} has {len(goals)} goals already, the most a session takes. "
                    f"Remove or edit one instead: goals {s.id} remove N"
                )
            if text in goals:
                return Refusal(f"Session {s.id} has that goal already (goal {goals.index(text) + 1}).")
            goals.append(text)
            index = len(goals)
        case "remove":
            assert index is not None
            if len(goals) == 1:
                return Refusal(f"Goal 1 is session {s.id}'s only goal: edit it, or stop the session.")
            before = goals.pop(index - 1)
        case "edit":
            assert index is not None
            before = goals[index - 1]
            if before == text:
                return Refusal(f"Goal {index} says that already; nothing changed.")
            goals[index - 1] = text
        case _:
            return Refusal("Say what to do with the goals: add, remove or edit.")
    if (size := sum(len(g) for g in goals)) > settings.max_goal_chars:
        return Refusal(
            f"The goals would be {size:,} characters long; the limit is {settings.max_goal_chars:,}."
        )
    assert index is not None and decision.change is not None
    s.goals = goals
    s.goal_changes.append(
        GoalChange(
            action=decision.change,
            index=index,
            before=before,
            after=text if decision.change != "remove" else None,
            by=actor.label,
            by_id=actor.user_id,
            at=now,
            after_step=len(s.steps),
        )
    )
    if before is not None:  # the goal's own task, when the list still holds it word for word
        s.tasks = [t for t in s.tasks if t != before]
    if decision.change != "remove" and text not in s.tasks and len(s.tasks) < MAX_TASKS:
        s.tasks.append(text)
    done = {"add": "added", "remove": "removed", "edit": "changed"}[decision.change]
    listed = "\n".join(f"{i}. {g}" for i, g in enumerate(goals, 1))
    notice = f"{actor.label} {done} goal {index}. The goals now:\n{listed}"
    when = (
        "at its next step"
        if s.pending_step is None
        else f"at its next step (step {s.pending_step.no} still waits for you; retry {s.id} asks again)"
    )
    return Transition(s, f"Goal {index} {done}. The agent is told {when}.", notice=notice, tasks_changed=True)


def _on_pending(s: Session, actor: Actor, decision: Decision, now: datetime) -> Transition | Refusal:
    pending = s.pending_step
    if (
        s.state not in (SessionState.AWAITING_APPROVAL, SessionState.PAUSED)
        or pending is None
        or (decision.step_no is not None and pending.no != decision.step_no)
    ):
        return Refusal(not_pending(s, decision.step_no))
    if decision.action == "allow_tool":
        return _allow_tool(s, pending, actor, decision, now)
    if decision.action == "feedback":
        pending.status = StepStatus.SKIPPED
        pending.feedback = (decision.text or "").strip()
        pending.decided_by, pending.decided_at, pending.decision = actor.label, now, "gave feedback"
        pending.decided_by_id = actor.user_id
        s.approvals_left = 0
        s.phase = Phase.THINK
        message = f"Feedback sent; step {pending.no} skipped."
    else:
        count = _count(decision)
        approve(
            pending,
            actor.label,
            "approved" if count == 1 else f"approved this and the next {count - 1}",
            now,
            actor.user_id,
        )
        # a step that waited although approvals were given in advance (it has effects outside
        # the session) keeps the rest of them
        s.approvals_left = max(s.approvals_left, count - 1)
        s.phase = Phase.EXECUTE
        message = f"Step {pending.no} approved" + (f", and the next {count - 1}." if count > 1 else ".")
    s.state = SessionState.RUNNING
    s.pause_kind = None
    return Transition(s, message, decided=pending)


def _allow_tool(
    s: Session, pending: Step, actor: Actor, decision: Decision, now: datetime
) -> Transition | Refusal:
    """Approve the waiting step and run its command without asking in this session from now on
    (recorded with who and when)."""
    tool = pending.command.name
    named = (decision.text or "").strip()
    if named and named != tool:
        return Refusal(f"Step {pending.no} of session {s.id} proposes {tool}, not {named}; nothing changed.")
    if tool == policy.FINISH:
        return Refusal("finish cannot be always allowed: approve it, or stop the session.")
    approve(pending, actor.label, f"approved, and always allowed {tool} here", now, actor.user_id)
    if not policy.granted(s, tool):
        s.grants.append(ToolGrant(tool=tool, by=actor.label, at=now, by_id=actor.user_id))
    s.phase = Phase.EXECUTE
    s.state = SessionState.RUNNING
    s.pause_kind = None
    return Transition(
        s, f"Step {pending.no} approved; {tool} now runs without asking in session {s.id}.", decided=pending
    )


def repeating(session: Session, step: Step) -> bool:
    """Whether a proposed step repeats the last two (the loop guard)."""
    return (
        step.status == StepStatus.PENDING
        and len(past := session.history) >= 2
        and all(s.command == step.command for s in past[-2:])
    )


def propose(
    s: Session, step: Step, outside_effects: bool, repeats: bool, settings: Settings, now: datetime
) -> None:
    """A new proposal joins the session. A command the policy (or the session's grant) allows
    runs at once; any other is approved at once when approvals were given in advance or the run
    is continuous, else it waits for a human. A command with effects outside the session runs
    only on a human's approval of that very step (neither continuous mode nor "approve next N"
    covers it) unless it is allowed, and a run that repeats itself waits in any case."""
    s.cycles += 1
    if step.status == StepStatus.PENDING:
        allowed = policy.word_for(step.command.name, settings, s) == "allow"
        on_its_own = s.approvals_left > 0 or s.continuous
        if repeats and (on_its_own or allowed):
            step.notes.append("Paused for a human: the agent is repeating itself.")
            s.approvals_left = 0
        elif allowed:
            grant = next((g for g in s.grants if g.tool == step.command.name), None)
            approve(
                step, POLICY, f"always allowed here by {grant.by}" if grant else "allowed by TOOL_POLICY", now
            )
            step.granted_by = grant.by if grant else None
        elif on_its_own and outside_effects:
            given = (
                "approvals given in advance do not cover it"
                if s.approvals_left > 0
                else "continuous mode does not run those on its own"
            )
            step.notes.append(
                f"Waiting for a human: {step.command.name} has effects outside the session, and {given}."
            )
        elif s.approvals_left > 0:
            s.approvals_left -= 1
            approve(step, AUTO, "approved in advance", now)
        elif s.continuous:
            approve(step, CONTINUOUS, "continuous mode", now)
        if step.status == StepStatus.APPROVED:
            s.phase = Phase.EXECUTE
        else:
            s.state = SessionState.AWAITING_APPROVAL
    s.steps.append(step)


def _count(decision: Decision) -> int:
    return min(max(decision.count, 1), MAX_APPROVE_N)


def approve(step: Step, who: str, what: str, when: datetime, who_id: str | None = None) -> None:
    """`who`: a user's label, or AUTO, CONTINUOUS or POLICY; `who_id`: the user's id."""
    step.status = StepStatus.APPROVED
    step.decided_by, step.decision, step.decided_at = who, what, when
    step.decided_by_id = who_id


def not_pending(session: Session, step_no: int | None) -> str:
    """Why a decision on `step_no` (None: the current step) finds nothing to decide."""
    target = next((s for s in session.steps if s.no == step_no), None) if step_no else session.last_step
    if target is not None and target.status != StepStatus.PENDING:
        who = f" by {target.decided_by}" if target.decided_by else ""
        what = target.decision or target.status.value
        return f"Step {target.no} of session {session.id} was already decided ({what}{who}); nothing changed."
    if session.state == SessionState.PAUSED:
        return f"Session {session.id} is paused ({session.reason}); approve it to resume."
    return f"Session {session.id} has no step waiting for a decision right now ({session.state.value})."
