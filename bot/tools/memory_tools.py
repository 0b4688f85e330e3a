"""AutoGPT's long-term memory commands: `memory_add` and `memory_search`, on the session's memory
(`ctx.memory`, in its MEMORY_SCOPE). Off with MEMORY_BACKEND=no_memory. What the embeddings cost
is charged to the session through `ctx.spend`."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, Field

from bot.memory.errors import MemoryUnavailable
from bot.settings import Settings
from bot.tools.base import ToolContext, ToolError, ToolRegistry

SEARCH_RESULTS = 5
SHOWN_CHARS = 2000  # of each memory in a search result


class MemoryAddArgs(BaseModel):
    # AutoGPT's prompt called the argument "string"; both are accepted.
    text: str = Field(min_length=1, validation_alias=AliasChoices("text", "string"))


class MemorySearchArgs(BaseModel):
    query: str = Field(min_length=1)


def memory_off(settings: Settings) -> str | None:
    return "MEMORY_BACKEND=no_memory" if settings.memory_backend == "no_memory" else None


def _memory(ctx: ToolContext) -> Any:
    if ctx.memory is None:
        raise ToolError("long-term memory is not available")
    return ctx.memory


def register(registry: ToolRegistry) -> None:
    @registry.tool("memory_add", "Add to long-term memory", MemoryAddArgs, off=memory_off, section="Memory")
    async def memory_add(ctx: ToolContext, args: MemoryAddArgs) -> str:
        memory = _memory(ctx)
        try:
            usage = await memory.add(ctx.session, args.text)
        except MemoryUnavailable as exc:
            ctx.spend(exc.usage)
            raise ToolError(f"could not add to memory: {exc.message}") from None
        ctx.spend(usage)
        shown = args.text.strip()
        if len(shown) > 200:
            shown = shown[:200] + "..."
        return f'Committed to memory: "{shown}"'

    @registry.tool(
        "memory_search", "Search long-term memory", MemorySearchArgs, off=memory_off, section="Memory"
    )
    async def memory_search(ctx: ToolContext, args: MemorySearchArgs) -> str:
        memory = _memory(ctx)
        try:
            found, usage = await memory.search(ctx.session, args.query, SEARCH_RESULTS)
        except MemoryUnavailable as exc:
            ctx.spend(exc.usage)
            raise ToolError(f"could not search memory: {exc.message}") from None
        ctx.spend(usage)
        if not found:
            return f'No memories found for "{args.query}".'
        lines = [f'Memories most relevant to "{args.query}":']
        for i, text in enumerate(found, 1):
            if len(text) > SHOWN_CHARS:
                text = text[:SHOWN_CHARS] + " [...]"
            lines.append(f"{i}. {text}")
        return "\n".join(lines)
