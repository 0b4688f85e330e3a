"""Tools the agent can call. `default_registry()` has every built-in tool."""

from __future__ import annotations

from pydantic import BaseModel

from bot.settings import Settings
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
    "by_section",
    "default_registry",
]


def by_section(settings: Settings, registry: ToolRegistry | None = None, mcp: list[str] | None = None) -> str:
    """For `check-config`: per section of the settings, which commands are offered and why the
    others are not; --speak's voice and what files shared in chat become; each MCP server (`mcp`:
    on with its tools, or off and why)."""
    from bot.media import speech

    registry = registry or default_registry()
    sections: dict[str, list[str]] = {}
    for tool in registry.all():
        if tool.section == "MCP tool servers":
            continue  # by server, below
        why = tool.off(settings)
        if why is None and tool.name in settings.disabled_commands:
            why = "in DISABLED_COMMANDS"
        state = "on" if why is None else f"off ({why})"
        sections.setdefault(tool.section, []).append(f"{tool.name}: {state}")
    voice = speech.speech_off(settings)
    sections.setdefault("Text to speech", []).append(
        f"--speak: {settings.text_to_speech_provider}" if voice is None else f"--speak: off ({voice})"
    )
    heard = speech.transcription_off(settings)
    sections.setdefault("Audio to text", []).append(
        "audio shared in chat: transcribed"
        if heard is None
        else f"audio shared in chat: not transcribed ({heard})"
    )
    sections["LLM models"] = [
        "images shared in chat: "
        + (
            "shown to SMART_LLM"
            if settings.smart_llm_vision
            else "named to the agent (SMART_LLM_VISION=false)"
        )
    ]
    sections.setdefault("Memory", []).append(f"MEMORY_BACKEND={settings.memory_backend}")
    if mcp:
        sections["MCP tool servers"] = list(mcp)
    lines = ["Tools by section:"]
    for section in sorted(sections):
        lines.append(f"  {section}:")
        lines += [f"    {item}" for item in sections[section]]
    return "\n".join(lines)
