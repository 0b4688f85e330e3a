"""The one error long-term memory raises."""

from __future__ import annotations

from bot.models import Usage
from bot.store.base import StoreError


class MemoryUnavailable(StoreError):
    """Memory could not do what was asked (backend unreachable, embedding failed, bad setting).
    The message is fit to show a user or the agent; `usage` is what was spent anyway. A
    `StoreError`, so start-up code that reports an unreachable store reports this the same way."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage or Usage()
