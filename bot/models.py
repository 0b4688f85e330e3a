"""What crosses a boundary: the stored session, its steps, places and message references."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class SessionState(StrEnum):
    PLANNING = "planning"  # task creation and prioritisation
    RUNNING = "running"  # the engine works on it (see Session.phase)
    AWAITING_APPROVAL = "awaiting_approval"  # a proposed step waits for a human
    PAUSED = "paused"  # an error or a guard stopped it; a human may resume it
    FINISHED = "finished"  # the agent called finish
    STOPPED = "stopped"  # a human or a limit stopped it
    FAILED = "failed"  # could not go on

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({SessionState.FINISHED, SessionState.STOPPED, SessionState.FAILED})
ACTIVE = frozenset(SessionState) - TERMINAL


class Phase(StrEnum):
    THINK = "think"  # ask the execution agent for the next command
    EXECUTE = "execute"  # run the approved command of the last step
    UPDATE_TASKS = "update_tasks"  # older versions: task creation and prioritisation after a result
    # (now done beside the next THINK: Session.tasks_owed)


class Place(BaseModel):
    """Where a session lives: a platform, a channel, and a thread in it. `origin`: the message a
    request came in, when the platform answers it there (a mention the root message replies to)."""

    platform: str
    channel: str
    thread: str | None = None
    team: str | None = None
    origin: str | None = None

    @property
    def key(self) -> str:
        return ":".join(p or "" for p in (self.platform, self.team, self.channel, self.thread))


class MessageRef(BaseModel):
    """A message a platform posted, so it can be edited later."""

    platform: str
    channel: str
    id: str
    thread: str | None = None


class Thoughts(BaseModel):
    text: str = ""
    reasoning: str = ""
    plan: str = ""
    criticism: str = ""
    speak: str = ""


class CommandCall(BaseModel):
    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class StepStatus(StrEnum):
    PENDING = "pending"  # waits for a decision
    APPROVED = "approved"  # approved, not yet started
    EXECUTING = "executing"  # started; a restart finding this marks it interrupted
    DONE = "done"  # ran, result recorded
    SKIPPED = "skipped"  # human feedback instead of running
    REJECTED = "rejected"  # the session was stopped at this step
    INVALID = "invalid"  # unknown command or bad arguments: not run, reported to the agent
    INTERRUPTED = "interrupted"  # the process died while it ran
    RETRIED = "retried"  # a human had the agent asked again instead (`retry`): kept for the record only


#: a step that is over: it ran, or it never will (what `fork` copies)
FINAL_STEPS = frozenset(
    {
        StepStatus.DONE,
        StepStatus.SKIPPED,
        StepStatus.REJECTED,
        StepStatus.INVALID,
        StepStatus.INTERRUPTED,
        StepStatus.RETRIED,
    }
)


class Step(BaseModel):
    no: int
    thoughts: Thoughts
    command: CommandCall
    args_file: str | None = None  # long arguments: kept whole in this workspace file, cut in `command`
    status: StepStatus = StepStatus.PENDING
    decided_by: str | None = None
    decided_by_id: str | None = None  # the user id of who decided (older steps: only the label above)
    decision: str | None = None
    decided_at: datetime | None = None
    granted_by: str | None = None  # ran without asking because this user always allowed its command here
    result: str | None = None
    feedback: str | None = None
    notes: list[str] = Field(default_factory=list)
    shared: str | None = None  # what the agent was told of files shared before this step (bot/inbox.py)
    steered: str | None = None  # what the agent was told of changes to its goals before this step
    message: MessageRef | None = None
    proposed_at: datetime = Field(default_factory=utcnow)


class GoalChange(BaseModel):
    """A change a human made to a running session's goals (`goals ID add|remove|edit`): who, when,
    which goal (its number when changed, from 1) and what it said before and after. The agent is
    told of it in its next cycle (`told`)."""

    action: Literal["add", "remove", "edit"]
    index: int
    before: str | None = None
    after: str | None = None
    by: str
    by_id: str | None = None
    at: datetime = Field(default_factory=utcnow)
    after_step: int = 0  # the steps the session had taken when it changed
    told: bool = False


class ToolGrant(BaseModel):
    """ "Always allow <tool> here": a command a session runs without asking, who said so, when."""

    tool: str
    by: str
    at: datetime = Field(default_factory=utcnow)
    by_id: str | None = None  # the user id of `by` (older grants: only the label)


class Shared(BaseModel):
    """A file a user posted to a session (attached to its goal or posted in its thread), saved in
    its workspace; the agent is told of it in the next cycle. `transcript`: what an audio file
    says (AUDIO_TO_TEXT_PROVIDER); `image`: shown to the model as image input (SMART_LLM_VISION)."""

    name: str  # its path in the workspace
    mime: str
    size: int
    by: str
    transcript: str | None = None
    image: bool = False
    at: datetime = Field(default_factory=utcnow)


class ModelUsage(BaseModel):
    """What one model (or priced service) was used for: calls, tokens and spend."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def plus(self, other: ModelUsage) -> ModelUsage:
        return ModelUsage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
        )


