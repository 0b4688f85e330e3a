"""The session store on Redis: shared by every bot process, atomic through Lua scripts, on one
Redis server, a Redis Cluster or a Sentinel-managed master (bot/store/redis_client.py).

Keys, all under the prefix. Every script and multi-key command touches keys of one hash slot, so
the store runs on a Redis Cluster: a session's keys carry the hash tag of its shard, `{NN}`
(crc32 of the id mod SHARDS, two digits), and so does the set of active sessions of that shard.
A tag on the session id alone would leave the active set in a slot of its own, and a commit could
no longer change a session's state and its membership of the active set in one script.
  session:{NN}:{id}  HASH  v (version), h (head: the session's JSON without its steps), n (number
                           of steps), u (user key), s (state); d (the whole session's JSON) in a
                           session stored by an older version, until its next commit
  steps:{NN}:{id}    LIST  the JSON of each step, in order
  lease:{NN}:{id}    STRING the holder, with a PX expiry
  active:{NN}        SET   ids of the shard's sessions not in a terminal state
  user:{user_key}    ZSET  session ids scored by created_at: a superset, see below
  spend:{day}:{user} STRING USD spent, INCRBYFLOAT, expires after 3 days
  claim:{key}        STRING "1", with a PX expiry (see `claim`)
  place:{key}        STRING the session id of a thread, with a PX expiry
  doc:{KIND}:{id}    HASH  v, d: a document (schedules, profiles, templates); `{KIND}` is a hash tag,
  docs:{KIND}        SET   ids of the documents of that kind, in the same slot as the documents

What stays atomic (one script, one slot): a session's creation, every commit (version check,
head, steps, state, expiry) together with its membership of the active set, its deletion from
the active set, a lease's take/renew/release, a document's creation with its index entry and its
compare-and-set, and a day's spend with its expiry. The per-user index is updated by commands of
its own: an id is added before the session is created (so it is never missing from it) and
dropped when `sessions_of` finds no such session (or another user's) and the entry is older than
INDEX_GRACE_S, or when the session is deleted.

A commit checks the version, writes the head and only the steps that changed (LSET, RPUSH,
LTRIM), so its cost does not grow with the session's length. A session in the older single-JSON
layout (`d`) is read as it is and rewritten whole in this layout by its next commit. Keys of the
previous key layout (no hash tags: `session:{id}`, `steps:{id}`, `lease:{id}`, `active`,
`doc:KIND:{id}`, `docs:KIND`) are moved to these names when the store opens on a single Redis
(`_migrate`, a SCAN of the prefix's keys; a Redis Cluster never held them). Processes of the
previous version must be stopped before this one starts: they would not see the moved keys.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import SecretStr
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from bot.models import Session, SessionState
from bot.store.base import SessionExists, SessionStore, StoreError, decode_session, opened
from bot.store.redis_client import AnyRedis, RedisTarget, open_redis

SPEND_TTL_S = 3 * 86400
SHARDS = 64  # hash tags of the session keys: never change it on a store that holds sessions
INDEX_GRACE_S = 60.0  # a per-user index entry without its session is dropped only after this

# KEYS: session, steps, active set of its shard.  ARGV: head, user key, state, (unused), id,
# terminal ("1"/"0"), finished ttl in ms, number of steps, then the JSON of each step.
_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[1], 'v', '1', 'h', ARGV[1], 'n', ARGV[8], 'u', ARGV[2], 's', ARGV[3])
for i = 9, #ARGV, 512 do
  redis.call('RPUSH', KEYS[2], unpack(ARGV, i, math.min(i + 511, #ARGV)))
end
if ARGV[6] == '1' then
  redis.call('PEXPIRE', KEYS[1], ARGV[7])
  redis.call('PEXPIRE', KEYS[2], ARGV[7])
else
  redis.call('SADD', KEYS[3], ARGV[5])
end
return 1
"""

# KEYS: session, steps, active set of its shard.  ARGV: expected version, head, state, terminal ("1"/"0"),
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

