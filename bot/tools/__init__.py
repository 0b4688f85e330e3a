"""Tools the agent can call. `default_registry()` has every built-in tool."""

from __future__ import annotations

from pydantic import BaseModel

from bot.tools import code, files, github, media, memory_tools, search, twitter, web
from bot.tools.base import OutFile, Tool, ToolContext, ToolError, ToolOutput, ToolRegistry

FINISH = "finish"


class FinishArgs(BaseModel):
    reason: str = "goals accomplished"


async def _finish(ctx: ToolContext, args: FinishArgs) -> str:  # the engine ends the session
    return args.reason


def default_registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.add(Tool(FINISH, "Task complete (shutdown): use it when every goal is met", FinishArgs, _finish))
    files.register(registry)
    search.register(registry)
    web.register(registry)
    code.register(registry)
    memory_tools.register(registry)
    media.register(registry)
    github.register(registry)
    twitter.register(registry)
    return registry


__all__ = [
    "FINISH",
    "OutFile",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolOutput",
    "ToolRegistry",
    "default_registry",
]
