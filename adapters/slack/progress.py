"""Live progress, paced for Slack: what the engine is doing, shown where the user looks.

The engine says what a session is doing at each phase's start and end (`ChatAdapter.progress`).
Slack allows about one edit of a message a second, and most phases are over in a blink, so an
`Indicator` (one per session) puts a text up only when it is still wanted `SHOW_AFTER_S` after it
was asked for (no flicker for fast phases), at most once every `MIN_GAP_S` (the latest text
wins, nothing queues up), and takes it down when nothing is being done any more. What it shows
through is given by the adapter: a status line on the task list message (a channel thread) or
`assistant.threads.setStatus` (an assistant thread).

All of this is process memory on purpose: progress describes this process's work and is fine to
lose on a restart; it never goes into the stored session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final

from bot.adapter import Inflight

log = logging.getLogger(__name__)

SHOW_AFTER_S: Final = 0.3  # a phase is shown only if it still runs this long after it began
HIDE_AFTER_S: Final = 0.3  # taken down only if nothing follows within this (no clear-and-show)
SHOW_WITHIN_S: Final = 0.6  # however often the words change, something is up this soon
MIN_GAP_S: Final = 0.9  # between two changes of one indicator (Slack: about 1 edit a second)
CLOSE_TIMEOUT_S: Final = 3.0

#: puts `text` up, or takes the indicator down (None)
Show = Callable[[str | None], Awaitable[None]]


@dataclass
class Indicator:
    """One session's indicator: what is shown, what is wanted since when, and its pace."""

    key: str
    show: Show
    shown: str | None = None
    wanted: str | None = None
    changed_at: float = 0.0  # when `wanted` last changed
    on_at: float = 0.0  # when something was last wanted after nothing
    last: float = float("-inf")  # time.monotonic() of the last change of what carries it
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one edit of its message at a time
    task: asyncio.Task[None] | None = None


class Pacer:
    """The indicators of every session this process shows progress for."""

    def __init__(
        self, inflight: Inflight, show_after: float = SHOW_AFTER_S, min_gap: float = MIN_GAP_S
    ) -> None:
        self.inflight = inflight
        self.show_after = show_after
        self.min_gap = min_gap
        self.items: dict[str, Indicator] = {}

    def get(self, key: str) -> Indicator | None:
        return self.items.get(key)

    def want(self, key: str, text: str | None, show: Show) -> None:
        """Ask for `text` (None: nothing) on `key`'s indicator; it is passed on in the background."""
        item = self.items.get(key)
        if item is None:
            if text is None:
                return  # nothing shown, nothing wanted
            item = self.items[key] = Indicator(key, show)
        item.show = show
        if text != item.wanted:
            now = time.monotonic()
            if item.wanted is None:
                item.on_at = now
            item.wanted, item.changed_at = text, now
        if item.task is None or item.task.done():
            item.task = asyncio.create_task(self._pump(item), name=f"slack-progress-{key}")

    def ripe_at(self, item: Indicator) -> float:
        """When what is wanted may replace what is shown, pace aside: a text once it has been
        wanted `show_after` (and at the latest `SHOW_WITHIN_S` after something was first
        wanted), nothing once nothing has been wanted `hide_after`."""
        if item.wanted is None:
            return item.changed_at + HIDE_AFTER_S
        return min(item.changed_at + self.show_after, item.on_at + max(self.show_after, SHOW_WITHIN_S))

    def for_edit(self, item: Indicator) -> str | None:
        """The message carrying `item` is being edited anyway: the text to put in that edit. A
        wanted text that is ripe, or nothing wanted any more, is taken along."""
        if item.wanted != item.shown and (item.wanted is None or time.monotonic() >= self.ripe_at(item)):
            item.shown = item.wanted
        item.last = time.monotonic()
        return item.shown

    def forget(self, key: str) -> None:
        item = self.items.pop(key, None)
        if item is not None and item.task is not None:
            item.task.cancel()

    async def _pump(self, item: Indicator) -> None:
        async with self.inflight():
            while item.wanted != item.shown:
                now = time.monotonic()
                due = max(item.last + self.min_gap, self.ripe_at(item))
                if due > now:
                    await asyncio.sleep(due - now)
                    continue  # what is wanted may have changed meanwhile
                async with item.lock:
                    if item.wanted == item.shown:
                        break
                    text = item.wanted
                    item.shown, item.last = text, time.monotonic()
                    try:
                        await item.show(text)
                    except Exception as exc:  # progress is a courtesy: log it, never raise it
                        log.info("progress of %s not shown: %s", item.key, exc)
            if item.shown is None and item.wanted is None and self.items.get(item.key) is item:
                del self.items[item.key]  # nothing shown: nothing to remember

    async def close(self) -> None:
        """Stop pacing: take down every indicator still up (best effort), then stop."""
        items = list(self.items.values())
        for item in items:
            if item.task is not None:
                item.task.cancel()
        for item in items:
            if item.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await item.task
        shown = [item for item in items if item.shown is not None]

        async def take_down(item: Indicator) -> None:
            async with item.lock:
                item.wanted = item.shown = None
                with contextlib.suppress(Exception):
                    await item.show(None)

        if shown:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    asyncio.gather(*(take_down(i) for i in shown), return_exceptions=True), CLOSE_TIMEOUT_S
                )
        self.items.clear()