# KEYS: document, index of its kind.  ARGV: id.
_DOC_DELETE = """
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""

# KEYS: lease.  ARGV: holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# KEYS: session, steps, active set of its shard.  ARGV: id.  Returns the user key, or false.
_DELETE = """
local u = redis.call('HGET', KEYS[1], 'u')
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return u
"""

# KEYS: a day's spend.  ARGV: USD, ttl in s.
_SPEND = """
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return total
"""

# The previous key layout's session keys moved to this one's (a single Redis only: a script may
# touch keys of any slot there).  KEYS: old session, old steps, old lease, new session, new steps,
# new lease, old active set, new active set.  ARGV: id.
_MIGRATE_SESSION = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[4]) == 0 then
  redis.call('RENAME', KEYS[1], KEYS[4])
  if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('RENAME', KEYS[2], KEYS[5]) end
  if redis.call('EXISTS', KEYS[3]) == 1 then redis.call('RENAME', KEYS[3], KEYS[6]) end
end
if redis.call('SREM', KEYS[7], ARGV[1]) == 1 and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('SADD', KEYS[8], ARGV[1])
end
return 1
"""

# KEYS: old document, new document, old index, new index.  ARGV: id.
_MIGRATE_DOC = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('RENAME', KEYS[1], KEYS[2])
end
redis.call('SREM', KEYS[3], ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('SADD', KEYS[4], ARGV[1]) end
return 1
"""


def shard(session_id: str) -> str:
    """The hash tag of a session's keys: `{NN}`, the same in every process and version."""
    return f"{{{zlib.crc32(session_id.encode('utf-8')) % SHARDS:02d}}}"


def _glob(text: str) -> str:
    """`text` with the characters SCAN MATCH treats as a pattern escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisStore(SessionStore):
    def __init__(
        self,
        url: str | RedisTarget,
        prefix: str = "autogpt:",
        finished_ttl_s: float = 86400,
        max_connections: int = 100,
        *,
        cluster: bool = False,
        sentinel: str | None = None,
    ) -> None:
        """`url` a Redis URL (with `cluster`/`sentinel` as REDIS_CLUSTER/REDIS_SENTINEL say), or
        a whole `RedisTarget`."""
        self.target = (
            url
            if isinstance(url, RedisTarget)
            else RedisTarget(
                url=SecretStr(url), cluster=cluster, sentinel=sentinel, max_connections=max_connections
            )
        )
        self.max_connections = self.target.max_connections
        self.prefix = prefix
        self.finished_ttl_s = finished_ttl_s
        self.where = self.target.where
        self._client: AnyRedis | None = None
        self._scripts: dict[str, AsyncScript] = {}

    # ------------------------------------------------------------------ keys and plumbing
    def _session_key(self, session_id: str) -> str:
        return f"{self.prefix}session:{shard(session_id)}:{session_id}"

    def _steps_key(self, session_id: str) -> str:
        return f"{self.prefix}steps:{shard(session_id)}:{session_id}"

    def _lease_key(self, session_id: str) -> str:
        return f"{self.prefix}lease:{shard(session_id)}:{session_id}"

    def _active_key(self, session_id: str) -> str:
        """The active set of the session's shard (the same slot as the session's keys)."""
        return f"{self.prefix}active:{shard(session_id)}"

    def _active_keys(self) -> list[str]:
        return [f"{self.prefix}active:{{{n:02d}}}" for n in range(SHARDS)]

    def _user_key(self, user_key: str) -> str:
        return f"{self.prefix}user:{user_key}"

    def _spend_key(self, user_key: str, day: str) -> str:
        return f"{self.prefix}spend:{day}:{user_key}"

    @property
    def client(self) -> AnyRedis:
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
        self._client = await open_redis(self.target, decode_responses=True)
        if not self.target.cluster:
            try:
                with self._guard("moving the keys of the previous layout"):
                    await self._migrate()
            except StoreError:
                await self.close()
                raise

    async def _migrate(self) -> None:
        """Move the keys of the previous key layout (no hash tags) to this one's names: SCANs the
        prefix's `session:*` and `docs:*` keys; nothing to do costs the two SCANs."""
        client = self.client
        old_active = f"{self.prefix}active"
        marker = f"{self.prefix}session:"
        async for key in client.scan_iter(match=_glob(marker) + "*", count=1000):
            session_id = key[len(marker) :]
            if session_id.startswith("{"):
                continue  # this layout's
            await self._script(_MIGRATE_SESSION)(
                keys=[
                    key,
                    f"{self.prefix}steps:{session_id}",
                    f"{self.prefix}lease:{session_id}",
                    self._session_key(session_id),
                    self._steps_key(session_id),
                    self._lease_key(session_id),
                    old_active,
                    self._active_key(session_id),
                ],
                args=[session_id],
            )
        await client.delete(old_active)  # ids left in it had no session
        index = f"{self.prefix}docs:"
        async for key in client.scan_iter(match=_glob(index) + "*", count=1000):
            kind = key[len(index) :]
            if kind.startswith("{"):
                continue
            for doc_id in await client.smembers(key):
                old_doc = f"{self.prefix}doc:{kind}:{doc_id}"
                await self._script(_MIGRATE_DOC)(
                    keys=[old_doc, *self._doc_keys(kind, doc_id)[:1], key, self._doc_keys(kind, doc_id)[1]],
                    args=[doc_id],
                )
            await client.delete(key)

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
            # the user's index first: an id in it without a session is dropped later (sessions_of);
            # a session missing from it would not count against MAX_SESSIONS_PER_USER
            await self.client.zadd(
                self._user_key(session.user_key), {session.id: session.created_at.timestamp()}
            )
            created = await self._script(_CREATE)(
                keys=[
                    self._session_key(session.id),
                    self._steps_key(session.id),
                    self._active_key(session.id),
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
                    keys=[
                        self._session_key(session.id),
                        self._steps_key(session.id),
                        self._active_key(session.id),
                    ],
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

    async def _load_many(self, ids: list[str]) -> list[list[Any]]:
        """What `_LOAD` returns for each id: in one pipeline on one Redis; on a cluster, where a
        pipeline cannot run scripts, concurrently (each to its slot's node)."""
        load = self._script(_LOAD)
        if self.target.cluster:
            return list(await asyncio.gather(*(load(keys=self._load_keys(sid)) for sid in ids)))
        pipe = self.client.pipeline(transaction=False)
        for session_id in ids:
            await load(keys=self._load_keys(session_id), client=pipe)
        return list(await pipe.execute())

    async def sessions_of(self, user_key: str) -> list[Session]:
        index = self._user_key(user_key)
        with self._guard("sessions_of"):
            entries: list[tuple[str, float]] = await self.client.zrevrange(index, 0, -1, withscores=True)
            if not entries:
                return []
            ids = [sid for sid, _ in entries]
            found = await self._load_many(ids)
        sessions: list[Session] = []
        stale: list[str] = []
        old = time.time() - INDEX_GRACE_S
        for (sid, score), data in zip(entries, found, strict=True):
            session = self._decode(sid, data)
            if session is not None and session.user_key == user_key:
                sessions.append(session)
            elif score < old:  # gone, or another user's id (its create failed): not one under way
                stale.append(sid)
        if stale:
            with self._guard("sessions_of"):
                await self.client.zrem(index, *stale)
        return sessions

    async def active_ids(self) -> list[str]:
        with self._guard("active_ids"):
            pipe = self.client.pipeline(transaction=False)
            for key in self._active_keys():
                pipe.smembers(key)
            shards: list[set[str]] = await pipe.execute()
        return sorted(set().union(*shards))

    async def delete(self, session_id: str) -> None:
        with self._guard("delete"):
            user_key = await self._script(_DELETE)(
                keys=[
                    self._session_key(session_id),
                    self._steps_key(session_id),
                    self._active_key(session_id),
                ],
                args=[session_id],
            )
            if user_key:
                await self.client.zrem(self._user_key(user_key), session_id)

    # ------------------------------------------------------------------ spend
    async def add_spend(self, user_key: str, day: str, usd: float) -> float:
        with self._guard("add_spend"):
            total = await self._script(_SPEND)(keys=[self._spend_key(user_key, day)], args=[usd, SPEND_TTL_S])
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
        """A document and the index of its kind: `{KIND}` a hash tag, so both are in one slot."""
        return [f"{self.prefix}doc:{{{kind}}}:{doc_id}", self._docs_key(kind)]

    def _docs_key(self, kind: str) -> str:
        return f"{self.prefix}docs:{{{kind}}}"

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
            ids = sorted(await self.client.smembers(self._docs_key(kind)))
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
            return bool(await self.client.eval(_DOC_DELETE, 2, key, index, doc_id))

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
