"""The work queue (bot/queue.py) on the real Redis: kicks are enqueued, taken by a worker within
its concurrency, acknowledged when their drive ends, re-driven once when kicked during a drive,
taken over from a worker that died holding them, and left for later when another process holds
the session's lease. Then an ingress core and a worker core in one process: the ingress receives
and decides, the worker drives and posts, and the ingress never runs a cycle."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot.core import Core
from bot.metrics import Metrics
from bot.models import Actor, Place, Session, SessionState
from bot.queue import GROUP, KickQueue, QueueError
from bot.settings import Settings
from bot.store.redis_store import RedisStore
from tests.conftest import REDIS_URL, make_settings
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply

PLACE = Place(platform="test", channel="C1")
ME = Actor(platform="test", user_id="U1", name="owner")


async def until(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Drives:
    """What the worker was asked to drive; each drive waits for `gate` (open by default) and
    returns `result` (a session-like marker; None: "someone else holds it")."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.running = 0
        self.most = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.result: Any = object()

    async def __call__(self, session_id: str) -> Any:
        self.calls.append(session_id)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
            return self.result
        finally:
            self.running -= 1


async def nothing() -> list[str]:
    return []


@pytest.fixture
async def parts(tmp_path: Path, llm: ScriptedLLM, redis_prefix: str) -> Any:
    settings = make_settings(
        tmp_path, llm, redis_url=REDIS_URL, redis_prefix=redis_prefix, lease_seconds=0.6, worker_concurrency=2
    )
    store = RedisStore(REDIS_URL, redis_prefix)
    await store.open()
    raw = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    queues: list[KickQueue] = []

    async def queue(consumer: str, **changes: Any) -> KickQueue:
        q = KickQueue(settings.model_copy(update=changes), store, Metrics(), consumer)
        await q.open()
        queues.append(q)
        return q

    yield settings, store, raw, queue
    for q in queues:
        await q.close()
    await raw.aclose()
    await store.close()


async def test_kicks_are_driven_within_the_concurrency_and_acknowledged(parts: Any) -> None:
    settings, _, raw, queue = parts
    ingress, worker = await queue("ingress"), await queue("worker-1")
    key = f"{settings.redis_prefix}kicks"
    for i in range(5):
        await ingress.put(f"s{i}")
    drives = Drives()
    drives.gate.clear()
    worker.serve(drives, nothing, lambda: False)
    await until(lambda: _true(drives.running == 2))
    await asyncio.sleep(0.2)
    assert drives.most == 2 and sorted(drives.calls) == ["s0", "s1"]  # two at a time, in order
    assert await raw.xlen(key) == 5 and (await raw.xpending(key, GROUP))["pending"] == 2
    await ingress.observe()
    assert ingress.metrics.queue_depth._value.get() == 5
    assert ingress.metrics.queue_pending._value.get() == 2
    assert ingress.metrics.queue_oldest_age._value.get() >= 0.2
    # a kick of a session driven here: that drive goes round once more, not a second drive
    await ingress.put("s0")
    await asyncio.sleep(0.1)
    assert drives.running == 2 and drives.calls.count("s0") == 1
    drives.gate.set()
    await until(lambda: _true(len(drives.calls) == 6 and drives.running == 0))
    assert drives.calls.count("s0") == 2 and sorted(set(drives.calls)) == [f"s{i}" for i in range(5)]
    await until(lambda: _len_is(raw, key, 0))  # acknowledged and deleted: XLEN is the depth
    assert (await raw.xpending(key, GROUP))["pending"] == 0
    await ingress.observe()
    assert ingress.metrics.queue_depth._value.get() == 0
    assert ingress.metrics.queue_oldest_age._value.get() == 0
    assert worker.metrics.queue_wait._sum.get() > 0  # s2..s4 waited for a slot


async def test_a_dead_workers_kicks_are_reclaimed_after_a_lease(parts: Any) -> None:
    settings, _, raw, queue = parts
    ingress = await queue("ingress")
    key = f"{settings.redis_prefix}kicks"
    await ingress.put("orphan")
    # a worker takes it and dies (never acknowledges, never refreshes)
    taken = await raw.xreadgroup(GROUP, "dead-worker", {key: ">"}, count=1)
    assert taken and taken[0][1][0][1]["s"] == "orphan"
    worker = await queue("worker-2")
    drives = Drives()
    started = time.monotonic()
    worker.serve(drives, nothing, lambda: False)
    await until(lambda: _true(drives.calls == ["orphan"]), within=5)
    assert time.monotonic() - started >= 0.3  # not before it was idle for about a lease
    assert worker.metrics.queue_reclaimed._value.get() == 1
    await until(lambda: _len_is(raw, key, 0))


