"""The parts of one core that the engine and the service share, made once by `Core`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.adapter import ChatAdapter
    from bot.llm.client import LLMClient
    from bot.memory import Memory
    from bot.metrics import Metrics
    from bot.redact import Redactor
    from bot.settings import Settings
    from bot.store.archive import SessionArchive
    from bot.store.base import SessionStore
    from bot.tools import ToolRegistry


@dataclass
class Parts:
    settings: Settings
    store: SessionStore
    archive: SessionArchive
    llm: LLMClient
    tools: ToolRegistry
    memory: Memory
    metrics: Metrics
    redactor: Redactor  # the one filter every text that goes out passes through
    platforms: dict[str, ChatAdapter] = field(default_factory=dict)  # the adapters, by name


def _part(name: str) -> Any:
    return property(lambda self: getattr(self.parts, name), doc=f"the core's {name}")


class UsesParts:
    """A part of the core that works with the others: `self.store`, `self.llm`, ... are the
    core's own, so there is one of each."""

    settings: Settings = _part("settings")
    store: SessionStore = _part("store")
    archive: SessionArchive = _part("archive")
    llm: LLMClient = _part("llm")
    tools: ToolRegistry = _part("tools")
    memory: Memory = _part("memory")
    metrics: Metrics = _part("metrics")
    redactor: Redactor = _part("redactor")
    platforms: dict[str, ChatAdapter] = _part("platforms")

    def __init__(self, parts: Parts) -> None:
        self.parts = parts
