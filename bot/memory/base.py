"""The memory interface, `NoMemory`, scopes, and `VectorMemory`: embedding plus the error policy
shared by every backend.

A backend only stores and searches vectors for a *scope key* (see `scope_key`); it never sees a
session. What a memory call spends on embeddings is reported as a `Usage`: `add` and `search`
return it, `relevant` and `remember` hand it to an optional `spend` callback.

Two levels of failure handling:
- `add` / `search` (the tools) raise `MemoryUnavailable` with a message fit for the agent, and
  the usage already spent on the exception;
- `relevant` / `remember` (the engine, every cycle) never raise: they log and return [] / skip.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from bot.memory.embed import Embedder
from bot.memory.errors import MemoryUnavailable
from bot.models import Session, Usage
from bot.redact import Redactor
from bot.settings import Settings

log = logging.getLogger(__name__)

Spend = Callable[[Usage], None]

MAX_TEXT_CHARS = 16_000  # a memory longer than this is stored cut (the embedding sees its start)


class Memory(Protocol):
    async def open(self) -> None: ...

    async def relevant(
        self, session: Session, query: str, k: int = 5, *, spend: Spend | None = None
    ) -> list[str]: ...

    async def remember(self, session: Session, text: str, *, spend: Spend | None = None) -> None: ...

    async def add(self, session: Session, text: str) -> Usage: ...

    async def search(self, session: Session, query: str, k: int = 5) -> tuple[list[str], Usage]: ...

    async def close(self) -> None: ...


class NoMemory:
    """MEMORY_BACKEND=no_memory: remembers nothing and costs nothing."""

    async def open(self) -> None:
        return None

    async def relevant(
        self, session: Session, query: str, k: int = 5, *, spend: Spend | None = None
    ) -> list[str]:
        return []

    async def remember(self, session: Session, text: str, *, spend: Spend | None = None) -> None:
        return None

    async def add(self, session: Session, text: str) -> Usage:
        raise MemoryUnavailable("long-term memory is off (MEMORY_BACKEND=no_memory)")

    async def search(self, session: Session, query: str, k: int = 5) -> tuple[list[str], Usage]:
        return [], Usage()

    async def close(self) -> None:
        return None


def scope_key(session: Session, scope: str) -> str:
    """Who shares memories. `session`: this session only; `user`: every session of its owner on
    the platform; `channel`: everyone in the channel (platform, team and channel). A channel
    profile's MEMORY_SCOPE, kept with the session, wins over `scope`."""
    if session.profile is not None and session.profile.memory_scope:
        scope = session.profile.memory_scope
    if scope == "user":
        return f"user:{session.user_key}"
    if scope == "channel":
        place = session.place
        return "channel:" + json.dumps([place.platform, place.team or "", place.channel])
    return f"session:{session.id}"


def top_k(matrix: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    """Row numbers of the `k` rows of `matrix` (unit vectors) most similar to `query` (a unit
    vector), best first; ties keep the rows' order."""
    if matrix.size == 0 or k <= 0:
        return []
    scores = matrix @ query
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order[:k]]


