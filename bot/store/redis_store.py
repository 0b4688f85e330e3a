"""The session store on Redis: shared by every bot process, atomic through Lua scripts.

Keys, all under the prefix:
  session:{id}       HASH  v (version), h (head: the session's JSON without its steps), n (number
                           of steps), u (user key), s (state); d (the whole session's JSON) in a
                           session stored by an older version, until its next commit
  steps:{id}         LIST  the JSON of each step, in order
  user:{user_key}    ZSET  session ids scored by created_at (pruned lazily when a session expires)
  active             SET   ids of sessions not in a terminal state
  spend:{day}:{user} STRING USD spent, INCRBYFLOAT, expires after 3 days
  lease:{id}         STRING the holder, with a PX expiry
  claim:{key}        STRING "1", with a PX expiry (see `claim`)

A commit (one Lua script) checks the version, writes the head and only the steps that changed
(LSET, RPUSH, LTRIM), so its cost does not grow with the session's length. A session in the
older single-JSON layout (`d`) is read as it is and rewritten whole in this layout by its next
commit. A process of the older version finds no `d` in a rewritten session and takes it as
missing: it never writes one back without its steps.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.models import Session, SessionState
from bot.store.base import SessionExists, SessionStore, StoreError, decode_session, opened

SPEND_TTL_S = 3 * 86400
POOL_WAIT_S = 20.0  # how long a command waits for a free connection of a full pool

# KEYS: session, steps, user index, active set.  ARGV: head, user key, state, created_at score, id,
# terminal ("1"/"0"), finished ttl in ms, number of steps, then the JSON of each step.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'v', '1', 'h', ARGV[1], 'n', ARGV[8], 'u', ARGV[2], 's', ARGV[3])
for i = 9, #ARGV, 512 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 511, #ARGV)))
end
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
if ARGV[6] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
else
  redis.call('SADD', KEYS[4], ARGV[5])
end
return 1
"""

# KEYS: session, steps, active set.  ARGV: expected version, head, state, terminal ("1"/"0"),
# finished ttl in ms, id, steps stored before (-1: replace them all), number of steps, then
# (position, JSON) of each step to write, ascending.
# Returns 1 when written, 0 when the version is not the expected one, -1 when the version is
# right but the steps stored are not the ones the changes apply to (an older layout): write all.
_SAVE = """
local v = redis.call('HGET', KEYS[1], 'v')
if (not v) or v ~= ARGV[1] then return 0 end
local base = tonumber(ARGV[7])
local n = tonumber(ARGV[8])
if base >= 0 then
  if redis.call('HEXISTS', KEYS[1], 'h') == 0 or redis.call('LLEN', KEYS[2]) ~= base then return -1 end
  if n < base then
    if n == 0 then redis.call('DEL', KEYS[2]) else redis.call('LTRIM', KEYS[2], 0, n - 1) end
  end
  for i = 9, #ARGV, 2 do
    local at = tonumber(ARGV[i])
    if at < base then
      redis.call('LSET', KEYS[2], at, ARGV[i + 1])
    else
      redis.call('RPUSH', KEYS[2], ARGV[i + 1])
    end
  end
else
  redis.call('DEL', KEYS[2])
  local batch = {}
  for i = 10, #ARGV, 2 do
    batch[#batch + 1] = ARGV[i]
    if #batch == 512 then
      redis.call('RPUSH', KEYS[2], unpack(batch))
      batch = {}
    end
  end
  if #batch > 0 then redis.call('RPUSH', KEYS[2], unpack(batch)) end
end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(ARGV[1]) + 1), 'h', ARGV[2], 'n', ARGV[8], 's', ARGV[3])
redis.call('HDEL', KEYS[1], 'd')
if ARGV[4] == '1' then
  redis.call('SREM', KEYS[3], ARGV[6])
  redis.call('PEXPIRE', KEYS[1], ARGV[5])
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
else
  redis.call('SADD', KEYS[3], ARGV[6])
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
return 1
"""

# KEYS: session, steps.  Returns {head or false, whole JSON (older layout) or false, n, steps}.
_LOAD = """
local f = redis.call('HMGET', KEYS[1], 'h', 'd', 'n')
if not f[1] and not f[2] then return {false, false, false, {}} end
local steps = {}
if not f[2] then steps = redis.call('LRANGE', KEYS[2], 0, -1) end
return {f[1], f[2], f[3], steps}
"""

