"""The one contract every chat adapter implements (errbot's `Backend` is the model).

An adapter is a folder under `adapters/` with a `ChatAdapter` subclass, registered as an entry
point of the group `autogpt_bot.adapters` (pyproject.toml). The core posts through it
(`open_session`, `post`, `update`, `upload`); `autogpt-bot run` finds it, reads its settings
(`settings_class`: a pydantic-settings class with the adapter's own env prefix), starts every
adapter that `wanted` says the admin set up, and stops them at the end. What users do reaches
the core through `core.service` only. adapters/README.md says how to add one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic_settings import BaseSettings

from bot.models import MessageRef, Place
from bot.presenter.views import ProgressView, SessionHeaderView, View

if TYPE_CHECKING:
    from bot.metrics import Metrics

log = logging.getLogger(__name__)

ENTRY_POINTS = "autogpt_bot.adapters"


class PlatformError(Exception):
    """A chat platform refused or failed a send for good (after its own retries)."""


class AdapterStartError(Exception):
    """An adapter cannot start with these settings; the message is one line for the admin."""


class ChatAdapter(ABC):
    """A chat platform: how the core's views are shown there, and its connection's life.
    `autogpt-bot run` makes one with `cls(core, settings)`, `settings` an instance of its
    `settings_class`."""

    name: ClassVar[str]
    settings_class: ClassVar[type[BaseSettings] | None] = None  # the adapter's own settings
    metrics: Metrics | None = None  # given by Core.add_platform: failed API calls are counted
    # `autogpt-bot run --role worker` sets it before `start`: connect nothing that receives (no
    # socket, HTTP endpoint or gateway), only what posts, updates and uploads (the Web API); the
    # sessions this process drives were received by an ingress process
    post_only: bool = False

    # ------------------------------------------------------------------ set-up (class level)

    @classmethod
    def wanted(cls, settings: Any) -> bool:
        """Whether the admin set this adapter up (`run` starts those that are wanted)."""
        return False

    @classmethod
    def problem(cls, settings: Any) -> str | None:
        """What is missing or wrong in `settings` to start, in one line; None when all is there."""
        return None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:  # noqa: B027 - an adapter with nothing to connect keeps it
        """Connect (or listen) and add this adapter to the core; raise AdapterStartError. With
        `post_only`, only log in to the API it posts through, then add it to the core."""

    async def stop_receiving(self) -> None:  # noqa: B027 - an adapter that receives nothing keeps it
        """Stop receiving (close the socket, endpoint or gateway) and let handlers that already
        acknowledged finish, but keep what posts: `autogpt-bot run` then lets the drives wind down
        (they may still post, update and upload) before it calls `stop`. Idempotent."""

    async def stop(self) -> None:  # noqa: B027
        """Stop receiving, let handlers that already acknowledged finish, disconnect."""

    async def connected(self) -> bool:
        """For /healthz: whether the platform can reach us right now."""
        return True

    # ------------------------------------------------------------------ what the core calls

    @abstractmethod
    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        """Post a session's root message where it was asked for; return the place (thread) the
        session lives in from now on."""

    @abstractmethod
    async def post(self, place: Place, view: View) -> MessageRef: ...

    @abstractmethod
    async def update(self, ref: MessageRef, view: View) -> None: ...

    @abstractmethod
    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None: ...

    async def progress(self, place: Place, view: ProgressView) -> None:  # noqa: B027
        """Show what the engine is doing for the session in `place` (a spinner, a status line,
        "typing"); an empty `view.doing` clears it. Called at each phase's start and end, so a
        platform with rate limits should only pass on what is still true (the latest view).
        An adapter without a live indicator keeps this default: nothing."""


class Inflight:
    """Counts an adapter's handlers still running after they acknowledged a request, so a
    shutdown (or a test) can wait for them: `async with inflight(): ...`, `await inflight.wait()`."""

    def __init__(self) -> None:
        self.busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @contextlib.asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        self.busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self.busy -= 1
            if self.busy == 0:
                self._idle.set()

    async def wait(self) -> None:
        await self._idle.wait()


def adapter_classes() -> dict[str, type[ChatAdapter]]:
    """Every installed adapter, by name, from the entry point group."""
    found: dict[str, type[ChatAdapter]] = {}
    for point in sorted(entry_points(group=ENTRY_POINTS), key=lambda p: p.name):
        try:
            cls = point.load()
        except Exception:
            log.exception("adapter %s could not be loaded", point.name)
            continue
        if isinstance(cls, type) and issubclass(cls, ChatAdapter):
            found[point.name] = cls
    return found