class Usage(BaseModel):
    """Calls, tokens and spend, in all and (`by_model`) per model they were priced as. Usage
    recorded before `by_model` existed has none: its spend is in the totals only."""

    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    by_model: dict[str, ModelUsage] = Field(default_factory=dict)

    def priced_as(self, model: str) -> Usage:
        """This usage, recorded as `model`'s (unless it says per model already)."""
        if self.by_model or not (self.calls or self.cost_usd or self.prompt_tokens):
            return self
        part = ModelUsage(
            calls=self.calls,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost_usd=self.cost_usd,
        )
        return self.model_copy(update={"by_model": {model: part}})

    def plus(self, other: Usage) -> Usage:
        """The sum of two usages, per model too."""
        by_model = dict(self.by_model)
        for name, part in other.by_model.items():
            mine = by_model.get(name)
            by_model[name] = part if mine is None else mine.plus(part)
        return Usage(
            calls=self.calls + other.calls,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cost_usd=self.cost_usd + other.cost_usd,
            by_model=by_model,
        )


ScopeName = Literal["session", "user", "channel"]
PolicyWord = Literal["allow", "ask", "deny"]


class SessionProfile(BaseModel):
    """What a channel's profile set for a session when it started (None: the setting): its
    models, memory scope, approval policy and MCP servers. Kept with the session, so a later
    change of the profile does not change a session under way."""

    channel: str | None = None  # the channel key of the profile
    smart_llm: str | None = None
    fast_llm: str | None = None
    memory_scope: ScopeName | None = None
    tool_policy: dict[str, PolicyWord] | None = None
    mcp_servers: list[str] | None = None
    budget_usd: float | None = None  # a session's budget there: also what resuming at the limit adds


class Session(BaseModel):
    id: str
    version: int = 0
    owner: str  # user id on the platform
    owner_name: str | None = None
    place: Place
    goals: list[str]
    ai_name: str = "AutoGPT"
    ai_role: str = "an AI designed to autonomously reach the goals it is given"
    llm_mode: Literal["default", "fast", "smart"] = "default"
    continuous: bool = False
    continuous_limit: int | None = None
    state: SessionState = SessionState.PLANNING
    phase: Phase = Phase.THINK
    tasks_owed: int | None = None  # the step whose result the task list has not taken in yet
    tasks: list[str] = Field(default_factory=list)
    done_tasks: list[str] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    approvals_left: int = 0
    grants: list[ToolGrant] = Field(default_factory=list)  # commands always allowed in this session
    speak: bool = False  # --speak: each cycle's speak line and the summary are posted as audio
    inbox: list[Shared] = Field(default_factory=list)  # files shared since the last cycle, for the agent
    cycles: int = 0
    max_cycles: int | None = None  # this session's cycle limit (None: the setting); resuming extends it
    budget_usd: float | None = None  # this session's budget (None: the setting); resuming extends it
    pause_kind: Literal["limit", "error", "chat"] | None = None  # why it is paused
    schedule_id: str | None = None  # the schedule that started it
    forked_from: str | None = None  # `fork ID [STEP]`: the session it was copied from
    forked_at: int | None = None  # ... and the step it was copied at (its steps up to that one)
    goal_changes: list[GoalChange] = Field(default_factory=list)  # `goals ID add|remove|edit`, oldest first
    profile: SessionProfile | None = None  # what its channel's profile set for it (bot/profiles.py)
    usage: Usage = Field(default_factory=Usage)
    reason: str | None = None  # why it paused, stopped, failed or finished
    error: str | None = None  # the last error, kept for the record
    task_message: MessageRef | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None

    @property
    def user_key(self) -> str:
        return f"{self.place.platform}:{self.owner}"

    def cycle_limit(self, default: int) -> int:
        return self.max_cycles if self.max_cycles is not None else default

    def budget(self, default: float) -> float:
        return self.budget_usd if self.budget_usd is not None else default

    @property
    def pending_step(self) -> Step | None:
        if self.steps and self.steps[-1].status == StepStatus.PENDING:
            return self.steps[-1]
        return None

    @property
    def last_step(self) -> Step | None:
        return self.steps[-1] if self.steps else None

    @property
    def history(self) -> list[Step]:
        """The steps the agent sees as its past: all but those a human had it re-ask (`retry`)."""
        if not any(s.status == StepStatus.RETRIED for s in self.steps):
            return self.steps
        return [s for s in self.steps if s.status != StepStatus.RETRIED]

    @property
    def mode(self) -> str:
        if self.continuous:
            limit = self.continuous_limit
            return f"continuous ({limit} cycles)" if limit else "continuous"
        return "step by step"