# KEYS: lease.  ARGV: holder, ttl in ms.
_ACQUIRE = """
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if cur == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: document, index of its kind.  ARGV: id, expected version, data.
_DOC_CAS = """
local v = redis.call('HGET', KEYS[1], 'v')
if (not v) or v ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], 'v', tostring(tonumber(ARGV[2]) + 1), 'd', ARGV[3])
return 1
"""

# KEYS: document, index of its kind.  ARGV: id, data.
_DOC_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'v', '1', 'd', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return 1
"""

# KEYS: lease.  ARGV: holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _where(url: str) -> str:
    """host:port (or the socket path) of a Redis URL, never its credentials."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path or "unix socket"
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        return "the configured address"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def connect(url: str, max_connections: int, *, decode_responses: bool) -> aioredis.Redis:
    """A client on a pool of at most `max_connections`, where a command waits for a free
    connection (up to POOL_WAIT_S) instead of failing: redis-py's default pool raises "Too many
    connections" at once, which under load lost commands and failed sessions."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=POOL_WAIT_S,
        decode_responses=decode_responses,
        socket_connect_timeout=5,
        socket_timeout=10,
    )
    return aioredis.Redis.from_pool(pool)


async def open_client(
    url: str,
    max_connections: int,
    *,
    decode_responses: bool,
    error: type[StoreError] = StoreError,
    name: str | None = None,
) -> aioredis.Redis:
    """A connected client (it answered PING), or `error` saying why not, never the URL's password."""
    where = _where(url)
    name = name or f"Redis at {where}"
    try:
        client = connect(url, max_connections, decode_responses=decode_responses)
    except ValueError:  # a malformed URL; its text may hold a password, so it is not shown
        raise error(f"REDIS_URL is not a valid Redis URL ({where})") from None
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise error(f"{name} is not answering: {exc}") from exc
    return client