async def test_a_long_drive_keeps_its_kick_and_a_lease_elsewhere_defers_it(parts: Any) -> None:
    settings, store, raw, queue = parts
    key = f"{settings.redis_prefix}kicks"
    ingress, first, second = await queue("ingress"), await queue("worker-a"), await queue("worker-b")
    slow = Drives()
    slow.gate.clear()
    first.serve(slow, nothing, lambda: False)
    await ingress.put("long")
    await until(lambda: _true(slow.running == 1))
    other = Drives()
    second.serve(other, nothing, lambda: False)
    await asyncio.sleep(1.5)  # more than two leases: the first worker refreshed its entry
    assert other.calls == [] and second.metrics.queue_reclaimed._value.get() == 0
    slow.gate.set()
    await until(lambda: _len_is(raw, key, 0))

    # another process holds the lease: the drive finds nothing to do, the entry waits a lease
    assert await store.acquire_lease("held", "some-other-process", 0.9)
    other.result = slow.result = None
    await ingress.put("held")
    await until(lambda: _true(other.calls.count("held") + slow.calls.count("held") == 1))
    await asyncio.sleep(0.1)
    assert await raw.xlen(key) == 1  # not acknowledged
    other.result = slow.result = object()
    await until(lambda: _true(other.calls.count("held") + slow.calls.count("held") == 2), within=5)
    await until(lambda: _len_is(raw, key, 0))


async def test_the_sweep_enqueues_sessions_without_a_driver(parts: Any) -> None:
    settings, store, raw, queue = parts
    key = f"{settings.redis_prefix}kicks"
    worker = await queue("worker-s")
    assert await store.acquire_lease("driven", "another-worker", 10)

    async def listed() -> list[str]:
        return ["idle", "driven"]

    assert await worker.sweep(listed) == 1
    entries = await raw.xrange(key)
    assert [fields["s"] for _, fields in entries] == ["idle"]


async def test_a_role_needs_redis(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(tmp_path, llm, role="worker")
    with pytest.raises(QueueError, match="ROLE=worker needs REDIS_URL"):
        await Core.start(settings)


async def test_ingress_decides_and_enqueues_the_worker_drives_and_posts(
    tmp_path: Path, llm: ScriptedLLM, redis_prefix: str
) -> None:
    llm.script(
        "execution_reply",
        Delay(0.2, then=agent_reply("append_to_file", {"filename": "log.txt", "text": "1\n"})),
        agent_reply("append_to_file", {"filename": "log.txt", "text": "2\n"}),
        agent_reply("finish", {"reason": "done"}),
    )
    base: Settings = make_settings(
        tmp_path, llm, redis_url=REDIS_URL, redis_prefix=redis_prefix, lease_seconds=2
    )
    chat = TestPlatform()  # one chat, seen by both processes (as Slack is)
    ingress = await Core.start(base.model_copy(update={"role": "ingress"}))
    worker = await Core.start(base.model_copy(update={"role": "worker"}))
    try:
        for c in (ingress, worker):
            c.add_platform(chat)
        ingress.start_background()
        worker.start_background()
        outcome = await ingress.service.handle_text(ME, PLACE, "goal count to two")
        assert outcome.ok and outcome.session_id
        sid = outcome.session_id

        async def waiting_at(n: int) -> bool:
            s = await worker.store.get(sid)
            return bool(
                s is not None
                and s.state == SessionState.AWAITING_APPROVAL
                and len(s.steps) == n
                and s.steps[-1].message
            )

        await until(lambda: waiting_at(1), within=10)
        queue = worker.queue
        assert queue is not None
        await until(lambda: _true(queue.busy == 0))  # its drive ends: nothing held while it waits
        # the click is received and decided by the ingress; the worker drives what follows
        pressed = await chat.press(ingress.service, sid, 1, "approve", "U1")
        assert pressed.ok, pressed.message
        await until(lambda: waiting_at(2), within=10)
        for step in (2, 3):
            pressed = await chat.press(ingress.service, sid, step, "approve", "U1")
            assert pressed.ok, pressed.message
            if step == 2:
                await until(lambda: waiting_at(3), within=10)

        async def finished() -> bool:
            s: Session | None = await worker.store.get(sid)
            return s is not None and s.state == SessionState.FINISHED

        await until(finished, within=10)
        assert (tmp_path / "workspaces" / sid / "log.txt").read_text() == "1\n2\n"
        assert chat.step_message(sid, 3) is not None
        assert ingress.metrics.cycles._value.get() == 0 and worker.metrics.cycles._value.get() == 3
        assert ingress.scheduler.get_jobs() == [] and not ingress.leader.leader
    finally:
        await worker.close()
        await ingress.close()


async def _true(value: bool) -> bool:
    return value


async def _len_is(raw: aioredis.Redis, key: str, n: int) -> bool:
    return int(await raw.xlen(key)) == n