class ScopeRows:
    """The decoded memories of one scope and dimension, oldest first, kept by this process so a
    search decodes only what was added since the last one (the store stays the truth: a backend
    checks it is still in step, and starts over when not)."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.texts: list[str] = []
        self._blocks: list[np.ndarray] = []
        self._matrix: np.ndarray | None = None

    def add(self, rows: list[tuple[int, bytes, str]], dim: int) -> None:
        if not rows:
            return
        rows.sort(key=lambda row: row[0])
        self.ids += [row[0] for row in rows]
        self.texts += [row[2] for row in rows]
        self._blocks.append(
            np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(len(rows), dim)
        )
        self._matrix = None

    def search(self, vector: np.ndarray, k: int) -> list[str]:
        """The `k` most similar, newest first among equals."""
        if not self.ids:
            return []
        if self._matrix is None:
            self._matrix = np.concatenate(self._blocks)[::-1]  # newest first: it wins a tie
            self._blocks = [self._matrix[::-1]]
        newest_first = self.texts[::-1]
        return [newest_first[i] for i in top_k(self._matrix, vector, k)]


class ScopeCache:
    """`ScopeRows` per (scope, dimension), the most recently used `limit` of them."""

    def __init__(self, limit: int = 256) -> None:
        self.limit = limit
        self._rows: dict[tuple[str, int], ScopeRows] = {}

    def get(self, scope: str, dim: int) -> ScopeRows:
        key = (scope, dim)
        rows = self._rows.pop(key, None) or ScopeRows()
        self._rows[key] = rows
        while len(self._rows) > self.limit:
            del self._rows[next(iter(self._rows))]
        return rows

    def drop(self, scope: str, dim: int) -> ScopeRows:
        self._rows.pop((scope, dim), None)
        return self.get(scope, dim)

    def clear(self) -> None:
        self._rows.clear()


def _distinct(texts: list[str], k: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for text in texts:
        if text not in seen:
            seen.add(text)
            out.append(text)
        if len(out) == k:
            break
    return out


class VectorMemory(ABC):
    """Embeds with `Embedder`; subclasses store and search the vectors of one scope key."""

    name = "memory"

    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or Embedder(settings)
        self.redactor = Redactor.of(settings)  # what is stored or embedded holds no secret
        self._opened = False
        self._client: Any = None  # the backend's connection, set by `_open`

    @property
    def client(self) -> Any:
        if self._client is None:
            raise MemoryUnavailable(f"{self.name} is not open")
        return self._client

    # ------------------------------------------------------------------ backend
    @abstractmethod
    async def _open(self) -> None:
        """Connect and create what is missing; raise MemoryUnavailable with a clear message."""

    @abstractmethod
    async def _close(self) -> None: ...

    @abstractmethod
    async def _wipe(self) -> None:
        """Delete every memory of this index (every scope)."""

    @abstractmethod
    async def _put(self, scope: str, text: str, vector: np.ndarray) -> None: ...

    @abstractmethod
    async def _query(self, scope: str, vector: np.ndarray, k: int) -> list[str]:
        """Texts of the `k` memories of `scope` most similar to `vector`, best first."""

    async def _has_any(self, scope: str) -> bool:
        """Whether `scope` holds any memory; a backend that can tell cheaply says so, so an
        empty memory costs no embedding before each cycle. Default: it may."""
        return True

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if self._opened:
            return
        await self._open()
        self._opened = True
        if self.settings.wipe_memory_on_start:
            try:
                await self._wipe()
            except Exception as exc:
                await self.close()
                raise MemoryUnavailable(f"could not wipe {self.name} (WIPE_MEMORY_ON_START): {exc}") from exc
            log.info("%s wiped (WIPE_MEMORY_ON_START)", self.name)

    async def close(self) -> None:
        try:
            if self._opened:
                self._opened = False
                await self._close()
        finally:
            await self.embedder.close()

    async def wipe(self) -> None:
        """Delete every memory of this index."""
        await self._wipe()

    def _check_open(self) -> None:
        if not self._opened:
            raise MemoryUnavailable(f"{self.name} is not open")

    # ------------------------------------------------------------------ tools
    async def add(self, session: Session, text: str) -> Usage:
        """Remember `text` in the session's scope; returns what the embedding cost."""
        self._check_open()
        text = self.redactor.text(text.strip())
        if not text:
            raise MemoryUnavailable("nothing to remember: the text is empty")
        text = text[:MAX_TEXT_CHARS]
        vector, usage = await self.embedder.embed(text)
        try:
            await self._put(scope_key(session, self.settings.memory_scope), text, vector)
        except MemoryUnavailable as exc:
            exc.usage = usage
            raise
        except Exception as exc:
            raise MemoryUnavailable(f"{self.name} could not store the memory: {exc}", usage) from exc
        return usage

    async def search(self, session: Session, query: str, k: int = 5) -> tuple[list[str], Usage]:
        """The `k` memories of the session's scope most similar to `query`, best first."""
        self._check_open()
        query = self.redactor.text(query.strip())
        if k <= 0 or not query:
            return [], Usage()
        vector, usage = await self.embedder.embed(query)
        try:
            # a few more than asked, so repeated memories (the same result twice) can be dropped
            found = await self._query(scope_key(session, self.settings.memory_scope), vector, 2 * k)
        except MemoryUnavailable as exc:
            exc.usage = usage
            raise
        except Exception as exc:
            raise MemoryUnavailable(f"{self.name} could not be searched: {exc}", usage) from exc
        return _distinct(found, k), usage

    # ------------------------------------------------------------------ engine
    async def relevant(
        self, session: Session, query: str, k: int = 5, *, spend: Spend | None = None
    ) -> list[str]:
        """Like `search`, but never raises: a failure is logged and gives []. An empty memory
        is not searched (no embedding is made for it)."""
        try:
            if not await self._has_any(scope_key(session, self.settings.memory_scope)):
                return []
            texts, usage = await self.search(session, query, k)
        except MemoryUnavailable as exc:
            _charge(spend, exc.usage)
            log.warning("session %s: no memories this cycle: %s", session.id, exc)
            return []
        except Exception:
            log.warning("session %s: no memories this cycle", session.id, exc_info=True)
            return []
        _charge(spend, usage)
        return texts

    async def remember(self, session: Session, text: str, *, spend: Spend | None = None) -> None:
        """Like `add`, but never raises: a failure is logged and the memory skipped."""
        if not text.strip():
            return
        try:
            usage = await self.add(session, text)
        except MemoryUnavailable as exc:
            _charge(spend, exc.usage)
            log.warning("session %s: memory not stored: %s", session.id, exc)
            return
        except Exception:
            log.warning("session %s: memory not stored", session.id, exc_info=True)
            return
        _charge(spend, usage)


def _charge(spend: Spend | None, usage: Usage) -> None:
    if spend is None or usage.calls == 0:
        return
    try:
        spend(usage)
    except Exception:
        log.warning("could not charge a memory embedding", exc_info=True)