class RedisStore(SessionStore):
    def __init__(
        self, url: str, prefix: str = "autogpt:", finished_ttl_s: float = 86400, max_connections: int = 100
    ) -> None:
        self._url = url
        self.max_connections = max_connections
        self.prefix = prefix
        self.finished_ttl_s = finished_ttl_s
        self.where = _where(url)
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    # ------------------------------------------------------------------ keys and plumbing
    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def _steps_key(self, session_id: str) -> str:
        return f"{self.prefix}steps:{session_id}"

    def _user_key(self, user_key: str) -> str:
        return f"{self.prefix}user:{user_key}"

    @property
    def _active_key(self) -> str:
        return f"{self.prefix}active"

    def _spend_key(self, user_key: str, day: str) -> str:
        return f"{self.prefix}spend:{day}:{user_key}"

    def _lease_key(self, session_id: str) -> str:
        return f"{self.prefix}lease:{session_id}"

    @property
    def client(self) -> aioredis.Redis:
        return opened(self._client, f"Redis store at {self.where}")

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError) as exc:
            raise StoreError(f"Redis at {self.where} is not answering ({action}): {exc}") from exc
        except RedisError as exc:
            raise StoreError(f"Redis at {self.where} failed ({action}): {exc}") from exc

    def _script(self, source: str) -> AsyncScript:
        """A Lua script registered on the open client (EVALSHA, loaded again if Redis forgot it)."""
        client = self.client
        script = self._scripts.get(source)
        if script is None or script.registered_client is not client:
            script = self._scripts[source] = client.register_script(source)
        return script

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if self._client is not None:
            return
        self._client = await open_client(self._url, self.max_connections, decode_responses=True)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def ping(self) -> bool:
        with self._guard("ping"):
            return bool(await self.client.ping())

    # ------------------------------------------------------------------ sessions
    async def create(self, session: Session) -> None:
        terminal = session.state.terminal
        write = self.write_of(session, 1, whole=True)
        with self._guard("create"):
            created = await self._script(_CREATE)(
                keys=[
                    self._session_key(session.id),
                    self._steps_key(session.id),
                    self._user_key(session.user_key),
                    self._active_key,
                ],
                args=[
                    write.head,
                    session.user_key,
                    session.state.value,
                    session.created_at.timestamp(),
                    session.id,
                    "1" if terminal else "0",
                    _ms(self.finished_ttl_s),
                    write.count,
                    *(text for _, text in write.steps),
                ],
            )
        if not created:
            raise SessionExists(f"session {session.id} already exists")
        session.version = 1

    @staticmethod
    def _decode(session_id: str, found: list[Any]) -> Session | None:
        """A session from what `_LOAD` returned: its head and steps, or its older whole JSON."""
        head, whole, count, steps = found
        if whole:
            return Session.model_validate_json(whole)
        if not head:
            return None
        if count is not None and int(count) != len(steps):  # its keys expiring, or worse
            raise StoreError(f"session {session_id}: {len(steps)} steps stored of {count}")
        return decode_session(head, steps)

    def _load_keys(self, session_id: str) -> list[str]:
        return [self._session_key(session_id), self._steps_key(session_id)]

    async def get(self, session_id: str) -> Session | None:
        with self._guard("get"):
            found = await self._script(_LOAD)(keys=self._load_keys(session_id))
        return self._decode(session_id, found)

    async def cas(self, session: Session, expected_version: int) -> bool:
        return await self._save_session(session, expected_version, whole=True)

    async def commit(self, session: Session, expected_version: int) -> bool:
        return await self._save_session(session, expected_version, whole=False)

    async def _save_session(self, session: Session, expected_version: int, *, whole: bool) -> bool:
        new_version = expected_version + 1
        state = SessionState(session.state)
        write = self.write_of(session, new_version, whole=whole)
        while True:
            with self._guard("cas"):
                done = await self._script(_SAVE)(
                    keys=[self._session_key(session.id), self._steps_key(session.id), self._active_key],
                    args=[
                        str(expected_version),
                        write.head,
                        state.value,
                        "1" if state.terminal else "0",
                        _ms(self.finished_ttl_s),
                        session.id,
                        -1 if write.base is None else write.base,
                        write.count,
                        *(part for j, text in write.steps for part in (j, text)),
                    ],
                )
            if done == -1 and write.base is not None:  # stored in the older layout: rewrite it whole
                write = self.write_of(session, new_version, whole=True)
                continue
            break
        if done == 1:
            session.version = new_version
            return True
        return False

    async def sessions_of(self, user_key: str) -> list[Session]:
        index = self._user_key(user_key)
        load = self._script(_LOAD)
        with self._guard("sessions_of"):
            ids: list[str] = await self.client.zrevrange(index, 0, -1)
            if not ids:
                return []
            pipe = self.client.pipeline(transaction=False)
            for session_id in ids:
                await load(keys=self._load_keys(session_id), client=pipe)
            found: list[list[Any]] = await pipe.execute()
            gone = [sid for sid, data in zip(ids, found, strict=True) if not data[0] and not data[1]]
            if gone:
                await self.client.zrem(index, *gone)
        sessions = (self._decode(sid, data) for sid, data in zip(ids, found, strict=True))
        return [s for s in sessions if s is not None]

    async def active_ids(self) -> list[str]:
        with self._guard("active_ids"):
            members: set[str] = await self.client.smembers(self._active_key)
        return sorted(members)

    async def delete(self, session_id: str) -> None:
        key = self._session_key(session_id)
        with self._guard("delete"):
            user_key = await self.client.hget(key, "u")
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key, self._steps_key(session_id))
            pipe.srem(self._active_key, session_id)
            if user_key is not None:
                pipe.zrem(self._user_key(user_key), session_id)
            await pipe.execute()

    # ------------------------------------------------------------------ spend
    async def add_spend(self, user_key: str, day: str, usd: float) -> float:
        key = self._spend_key(user_key, day)
        with self._guard("add_spend"):
            pipe = self.client.pipeline(transaction=True)
            pipe.incrbyfloat(key, usd)
            pipe.expire(key, SPEND_TTL_S)
            total, _ = await pipe.execute()
        return float(total)

    async def get_spend(self, user_key: str, day: str) -> float:
        with self._guard("get_spend"):
            value = await self.client.get(self._spend_key(user_key, day))
        return float(value) if value is not None else 0.0

    # ------------------------------------------------------------------ claims
    async def claim(self, key: str, ttl_s: float) -> bool:
        with self._guard("claim"):
            return bool(await self.client.set(f"{self.prefix}claim:{key}", "1", nx=True, px=_ms(ttl_s)))

    # ------------------------------------------------------------------ leases
    async def acquire_lease(self, session_id: str, holder: str, ttl_s: float) -> bool:
        with self._guard("acquire_lease"):
            got = await self._script(_ACQUIRE)(keys=[self._lease_key(session_id)], args=[holder, _ms(ttl_s)])
        return bool(got)

    async def release_lease(self, session_id: str, holder: str) -> None:
        with self._guard("release_lease"):
            await self._script(_RELEASE)(keys=[self._lease_key(session_id)], args=[holder])

    async def stored_version(self, session_id: str) -> int | None:
        with self._guard("stored_version"):
            v = await self.client.hget(self._session_key(session_id), "v")
        return int(v) if v is not None else None

    async def lease_expiry(self, session_id: str) -> float | None:
        with self._guard("lease_expiry"):
            ms = await self.client.pttl(self._lease_key(session_id))
        return time.time() + ms / 1000 if ms is not None and ms >= 0 else None

    # ------------------------------------------------------------------ places
    async def bind_place(self, place_key: str, session_id: str, ttl_s: float) -> None:
        with self._guard("bind_place"):
            await self.client.set(f"{self.prefix}place:{place_key}", session_id, px=_ms(ttl_s))

    async def session_at(self, place_key: str) -> str | None:
        with self._guard("session_at"):
            value = await self.client.get(f"{self.prefix}place:{place_key}")
        return str(value) if value is not None else None

    # ------------------------------------------------------------------ documents
    def _doc_keys(self, kind: str, doc_id: str) -> list[str]:
        return [f"{self.prefix}doc:{kind}:{doc_id}", f"{self.prefix}docs:{kind}"]

    async def doc_create(self, kind: str, doc_id: str, data: str) -> bool:
        with self._guard("doc_create"):
            return bool(await self.client.eval(_DOC_CREATE, 2, *self._doc_keys(kind, doc_id), doc_id, data))

    async def doc_get(self, kind: str, doc_id: str) -> tuple[int, str] | None:
        with self._guard("doc_get"):
            v, d = await self.client.hmget(self._doc_keys(kind, doc_id)[0], ["v", "d"])
        return (int(v), str(d)) if v is not None and d is not None else None

    async def doc_cas(self, kind: str, doc_id: str, expected_version: int, data: str) -> bool:
        keys = self._doc_keys(kind, doc_id)
        with self._guard("doc_cas"):
            return bool(await self.client.eval(_DOC_CAS, 2, *keys, doc_id, str(expected_version), data))

    async def doc_list(self, kind: str) -> list[tuple[int, str]]:
        with self._guard("doc_list"):
            ids = sorted(await self.client.smembers(f"{self.prefix}docs:{kind}"))
            if not ids:
                return []
            pipe = self.client.pipeline(transaction=False)
            for doc_id in ids:
                pipe.hmget(self._doc_keys(kind, doc_id)[0], ["v", "d"])
            rows = await pipe.execute()
        return [(int(v), str(d)) for v, d in rows if v is not None and d is not None]

    async def doc_delete(self, kind: str, doc_id: str) -> bool:
        key, index = self._doc_keys(kind, doc_id)
        with self._guard("doc_delete"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(key)
            pipe.srem(index, doc_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    # ------------------------------------------------------------------ benchmarks
    async def stored_bytes(self, session_id: str) -> int:
        key, steps = self._load_keys(session_id)
        with self._guard("stored_bytes"):
            try:
                size = int(await self.client.memory_usage(key) or 0)
                if size:
                    size += int(await self.client.memory_usage(steps) or 0)
            except ResponseError:  # MEMORY disabled or renamed (some managed Redis)
                size = await self.client.hstrlen(key, "h") + await self.client.hstrlen(key, "d")
                if size:
                    size += sum(len(text) for text in await self.client.lrange(steps, 0, -1))
        return size
