"""The work queue between the processes that receive (ROLE=ingress) and those that drive sessions
(ROLE=worker): a Redis Streams consumer group.

    {prefix}kicks   STREAM  one entry per kick ("drive session X"): s = the session id,
                            t = when it was enqueued (epoch seconds); consumer group `drivers`

- `kick(session_id)` (any role but `all`) XADDs an entry. A kick is a hint, never the state:
  what to do next is in the session itself, guarded by its lease and compare-and-set.
- A worker XREADGROUPs entries (consumer = its engine's holder id) while it has free slots
  (WORKER_CONCURRENCY), drives each session through the engine, and XACKs and XDELs the entry
  when the drive ends, so XLEN is the depth (waiting + being driven). A kick of a session this
  worker is driving already makes that drive go round once more (as `Runner` does) and is
  acknowledged with it.
- While it drives, a worker refreshes its entries (XCLAIM to itself, JUSTID) every third of
  LEASE_SECONDS; entries idle longer than LEASE_SECONDS belong to a dead worker and are taken
  over with XAUTOCLAIM. This replaces the periodic scan for orphaned sessions.
- A drive that found the session leased by another process (a click's kick that raced the end of
  a drive elsewhere) leaves its entry unacknowledged: it is tried again once it has been idle for
  LEASE_SECONDS, when that lease has been released or has lapsed.
- Nothing depends on an entry surviving (a Redis failover may lose the last second of writes):
  every worker sweeps once at its start, and the schedule leader every SWEEP_LEASES leases,
  enqueueing the sessions that are planning or running with a free lease.

Delivery is at least once; the lease makes a step run once. Every command touches one key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bot.store.base import StoreError
from bot.store.redis_client import RedisTarget
from bot.store.redis_client import open_redis as open_target

if TYPE_CHECKING:
    from bot.metrics import Metrics
    from bot.models import Session
    from bot.settings import Settings
    from bot.store.base import SessionStore

log = logging.getLogger(__name__)

GROUP: Final = "drivers"
BLOCK_MS: Final = 2000  # one XREADGROUP waits this long for an entry (under the socket timeout)
SWEEP_LEASES: Final = 10  # the leader's sweep for sessions without an entry, every this many leases
STOP_WAIT_S: Final = 5.0
RETRY_S: Final = 1.0  # after Redis failed a read, wait this long before the next


class QueueError(StoreError):
    """The work queue's Redis cannot be reached, or the role needs a Redis it does not have."""


async def open_redis(settings: Settings) -> Any:
    """The queue's Redis client (str replies), from the one factory of Redis clients (a single
    server, a Redis Cluster or Sentinel: every command here touches one key)."""
    if not settings.redis_configured:
        raise QueueError(f"ROLE={settings.role} needs REDIS_URL: the work queue lives in Redis")
    return await open_target(
        RedisTarget.of(settings), decode_responses=True, error=QueueError, name="the queue's Redis"
    )


Drive = Callable[[str], Awaitable["Session | None"]]