class Actor(BaseModel):
    """Who acts: a user on a platform. `is_admin` is set by the adapter from its admin list."""

    platform: str
    user_id: str
    name: str | None = None
    is_admin: bool = False
    # the adapter's word that the platform lets this user manage the channel they act in (where it
    # says so cheaply); channel managers may change the channel's profile
    manages_channel: bool = False

    @property
    def label(self) -> str:
        return self.name or self.user_id


class Outcome(BaseModel):
    """What a command or decision did, in words for the user who asked; `place`: where a
    session it started lives (its thread), for the adapter to point at."""

    ok: bool
    message: str
    session_id: str | None = None
    place: Place | None = None


class ChannelProfile(BaseModel):
    """A channel's defaults for the sessions started in it (`profile set KEY VALUE`): None
    leaves the setting. A stored document (kind `profile`), keyed by `channel_key(place)`."""

    key: str  # platform:team:channel
    platform: str
    channel: str
    team: str | None = None
    ai_name: str | None = None
    ai_role: str | None = None
    smart_llm: str | None = None
    fast_llm: str | None = None
    budget_usd: float | None = None
    continuous_limit: int | None = None
    memory_scope: ScopeName | None = None
    tool_policy: dict[str, PolicyWord] | None = None
    mcp_servers: list[str] | None = None
    updated_by: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)

    @property
    def empty(self) -> bool:
        return all(getattr(self, key) is None for key in PROFILE_FIELDS)


#: The fields of a channel profile a user sets, in the order they are shown.
PROFILE_FIELDS: tuple[str, ...] = (
    "ai_name",
    "ai_role",
    "smart_llm",
    "fast_llm",
    "budget_usd",
    "continuous_limit",
    "memory_scope",
    "tool_policy",
    "mcp_servers",
)


def channel_key(place: Place) -> str:
    """The key of a place's channel (its thread left out): where a channel profile is kept."""
    return ":".join(p or "" for p in (place.platform, place.team, place.channel))


class Template(BaseModel):
    """Goals saved under a name (`template save NAME ID`) for `template run NAME` and schedules;
    one namespace per platform and team. A stored document (kind `template`)."""

    key: str  # platform:team:name
    name: str
    platform: str
    team: str | None = None
    goals: list[str]
    ai_name: str | None = None
    ai_role: str | None = None
    source: str | None = None  # the session it was saved from
    owner: str  # the user id of who saved it
    owner_name: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class UsageRecord(BaseModel):
    """What a usage report needs of one session (archived or live), without its transcript."""

    id: str
    user_key: str
    platform: str
    owner: str
    owner_name: str | None = None
    channel: str
    team: str | None = None
    cycles: int
    created_at: datetime
    usage: Usage

    @classmethod
    def of(cls, session: Session) -> UsageRecord:
        return cls(
            id=session.id,
            user_key=session.user_key,
            platform=session.place.platform,
            owner=session.owner,
            owner_name=session.owner_name,
            channel=session.place.channel,
            team=session.place.team,
            cycles=session.cycles,
            created_at=session.created_at,
            usage=session.usage,
        )
