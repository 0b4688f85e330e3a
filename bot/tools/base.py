"""The tool registry. Each tool declares its arguments (a pydantic model used both to describe
the command in the prompt and to validate what the model sends), whether it has effects outside
the session, the section of the settings it serves, and why its settings leave it off (`off`:
None when it is on), which `check-config` shows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from bot import policy
from bot.models import Session, Usage
from bot.settings import Settings, Unit


class ToolError(Exception):
    """A tool could not do what was asked; the message goes back to the agent."""


class OutFile(BaseModel):
    """A file a command made, shown in chat as an attachment: `name` is its path in the
    workspace; `mime` its type (an image is shown as one, audio can be played)."""

    name: str
    content: bytes
    comment: str = ""
    mime: str = "text/plain"


@dataclass
class ToolOutput:
    """What a command returns when it is more than text: `text` for the agent, whether it went
    well, and files for the chat."""

    text: str
    ok: bool = True
    files: list[OutFile] = field(default_factory=list)


@dataclass
class ToolContext:
    """What a tool gets. A tool that calls the LLM adds what it spent to `usage`; the engine
    charges it to the session and the user's daily budget with the command's result."""

    session: Session
    settings: Settings
    workspace: Path
    step_no: int = 0  # the step the command runs for
    llm: Any = None  # bot.llm.client.LLMClient
    memory: Any = None  # bot.memory.Memory
    usage: Usage = field(default_factory=Usage)

    def spend(self, usage: Usage) -> None:
        self.usage = self.usage.plus(usage)

    def charge(self, model: str, unit: Unit, amount: float) -> float:
        """Charge a provider's call priced per unit (MODEL_PRICES: an image, a minute of audio,
        1,000 characters spoken); the engine adds it to the session and the user's day.
        Returns its cost."""
        cost = self.settings.unit_price(model, unit) * amount
        self.spend(Usage(calls=1, cost_usd=cost).priced_as(model))
        return cost

    def afford(self, model: str, unit: Unit, amount: float) -> None:
        """Refuse (ToolError) a priced call the session's budget cannot pay for."""
        cost = self.settings.unit_price(model, unit) * amount
        left = self.session.budget(self.settings.session_budget_usd) - self.session.usage.cost_usd
        left -= self.usage.cost_usd
        if cost > 0 and cost > left:
            raise ToolError(
                f"Not done: it would cost ${cost:.4f} and the session has ${max(left, 0):.4f} left "
                "of its budget."
            )


Runner = Callable[[ToolContext, Any], Awaitable[str | ToolOutput]]
Off = Callable[[Settings], str | None]


def always_on(_settings: Settings) -> str | None:
    return None


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[BaseModel]
    run: Runner
    outside_effects: bool = False
    off: Off = always_on  # why its settings leave it off; None: it is on
    section: str = "General"  # the section of the settings it serves

    def enabled(self, settings: Settings) -> bool:
        return self.off(settings) is None

    def withdrawn(self) -> str | None:
        """Why the tool is not offered right now, although its settings have it on (an MCP
        server that is down); None: it is offered."""
        return None

    def prompt_line(self) -> str:
        fields = ", ".join(f'"{n}": "<{n}>"' for n in self.args.model_fields)
        return (
            f"{self.name}: {self.description}, args: {fields}"
            if fields
            else f"{self.name}: {self.description}"
        )

    def validate(self, args: dict[str, Any]) -> BaseModel:
        try:
            return self.args.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors()[:5]
            )
            raise ToolError(
                f"Invalid arguments for {self.name}: {problems}. Expected: {self.prompt_line()}"
            ) from None


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def add(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ValueError(f"tool {tool.name} registered twice")
        self._tools[tool.name] = tool
        return tool

    def tool(
        self,
        name: str,
        description: str,
        args: type[BaseModel],
        *,
        outside_effects: bool = False,
        off: Off = always_on,
        section: str = "General",
    ) -> Callable[[Runner], Runner]:
        def register(fn: Runner) -> Runner:
            self.add(Tool(name, description, args, fn, outside_effects, off, section))
            return fn

        return register

    def remove(self, name: str) -> None:
        self._tools.pop(name, None)

    def available(self, settings: Settings) -> list[Tool]:
        """The commands offered to the agent: enabled by their settings, not disabled, not denied
        by TOOL_POLICY, not withdrawn for now."""
        return [t for t in self._tools.values() if self._offered(t, settings) and t.withdrawn() is None]

    def get(self, name: str, settings: Settings) -> Tool | None:
        tool = self._tools.get(name)
        return tool if tool is not None and self._offered(tool, settings) else None

    def all(self) -> list[Tool]:
        return list(self._tools.values())

    @staticmethod
    def _offered(tool: Tool, settings: Settings) -> bool:
        return (
            tool.name not in settings.disabled_commands
            and not policy.denied(tool.name, settings)
            and tool.enabled(settings)
        )

    def names(self) -> list[str]:
        return list(self._tools)
