"""The shapes the LLM must reply in. Their JSON schemas go out as Structured Outputs."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.models import CommandCall, Thoughts

MAX_THOUGHT_CHARS = 4000  # each of a step's thoughts, as kept and shown
MAX_TASK_CHARS = 500  # one task
MAX_TASK_ITEMS = 100  # tasks read from one reply (the engine keeps at most 20)
MAX_COMMAND_CHARS = 100


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class ReplyThoughts(BaseModel):
    text: str = Field(description="thought")
    reasoning: str = Field("", description="reasoning")
    plan: str = Field("", description="- short bulleted\n- list that conveys\n- long-term plan")
    criticism: str = Field("", description="constructive self-criticism")
    speak: str = Field("", description="thoughts summary to say to user")

    @field_validator("plan", mode="before")
    @classmethod
    def _plan_list(cls, v: Any) -> Any:
        if isinstance(v, list):  # models often send the plan as a list
            return "\n".join(f"- {str(x).lstrip('- ')}" for x in v)
        return v

    def to_thoughts(self) -> Thoughts:
        return Thoughts(**{k: clip(v, MAX_THOUGHT_CHARS) for k, v in self.model_dump().items()})


class ReplyCommand(BaseModel):
    name: str = Field(min_length=1, description="command name")
    args: dict[str, Any] = Field(default_factory=dict, description="arguments, by name")

    @field_validator("name")
    @classmethod
    def _not_placeholder(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("the command name is empty")
        return clip(v, MAX_COMMAND_CHARS)

    def to_call(self) -> CommandCall:
        return CommandCall(name=self.name, args=self.args)


class ExecutionReply(BaseModel):
    """AutoGPT's reply: thoughts and one command."""

    thoughts: ReplyThoughts
    command: ReplyCommand


class TaskListReply(BaseModel):
    """Task creation and prioritisation reply with an ordered list of tasks."""

    model_config = ConfigDict(extra="forbid")
    tasks: list[str]

    @field_validator("tasks", mode="before")
    @classmethod
    def _clean(cls, v: Any) -> Any:
        if isinstance(v, list):
            out: list[str] = []
            seen: set[str] = set()
            for item in v[:MAX_TASK_ITEMS]:
                if isinstance(item, dict):  # {"task": "..."} or {"name": ...}
                    item = next((x for x in item.values() if isinstance(x, str)), "")
                text = clip(str(item).strip(), MAX_TASK_CHARS)
                if text and text not in seen:
                    seen.add(text)
                    out.append(text)
            return out
        return v


@lru_cache(maxsize=32)
def response_format(model: type[BaseModel], name: str, strict: bool) -> dict[str, Any]:
    """The Structured Outputs request for `model` (built once: the schema never changes)."""
    schema = model.model_json_schema()
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": strict}}
