"""Platform-neutral views the core hands to adapters, and the interface adapters implement.

A view says what to show; each adapter decides how (Block Kit, an embed, coloured text).
Buttons carry nothing but ids: a `DecisionOption` is (session id, step number, action).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from bot.models import MessageRef, Place, Thoughts

Action = Literal["approve", "approve_n", "feedback", "stop", "pause"]


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
    approvals_left: int = 0
    budget_left_usd: float | None = None
    note: str | None = None


class ResultView(BaseModel):
    kind: Literal["result"] = "result"
    session_id: str
    step_no: int
    command: str
    output: str
    ok: bool = True


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


View = SessionHeaderView | TaskListView | StepView | ResultView | SummaryView | NoticeView


class PlatformError(Exception):
    """A chat platform refused or failed a send for good (after its own retries)."""


class ChatPlatform(Protocol):
    """What the core needs from a chat platform. Adapters implement it; so does the test platform."""

    name: str

    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        """Post the session's root message where it was asked for; return the place (thread) the
        session lives in from now on."""
        ...

    async def post(self, place: Place, view: View) -> MessageRef: ...

    async def update(self, ref: MessageRef, view: View) -> None: ...

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None: ...
