"""The views of a session, built from the stored session: what every adapter shows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot import profiles
from bot.decisions import ON_ITS_OWN
from bot.models import PROFILE_FIELDS, ChannelProfile, Session, Step, StepStatus
from bot.policy import FINISH
from bot.presenter.views import (
    DecisionOption,
    FileView,
    ProfileField,
    ProfileView,
    ResultView,
    ScheduleItem,
    SessionHeaderView,
    SessionItem,
    SessionListView,
    StepView,
    SummaryView,
    TaskListView,
)
from bot.schedules import Schedule
from bot.settings import Settings
from bot.tools.base import OutFile

RESULT_VIEW_LIMIT = 1_000_000
MAX_LISTED = 20

PAUSE = DecisionOption(action="pause", label="Pause")
STOP = DecisionOption(action="stop", label="Stop")


def step_view(session: Session, step: Step, settings: Settings) -> StepView:
    status: Any
    options: list[DecisionOption] = []
    last = session.last_step
    live = not session.state.terminal and last is not None and last.no == step.no
    # a step no human approved one by one offers Stop while it is the last (and Pause while the
    # session runs on its own)
    on_its_own = session.continuous or session.approvals_left > 0
    running = ([PAUSE] if on_its_own else []) + [STOP] if live and step.decided_by in ON_ITS_OWN else []
    match step.status:
        case StepStatus.PENDING:
            status = "pending"
            options = [
                DecisionOption(action="approve", label="Approve"),
                DecisionOption(
                    action="approve_n",
                    label=f"Approve next {settings.approve_next_n}",
                    count=settings.approve_next_n,
                ),
                DecisionOption(action="feedback", label="Feedback"),
                DecisionOption(action="retry", label="Ask again"),
                STOP,
            ]
            if step.command.name != FINISH:
                options.append(
                    DecisionOption(action="allow_tool", label=f"Always allow {step.command.name} here")
                )
        case StepStatus.APPROVED if step.decided_by in ON_ITS_OWN:
            status = "auto"
            options = running
        case StepStatus.EXECUTING:
            status = "running"
            options = running
        case StepStatus.DONE:
            status = "done"
            options = running if on_its_own else []  # step by step, the next step comes at once
        case StepStatus.INVALID:
            status = "invalid"
        case StepStatus.INTERRUPTED:
            status = "interrupted"
        case _:
            status = "decided"
    return StepView(
        session_id=session.id,
        step_no=step.no,
        thoughts=step.thoughts,
        command=step.command.name,
        args=step.command.args,
        status=status,
        options=options,
        decided_by=step.decided_by,
        decision=step.decision,
        decided_at=step.decided_at,
        granted_by=step.granted_by,
        approvals_left=session.approvals_left,
        budget_left_usd=max(0.0, session.budget(settings.session_budget_usd) - session.usage.cost_usd),
        note="\n".join(step.notes) or None,
    )


def summary_view(session: Session) -> SummaryView:
    outcome: Any = session.state.value if session.state.terminal else "paused"
    return SummaryView(
        session_id=session.id,
        outcome=outcome,
        reason=session.reason or "",
        cycles=session.cycles,
        cost_usd=session.usage.cost_usd,
        prompt_tokens=session.usage.prompt_tokens,
        completion_tokens=session.usage.completion_tokens,
    )


def tasks_view(session: Session) -> TaskListView:
    return TaskListView(session_id=session.id, tasks=session.tasks, done=session.done_tasks)


def result_view(
    session: Session, step: Step, output: str, ok: bool, files: Sequence[OutFile] = ()
) -> ResultView:
    return ResultView(
        session_id=session.id,
        step_no=step.no,
        command=step.command.name,
        output=output[:RESULT_VIEW_LIMIT],
        ok=ok,
        files=[FileView(name=f.name, content=f.content, comment=f.comment, mime=f.mime) for f in files],
    )


def header_view(session: Session, owner: str, title: str | None = None) -> SessionHeaderView:
    named = session.model_dump(include={"ai_name", "ai_role", "goals"})
    return SessionHeaderView(session_id=session.id, title=title, owner=owner, mode=session.mode, **named)


def session_list_view(
    sessions: Sequence[Session], schedules: Sequence[Schedule] = (), notice: str | None = None
) -> SessionListView:
    """A user's sessions (newest first) and schedules, for a home page."""
    return SessionListView(
        sessions=[
            SessionItem(
                session_id=s.id,
                state=s.state.value,
                open=not s.state.terminal,
                cycles=s.cycles,
                cost_usd=s.usage.cost_usd,
                goal=s.goals[0] if s.goals else "",
                channel=s.place.channel,
                thread=s.place.thread,
            )
            for s in sessions
        ],
        schedules=[
            ScheduleItem(
                schedule_id=x.id,
                when=x.when,
                tz=x.tz,
                paused=x.paused,
                next_run=x.next_run(),
                runs=x.runs,
                goal=x.goals[0] if x.goals else "",
            )
            for x in schedules
        ],
        notice=notice,
    )


def profile_view(
    profile: ChannelProfile, settings: Settings, may_change: bool = False, note: str | None = None
) -> ProfileView:
    """A channel's profile: each key with its value, or what applies when the channel sets none."""
    defaults: dict[str, Any] = {
        "ai_name": Session.model_fields["ai_name"].default,
        "ai_role": Session.model_fields["ai_role"].default,
        "smart_llm": settings.smart_llm,
        "fast_llm": settings.fast_llm,
        "budget_usd": settings.session_budget_usd,
        "continuous_limit": settings.continuous_limit,
        "memory_scope": settings.memory_scope,
        "tool_policy": settings.tool_policy or None,
        "mcp_servers": None,
    }
    fields = []
    for name in PROFILE_FIELDS:
        value = getattr(profile, name)
        if value is not None:
            shown = profiles.shown(name, value)
        elif defaults[name] is not None:
            shown = f"{profiles.shown(name, defaults[name])} (the setting)"
        else:
            shown = "(the setting)"
        fields.append(
            ProfileField(
                key=profiles.TYPED[name], label=profiles.LABELS[name], value=shown, set=value is not None
            )
        )
    changed = not profile.empty
    return ProfileView(
        channel=profile.channel,
        fields=fields,
        updated_by=profile.updated_by if changed else None,
        updated_at=profile.updated_at if changed else None,
        may_change=may_change,
        note=note,
    )