class KickQueue:
    """Kicks through `{prefix}kicks`. Every role but `all` enqueues; a worker also `serve`s."""

    def __init__(self, settings: Settings, store: SessionStore, metrics: Metrics, consumer: str) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.consumer = consumer
        self.key = f"{settings.redis_prefix}kicks"
        self.lease_s = settings.lease_seconds
        self.concurrency = settings.worker_concurrency
        self._client: aioredis.Redis | None = None
        self._sending: set[asyncio.Task[None]] = set()
        # a worker's own state: only the ids of the sessions it drives right now
        self._held: dict[str, list[str]] = {}  # session id -> its entries, acknowledged when its drive ends
        self._again: set[str] = set()
        self._drives: dict[str, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []
        self._freed = asyncio.Event()
        self._drive_fn: Drive | None = None

    @property
    def client(self) -> aioredis.Redis:
        if self._client is None:
            raise QueueError("the work queue is not open")
        return self._client

    async def open(self) -> None:
        if self._client is not None:
            return
        self._client = await open_redis(self.settings)
        try:
            await self.client.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise QueueError(f"the work queue could not be set up: {exc}") from exc

    # ------------------------------------------------------------------ enqueueing (any role)

    async def put(self, session_id: str) -> str:
        """Enqueue a kick; returns the entry's id."""
        try:
            return str(await self.client.xadd(self.key, {"s": session_id, "t": f"{time.time():.6f}"}))
        except RedisError as exc:
            raise QueueError(f"the work queue's Redis failed: {exc}") from exc

    def kick(self, session_id: str) -> None:
        """Enqueue in the background (callers do not wait for Redis). A kick that cannot be
        enqueued is logged: the session is in the store, and the next sweep enqueues it."""
        task = asyncio.get_running_loop().create_task(self._send(session_id))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, session_id: str) -> None:
        try:
            await self.put(session_id)
        except QueueError as exc:
            log.warning("session %s: could not enqueue it (%s); a sweep will", session_id, exc)

    # ------------------------------------------------------------------ metrics (any role)

    async def observe(self) -> None:
        """Depth, pending and the oldest entry's age, into the metrics (at each scrape)."""
        self.metrics.queue_driving.set(self.busy)  # first: known here, whatever Redis answers
        c = self.client
        depth = int(await c.xlen(self.key))
        pending = await c.xpending(self.key, GROUP)
        oldest = await c.xrange(self.key, "-", "+", count=1)
        self.metrics.queue_depth.set(depth)
        self.metrics.queue_pending.set(int(pending.get("pending") or 0) if isinstance(pending, dict) else 0)
        age = 0.0
        if oldest:
            age = max(0.0, time.time() - int(str(oldest[0][0]).split("-")[0]) / 1000)
        self.metrics.queue_oldest_age.set(age)

    # ------------------------------------------------------------------ a worker

    @property
    def busy(self) -> int:
        """Sessions being driven here now."""
        return len(self._drives)

    def serve(
        self, drive: Drive, sweep: Callable[[], Awaitable[list[str]]], leading: Callable[[], bool]
    ) -> None:
        """Start taking kicks: `drive` advances a session (the engine's), `sweep` lists sessions
        to enqueue if their lease is free, `leading` says whether this process sweeps now."""
        self._drive_fn = drive
        self._loops = [
            asyncio.create_task(self._read(), name="queue-read"),
            asyncio.create_task(self._reclaim(), name="queue-reclaim"),
            asyncio.create_task(self._refresh(), name="queue-refresh"),
            asyncio.create_task(self._sweeping(sweep, leading), name="queue-sweep"),
        ]

    def _free(self) -> int:
        return self.concurrency - len(self._drives)

    async def _read(self) -> None:
        while True:
            if self._free() <= 0:
                self._freed.clear()
                await self._freed.wait()
                continue
            try:
                got = await self.client.xreadgroup(
                    GROUP, self.consumer, {self.key: ">"}, count=self._free(), block=BLOCK_MS
                )
            except RedisError as exc:
                await self._redis_failed("reading", exc)
                continue
            for _, entries in got or []:
                for entry_id, fields in entries:
                    self._take(str(entry_id), fields)

    async def _reclaim(self) -> None:
        """Take over entries a worker held for longer than a lease without refreshing them."""
        every = max(0.2, self.lease_s / 4)
        idle_ms = max(1, round(self.lease_s * 1000))
        while True:
            await asyncio.sleep(every)
            if self._free() <= 0:
                continue
            try:
                found = await self.client.xautoclaim(
                    self.key, GROUP, self.consumer, idle_ms, start_id="0-0", count=self._free()
                )
            except RedisError as exc:
                await self._redis_failed("reclaiming", exc)
                continue
            claimed = found[1] if len(found) > 1 else []
            for entry_id, fields in claimed:
                if fields:
                    self.metrics.queue_reclaimed.inc()
                    self._take(str(entry_id), fields)

    async def _refresh(self) -> None:
        """Keep the entries of the sessions driven here from looking abandoned."""
        idle_ms = 0
        while True:
            await asyncio.sleep(self.lease_s / 3)
            ids = [entry for entries in self._held.values() for entry in entries]
            if not ids:
                continue
            try:
                await self.client.xclaim(self.key, GROUP, self.consumer, idle_ms, ids, justid=True)
            except RedisError as exc:
                log.warning("queue: could not refresh %d entries: %s", len(ids), exc)

    async def _sweeping(self, sweep: Callable[[], Awaitable[list[str]]], leading: Callable[[], bool]) -> None:
        first = True
        while True:
            if first or leading():
                try:
                    await self.sweep(sweep)
                except Exception as exc:  # Redis down: the next sweep
                    log.warning("queue: the sweep for sessions without a kick failed: %s", exc)
            first = False
            await asyncio.sleep(self.lease_s * SWEEP_LEASES)

    async def sweep(self, sweep: Callable[[], Awaitable[list[str]]]) -> int:
        """Enqueue the sessions `sweep` lists whose lease is free (none is being driven)."""
        n = 0
        for session_id in await sweep():
            if await self.store.lease_expiry(session_id) is None:
                await self.put(session_id)
                n += 1
        if n:
            log.info("queue: %d sessions without a driver enqueued", n)
        return n

    async def _redis_failed(self, doing: str, exc: Exception) -> None:
        log.warning("queue: Redis failed %s: %s", doing, exc)
        await asyncio.sleep(RETRY_S)

    def _take(self, entry_id: str, fields: dict[str, Any]) -> None:
        session_id = str(fields.get("s") or "")
        if not session_id:  # not ours: acknowledge it away
            self._finish([entry_id])
            return
        if session_id in self._drives:  # being driven here: once more, acknowledged with it
            self._held[session_id].append(entry_id)
            self._again.add(session_id)
            return
        with contextlib.suppress(TypeError, ValueError):
            self.metrics.queue_wait.observe(max(0.0, time.time() - float(fields.get("t") or 0)))
        self._held[session_id] = [entry_id]
        self._drives[session_id] = asyncio.create_task(self._run(session_id), name=f"drive-{session_id}")

    async def _run(self, session_id: str) -> None:
        ack = False
        try:
            while True:
                self._again.discard(session_id)
                assert self._drive_fn is not None
                try:
                    result = await self._drive_fn(session_id)
                except Exception:  # Redis down or worse: the entry stays, reclaimed after a lease
                    log.exception("session %s: driving failed", session_id)
                    return
                if session_id not in self._again:
                    break
            # None: missing, or leased by another process; then try again once that lease is gone
            ack = result is not None or await self.store.lease_expiry(session_id) is None
        except StoreError as exc:
            log.warning("session %s: %s", session_id, exc)
        finally:
            entries = self._held.pop(session_id, [])
            self._again.discard(session_id)
            self._drives.pop(session_id, None)
            self._freed.set()
            if ack and entries:
                self._finish(entries)

    def _finish(self, entries: list[str]) -> None:
        task = asyncio.get_running_loop().create_task(self._ack(entries))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _ack(self, entries: list[str]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.xack(self.key, GROUP, *entries)
            pipe.xdel(self.key, *entries)
            await pipe.execute()
        except RedisError as exc:  # delivered again after a lease: a second drive finds nothing to do
            log.warning("queue: could not acknowledge %d entries: %s", len(entries), exc)

    async def idle(self, within: float | None = None) -> None:
        """Until no session is being driven here (tests)."""

        async def wait() -> None:
            while self._drives:
                await asyncio.gather(*list(self._drives.values()), return_exceptions=True)

        await asyncio.wait_for(wait(), within)

    async def close(self) -> None:
        """Stop taking kicks, cancel the drives (a command cut short is reported as interrupted
        where the session continues; their entries stay and are reclaimed), send what is queued."""
        for task in self._loops:
            task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops = []
        handover = {sid: list(entries) for sid, entries in self._held.items()}
        running = [t for t in self._drives.values() if not t.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=STOP_WAIT_S)
        for session_id, entries in handover.items():  # to another worker now, not after a lease
            try:
                await self.put(session_id)
            except QueueError as exc:
                log.warning("session %s: left to be reclaimed after a lease: %s", session_id, exc)
                continue
            await self._ack(entries)
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=STOP_WAIT_S)
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
