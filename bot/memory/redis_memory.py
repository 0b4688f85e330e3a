"""MEMORY_BACKEND=redis: the bot's Redis (REDIS_URL), searched client-side with numpy.

Plain Redis has no vector index, so each scope is one hash and a search loads only that hash.
The client comes from bot/store/redis_client.py: one Redis, a Redis Cluster or Sentinel. No
command touches two keys at once (a memory's hash and the set of scopes are written one after the
other), so each scope's hash may live on any node of a cluster.
Keys, under REDIS_PREFIX:
  memory:{index}:scope:{scope}  HASH  memory id -> dim (4 bytes LE) + float32 vector + UTF-8 text
  memory:{index}:scopes         SET   the scopes that have memories (what a wipe deletes)
  memory:{index}:seq            STRING the last memory id (INCR)
"""

from __future__ import annotations

import struct

import numpy as np

from bot.memory.base import ScopeCache, VectorMemory
from bot.memory.embed import Embedder
from bot.memory.errors import MemoryUnavailable
from bot.settings import Settings
from bot.store.redis_client import RedisTarget, open_redis

_DIM = struct.Struct("<I")
WIPE_BATCH = 500


def pack(vector: np.ndarray, text: str) -> bytes:
    return _DIM.pack(int(vector.size)) + vector.astype("<f4").tobytes() + text.encode("utf-8")


def unpack(value: bytes) -> tuple[int, bytes, str]:
    """(dim, vector bytes, text) of a stored memory."""
    (dim,) = _DIM.unpack_from(value)
    end = _DIM.size + 4 * dim
    return dim, value[_DIM.size : end], value[end:].decode("utf-8", errors="replace")


class RedisMemory(VectorMemory):
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        super().__init__(settings, embedder)
        if not settings.redis_configured:
            raise MemoryUnavailable(
                "MEMORY_BACKEND=redis needs REDIS_URL or REDIS_SENTINEL (the Redis the bot uses); set it, "
                "or choose MEMORY_BACKEND=local"
            )
        self._target = RedisTarget.of(settings)
        self.where = self._target.where
        self.name = f"Redis memory at {self.where}"
        self.base = f"{settings.redis_prefix}memory:{settings.memory_index}:"
        self._cache = ScopeCache()
        self._other_dims: dict[str, set[int]] = {}  # ids of a scope's memories of another dimension

    def _scope_key(self, scope: str) -> str:
        return f"{self.base}scope:{scope}"

    async def _open(self) -> None:
        self._client = await open_redis(
            self._target, decode_responses=False, error=MemoryUnavailable, name=self.name
        )

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _wipe(self) -> None:
        scopes_key = f"{self.base}scopes"
        while True:
            batch = await self.client.spop(scopes_key, WIPE_BATCH)
            if not batch:
                break
            await self.client.delete(*(self._scope_key(s.decode("utf-8")) for s in batch))
        await self.client.delete(f"{self.base}seq", scopes_key)
        self._cache.clear()
        self._other_dims.clear()

    async def _put(self, scope: str, text: str, vector: np.ndarray) -> None:
        memory_id = await self.client.incr(f"{self.base}seq")
        # the scope is listed first, so a wipe finds every scope that has memories; two keys of
        # two slots, so not one transaction (a cluster refuses MULTI across slots)
        await self.client.sadd(f"{self.base}scopes", scope)
        await self.client.hset(self._scope_key(scope), str(memory_id), pack(vector, text))

    async def _has_any(self, scope: str) -> bool:
        return bool(await self.client.exists(self._scope_key(scope)))

    async def _query(self, scope: str, vector: np.ndarray, k: int) -> list[str]:
        dim = int(vector.size)
        key = self._scope_key(scope)
        known = self._cache.get(scope, dim)
        fields = {int(f) for f in await self.client.hkeys(key)}  # ids only: small
        seen = set(known.ids) | self._other_dims.get(scope, set())
        if not seen <= fields:  # something this process knew is gone (a wipe): start over
            known, seen = self._cache.drop(scope, dim), set()
            self._other_dims.pop(scope, None)
        new = sorted(fields - seen)
        rows: list[tuple[int, bytes, str]] = []
        if new:  # only what was added since this process last looked is fetched and decoded
            for field, value in zip(new, await self.client.hmget(key, [str(f) for f in new]), strict=True):
                if value is None:
                    continue
                got_dim, raw, text = unpack(value)
                if got_dim == dim:  # memories of another embedding model are not comparable
                    rows.append((field, raw, text))
                else:
                    self._other_dims.setdefault(scope, set()).add(field)
        known.add(rows, dim)
        return known.search(vector, k)
