"""Platform-neutral views: what the core shows. Each adapter decides how (Block Kit, an embed,
coloured text), one method per view kind (`bot.presenter.render.Renderer`). Buttons carry
nothing but ids: a `DecisionOption` is (session id, step number, action), encoded by
`bot.presenter.ids`."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bot.models import Outcome, Thoughts

Action = Literal["approve", "approve_n", "allow_tool", "feedback", "retry", "stop", "pause"]


class DecisionOption(BaseModel):
    action: Action
    label: str
    count: int = 1


class SessionHeaderView(BaseModel):
    """The root message of a session: goals, owner, id and mode; `title` names what started it
    (a schedule) when it was not a person's goal command."""

    kind: Literal["header"] = "header"
    session_id: str
    title: str | None = None
    owner: str
    ai_name: str
    ai_role: str
    goals: list[str]
    mode: str


class TaskListView(BaseModel):
    kind: Literal["tasks"] = "tasks"
    session_id: str
    tasks: list[str]
    done: list[str] = Field(default_factory=list)


class StepView(BaseModel):
    """One cycle: what the agent thinks and the command it proposes."""

    kind: Literal["step"] = "step"
    session_id: str
    step_no: int
    thoughts: Thoughts
    command: str
    args: dict[str, Any]
    status: Literal["pending", "auto", "decided", "running", "done", "invalid", "interrupted"] = "pending"
    options: list[DecisionOption] = Field(default_factory=list)
    decided_by: str | None = None
    decision: str | None = None  # human words: "approved", "approved the next 5", "gave feedback", "stopped"
    decided_at: datetime | None = None
    granted_by: str | None = None  # who always allowed its command in this session (it ran without asking)
    approvals_left: int = 0
    budget_left_usd: float | None = None
    note: str | None = None


class FileView(BaseModel):
    """A file shown with a result (a command's full output): `name` is its path in the session's
    workspace; `content` is attached where the platform takes files."""

    model_config = ConfigDict(ser_json_bytes="base64", val_json_bytes="base64")

    name: str
    content: bytes
    comment: str = ""
    mime: str = "text/plain"  # an image is shown as one where the platform can

    @property
    def image(self) -> bool:
        return self.mime.startswith("image/")

    @property
    def filename(self) -> str:
        """Its name without folders, for an attachment."""
        return self.name.rsplit("/", 1)[-1]


class ResultView(BaseModel):
    """A command's result: `output` is what the agent read; `files`, when there are any, hold
    the whole of it (and whatever else the command made), attached in chat."""

    kind: Literal["result"] = "result"
    session_id: str
    step_no: int
    command: str
    output: str
    ok: bool = True
    files: list[FileView] = Field(default_factory=list)


class SummaryView(BaseModel):
    kind: Literal["summary"] = "summary"
    session_id: str
    outcome: Literal["finished", "stopped", "failed", "paused"]
    reason: str
    cycles: int
    cost_usd: float
    prompt_tokens: int = 0
    completion_tokens: int = 0


class NoticeView(BaseModel):
    """Anything else worth saying in the session's thread: a warning, an error, a pause."""

    kind: Literal["notice"] = "notice"
    session_id: str | None = None
    level: Literal["info", "warning", "error"] = "info"
    text: str


class ProgressView(BaseModel):
    """What the engine is doing for a session right now, for a live indicator (a spinner, a
    status line, "typing"): `doing` in words, the longest-running first; empty: nothing (clear
    the indicator). `phases` names them for the platform ("thinking", "tasks", "running", ...).
    Not a message: an adapter shows it however its platform shows activity, or not at all."""

    kind: Literal["progress"] = "progress"
    session_id: str
    doing: list[str] = Field(default_factory=list)
    phases: list[str] = Field(default_factory=list)
    since: datetime | None = None  # when the oldest of them began

    @property
    def text(self) -> str:
        return " · ".join(self.doing)


class SessionItem(BaseModel):
    """One session in a list (a home page): its id, state, cost and first goal."""

    session_id: str
    state: str  # a SessionState value
    open: bool  # not finished, stopped or failed: it can still be stopped
    cycles: int
    cost_usd: float
    goal: str
    channel: str
    thread: str | None = None


class ScheduleItem(BaseModel):
    schedule_id: str
    when: str
    tz: str
    paused: bool
    next_run: datetime | None
    runs: int
    goal: str


class UsageRow(BaseModel):
    """One line of a usage report: a user, a channel or a model (`key`: its id or name;
    `label`: what to call it) and what it used. `sessions`: how many sessions it counts (for a
    model: the sessions that used it)."""

    key: str
    label: str
    sessions: int = 0
    cycles: int = 0
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class UsageDay(BaseModel):
    day: date
    sessions: int = 0
    cost_usd: float = 0.0


class UsageView(BaseModel):
    """What was used in a period (`days` days since `since`), by user, channel and model, with
    the spend of each day (a chart). `user` / `channel`: what the report is limited to (None:
    not limited); `everyone`: an admin's report over every user. `unpriced`: sessions from
    before spend per model was recorded (their spend is in `total`, not in `by_model`)."""

    kind: Literal["usage"] = "usage"
    days: int
    since: datetime
    user: str | None = None
    user_label: str | None = None
    mine: bool = False  # the asker's own usage
    channel: str | None = None
    everyone: bool = False
    total: UsageRow
    by_user: list[UsageRow] = Field(default_factory=list)
    by_channel: list[UsageRow] = Field(default_factory=list)
    by_model: list[UsageRow] = Field(default_factory=list)
    daily: list[UsageDay] = Field(default_factory=list)
    unpriced: int = 0


class ProfileField(BaseModel):
    key: str  # as typed in `profile set KEY`
    label: str
    value: str  # in words
    set: bool  # False: the setting applies


class ProfileView(BaseModel):
    """A channel's profile: each key, its value, and whether the channel set it."""

    kind: Literal["profile"] = "profile"
    channel: str
    fields: list[ProfileField]
    updated_by: str | None = None
    updated_at: datetime | None = None
    may_change: bool = False  # the user who asked may change it
    note: str | None = None  # what just changed


AnswerView = Annotated[UsageView | ProfileView, Field(discriminator="kind")]


class Shown(Outcome):
    """An answer that is a view as well as words: an adapter that shows the view's kind renders
    `view`; any other says `message` (the same in plain text)."""

    view: AnswerView


class SessionListView(BaseModel):
    """A user's sessions and schedules (a home page), with a notice on top when there is one;
    `usage`: the user's recent usage (a small chart), `profiles`: the channel profiles of the
    user's team, when the adapter shows them."""

    kind: Literal["sessions"] = "sessions"
    sessions: list[SessionItem]
    schedules: list[ScheduleItem] = Field(default_factory=list)
    notice: str | None = None
    usage: UsageView | None = None
    profiles: list[ProfileView] = Field(default_factory=list)


View = SessionHeaderView | TaskListView | StepView | ResultView | SummaryView | NoticeView | SessionListView
