"""MEMORY_BACKEND=pinecone: an existing Pinecone index, through the `pinecone` client's data plane
only (`pinecone.AsyncIndex`, on PINECONE_INDEX_HOST with PINECONE_API_KEY; never the control
plane, so the key needs no rights on the project's indexes). Pinecone Local works the same way
(PINECONE_INDEX_HOST=http://127.0.0.1:5081).

Layout: one namespace per memory scope, named `{MEMORY_INDEX}:{sha256(scope key)}` (the scope key
holds user and channel ids: only its hash reaches Pinecone). Several bots, or MEMORY_INDEX values,
can share one Pinecone index: a wipe (WIPE_MEMORY_ON_START) lists the namespaces with
describe_index_stats and empties only those of this MEMORY_INDEX. A memory's id is the SHA-256 of
its scope and text, so the same memory twice is stored once; its text is in the metadata (`text`),
cut to fit Pinecone's 40 KB metadata limit.

The index must exist, with the cosine metric and the dimension EMBEDDING_MODEL gives: `open`
checks it answers (and that the key is accepted) and learns its dimension; the first memory
stored or searched then checks the embedding's dimension against it, with a clear error.
Pinecone's serverless indexes are eventually consistent: a memory may take a moment to be found.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from bot.memory.base import VectorMemory
from bot.memory.embed import Embedder
from bot.memory.errors import MemoryUnavailable
from bot.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT_S = 10.0  # one request to the index
METADATA_MAX_BYTES = 40_960  # Pinecone's metadata limit per vector
TEXT_MAX_BYTES = 38_000  # the text's JSON, leaving room for the rest of the metadata
QUERY_TOP_K_MAX = 10_000


class IndexStats(BaseModel):
    """What describe_index_stats tells about the index."""

    dimension: int | None = None
    namespaces: dict[str, int] = Field(default_factory=dict)  # namespace -> vector count
    metric: str | None = None


def scope_hash(scope: str) -> str:
    return hashlib.sha256(scope.encode("utf-8")).hexdigest()


def memory_id(scope: str, text: str) -> str:
    """The same memory of the same scope always gets the same id (so it is stored once)."""
    return hashlib.sha256(f"{scope}\0{text}".encode()).hexdigest()


def fit_text(text: str, max_bytes: int = TEXT_MAX_BYTES) -> str:
    """`text`, cut so that its JSON encoding takes at most `max_bytes` bytes."""

    def size(t: str) -> int:
        return len(json.dumps(t, ensure_ascii=False).encode("utf-8"))

    if size(text) <= max_bytes:
        return text
    lo, hi = 0, len(text)  # the longest prefix that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if size(text[:mid]) <= max_bytes:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]


class PineconeMemory(VectorMemory):
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        super().__init__(settings, embedder)
        key = settings.pinecone_api_key.get_secret_value().strip() if settings.pinecone_api_key else ""
        host = (settings.pinecone_index_host or "").strip()
        missing = [n for n, v in (("PINECONE_API_KEY", key), ("PINECONE_INDEX_HOST", host)) if not v]
        if missing:
            raise MemoryUnavailable(
                f"MEMORY_BACKEND=pinecone needs {' and '.join(missing)} (the index's host, from the "
                "Pinecone console, or Pinecone Local's http://127.0.0.1:5081); set it, or choose "
                "MEMORY_BACKEND=local"
            )
        self._key = key
        self.host = host
        self.where = _where(host)
        self.prefix = f"{settings.memory_index}:"
        self.name = f"Pinecone index at {self.where} (MEMORY_INDEX {settings.memory_index})"
        self._own = re.compile(re.escape(self.prefix) + "[0-9a-f]{64}")
        self._dim: int | None = None

    def namespace(self, scope: str) -> str:
        return self.prefix + scope_hash(scope)

    # ------------------------------------------------------------------ lifecycle
    async def _open(self) -> None:
        try:
            from pinecone import AsyncIndex
        except ImportError as exc:  # pragma: no cover - a dependency of the bot
            raise MemoryUnavailable(f"MEMORY_BACKEND=pinecone needs the pinecone package: {exc}") from exc
        try:
            self._client = AsyncIndex(host=self.host, api_key=self._key, timeout=TIMEOUT_S)
        except Exception as exc:  # a malformed host
            raise MemoryUnavailable(f"PINECONE_INDEX_HOST is not usable: {self._explain(exc)}") from None
        try:
            stats = await self._stats()
        except MemoryUnavailable as exc:
            await self._close()
            raise MemoryUnavailable(f"cannot open {exc.message}") from None
        self._dim = stats.dimension
        if stats.metric and stats.metric.lower() != "cosine":
            log.warning(
                "%s uses the %s metric; memories are ranked best with cosine", self.name, stats.metric
            )

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def _wipe(self) -> None:
        stats = await self._stats()
        for namespace in sorted(stats.namespaces):
            if self._own.fullmatch(namespace):
                await self._call("wipe", self.client.delete(delete_all=True, namespace=namespace))

    # ------------------------------------------------------------------ data
    async def _put(self, scope: str, text: str, vector: np.ndarray) -> None:
        self._check_dimension(vector)
        row = {
            "id": memory_id(scope, text),
            "values": vector.astype(float).tolist(),
            "metadata": {"text": fit_text(text)},
        }
        await self._call(
            "store the memory", self.client.upsert(vectors=[row], namespace=self.namespace(scope))
        )

    async def _query(self, scope: str, vector: np.ndarray, k: int) -> list[str]:
        self._check_dimension(vector)
        found = await self._call(
            "search",
            self.client.query(
                vector=vector.astype(float).tolist(),
                top_k=max(1, min(k, QUERY_TOP_K_MAX)),
                namespace=self.namespace(scope),
                include_metadata=True,
            ),
        )
        texts: list[str] = []
        for match in getattr(found, "matches", None) or []:
            metadata = getattr(match, "metadata", None) or {}
            text = metadata.get("text") if isinstance(metadata, dict) else None
            if isinstance(text, str):
                texts.append(text)
        return texts

    def _check_dimension(self, vector: np.ndarray) -> None:
        dim = int(vector.size)
        if self._dim is not None and self._dim != dim:
            raise MemoryUnavailable(
                f"{self.name} has dimension {self._dim} but EMBEDDING_MODEL "
                f"{self.settings.embedding_model} gives {dim}-dimension vectors: use an index "
                f"created with dimension {dim} (metric cosine), or another EMBEDDING_MODEL"
            )

    # ------------------------------------------------------------------ calls
    async def _stats(self) -> IndexStats:
        reply = await self._call("read its stats", self.client.describe_index_stats())
        try:
            namespaces = {
                str(name): int(getattr(summary, "vector_count", 0) or 0)
                for name, summary in (getattr(reply, "namespaces", None) or {}).items()
            }
            return IndexStats(
                dimension=getattr(reply, "dimension", None) or None,
                namespaces=namespaces,
                metric=getattr(reply, "metric", None),
            )
        except (ValidationError, TypeError, ValueError) as exc:
            raise MemoryUnavailable(f"{self.name}: its stats could not be read: {exc}") from None

    async def _call(self, what: str, call: Any) -> Any:
        """Await a client call; any failure becomes MemoryUnavailable with a clear message."""
        try:
            return await call
        except MemoryUnavailable:
            raise
        except Exception as exc:
            raise MemoryUnavailable(f"{self.name}: could not {what}: {self._explain(exc)}") from None

    def _explain(self, exc: Exception) -> str:
        from pinecone.errors.exceptions import (
            ApiError,
            ForbiddenError,
            PineconeConnectionError,
            PineconeTimeoutError,
            UnauthorizedError,
        )

        status = getattr(exc, "status_code", None)
        detail = " ".join(str(getattr(exc, "message", None) or exc).split())[:300]
        if isinstance(exc, UnauthorizedError):
            text = f"PINECONE_API_KEY was rejected (HTTP 401): {detail}"
        elif isinstance(exc, ForbiddenError):
            text = f"PINECONE_API_KEY may not use this index (HTTP 403): {detail}"
        elif isinstance(exc, PineconeTimeoutError):
            text = f"no answer within {TIMEOUT_S:g} s"
        elif isinstance(exc, PineconeConnectionError):
            why = "connection refused" if _refused(exc) else detail
            text = f"cannot reach it ({why}); check PINECONE_INDEX_HOST"
        elif isinstance(exc, ApiError) and status is not None and status >= 500:
            text = f"Pinecone had a server error (HTTP {status}): {detail}"
        elif isinstance(exc, ApiError):
            text = f"Pinecone refused the request (HTTP {status}): {detail}"
        else:
            text = f"{type(exc).__name__}: {detail}"
        return text.replace(self._key, "[redacted]") if self._key else text


def _refused(exc: BaseException) -> bool:
    """Whether the connection was refused (httpx only says "All connection attempts failed")."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, ConnectionRefusedError) or "refused" in str(link).lower():
            return True
        link = link.__cause__ or link.__context__
    return False


def _where(host: str) -> str:
    """The index's host without scheme or credentials, fit for a message."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(host if "://" in host else f"https://{host}")
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.hostname}{port}" if parts.hostname else "PINECONE_INDEX_HOST"
    except ValueError:
        return "PINECONE_INDEX_HOST"
