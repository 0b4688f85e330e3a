"""One contract suite for every SessionStore: the real Redis (database 15) and SQLite files."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from bot.models import (
    ChannelProfile,
    CommandCall,
    MessageRef,
    Phase,
    Place,
    Session,
    SessionState,
    Step,
    StepStatus,
    Template,
    Thoughts,
    Usage,
)
from bot.settings import Settings
from bot.store import (
    RedisStore,
    SessionExists,
    SessionStore,
    SQLiteStore,
    StoreError,
    make_archive,
    make_store,
)

REDIS_URL = os.environ.get("TEST_STORE_REDIS_URL", "redis://127.0.0.1:6379/15")
DEAD_REDIS_URL = "redis://:s3cret-pass@127.0.0.1:1/0"

StoreFactory = Callable[..., Awaitable[SessionStore]]


def make_session(
    sid: str | None = None,
    owner: str = "U1",
    platform: str = "test",
    created_at: datetime | None = None,
    **fields: Any,
) -> Session:
    extra: dict[str, Any] = {"created_at": created_at} if created_at else {}
    return Session(
        id=sid or uuid4().hex,
        owner=owner,
        place=Place(platform=platform, channel="C1"),
        goals=["g"],
        **extra,
        **fields,
    )


def pending_step(no: int = 1) -> Step:
    return Step(
        no=no,
        thoughts=Thoughts(text="look", reasoning="because", plan="- a\n- b", criticism="none", speak="hi"),
        command=CommandCall(name="google", args={"query": "weather", "opts": {"n": 3, "tags": ["x", "y"]}}),
    )


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.05)
    return await check()


class Gate:
    """Holds each racer's first read until all `n` racers have read, so every one of them starts
    from the same version and all but one must lose the compare-and-set."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen: set[str] = set()
        self.all_read = asyncio.Event()

    async def first_read(self, racer: str) -> None:
        if racer in self.seen:
            return
        self.seen.add(racer)
        if len(self.seen) == self.n:
            self.all_read.set()
        await asyncio.wait_for(self.all_read.wait(), timeout=5)


def approver(who: str, gate: Gate) -> Callable[[Session], Awaitable[bool]]:
    """A mutation moving the pending step to APPROVED only if it is still pending."""

    async def mutate(s: Session) -> bool:
        await gate.first_read(who)
        step = s.pending_step
        if step is None:
            return False
        step.status = StepStatus.APPROVED
        step.decided_by = who
        s.state = SessionState.RUNNING
        return True

    return mutate


def bumper(who: str, gate: Gate) -> Callable[[Session], Awaitable[None]]:
    async def mutate(s: Session) -> None:
        await gate.first_read(who)
        s.cycles += 1

    return mutate


# ---------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(params=["redis", "redis-cluster", "sqlite"])
async def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """A factory of opened stores sharing one backend (same Redis prefix / same SQLite file); the
    Redis Cluster is a real three-master one (tests/redis_servers.py)."""
    kind = str(request.param)
    prefix = f"test:{uuid4().hex[:8]}:"
    opened: list[SessionStore] = []
    cluster_url = request.getfixturevalue("redis_cluster_url") if kind == "redis-cluster" else ""

    async def factory(finished_ttl_s: float = 86400) -> SessionStore:
        store: SessionStore
        if kind == "redis":
            store = RedisStore(REDIS_URL, prefix=prefix, finished_ttl_s=finished_ttl_s)
        elif kind == "redis-cluster":
            store = RedisStore(cluster_url, prefix=prefix, finished_ttl_s=finished_ttl_s, cluster=True)
        else:
            store = SQLiteStore(tmp_path / "live" / "sessions.sqlite3", finished_ttl_s=finished_ttl_s)
        await store.open()
        opened.append(store)
        return store

    yield factory

    for store in opened:
        await store.close()
    if kind != "sqlite":
        client = RedisCluster.from_url(cluster_url) if cluster_url else aioredis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture
async def store(new_store: StoreFactory) -> SessionStore:
    return await new_store()


# ---------------------------------------------------------------------------------------------- sessions
async def test_create_get_round_trip(store: SessionStore) -> None:
    created = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)
    step = pending_step()
    step.status = StepStatus.DONE
    step.decided_by = "U2"
    step.decision = "approve"
    step.decided_at = created + timedelta(seconds=5)
    step.result = "sunny ☀ and 21°C"
    step.notes = ["n1", "n2"]
    step.message = MessageRef(platform="test", channel="C1", id="m1", thread="t1")
    session = Session(
        id="s-round-trip",
        owner="U1",
        owner_name="Ada",
        place=Place(platform="test", channel="C1", thread="t1", team="T1"),
        goals=["find the weather", "write it down"],
        ai_name="WeatherGPT",
        llm_mode="smart",
        continuous=True,
        continuous_limit=7,
        state=SessionState.RUNNING,
        phase=Phase.EXECUTE,
        tasks=["t2", "t3"],
        done_tasks=["t1"],
        steps=[step, pending_step(2)],
        approvals_left=3,
        cycles=2,
        usage=Usage(calls=4, prompt_tokens=1000, completion_tokens=200, cost_usd=0.0123),
        reason="because",
        error="boom",
        task_message=MessageRef(platform="test", channel="C1", id="m0"),
        created_at=created,
        updated_at=created + timedelta(minutes=1),
    )
    await store.create(session)
    assert session.version == 1

    got = await store.get(session.id)
    assert got is not None
    assert got == session
    assert got.created_at == created and got.created_at.tzinfo is not None
    assert got.steps[0].decided_at == created + timedelta(seconds=5)
    assert got.steps[1].command.args["opts"]["tags"] == ["x", "y"]
    assert got.steps[1].status == StepStatus.PENDING
    assert await store.get("no-such-session") is None


async def test_create_twice_raises(store: SessionStore) -> None:
    first = make_session("dup", cycles=1)
    await store.create(first)
    second = make_session("dup", cycles=2)
    with pytest.raises(SessionExists):
        await store.create(second)
    assert second.version == 0
    got = await store.get("dup")
    assert got is not None and got.cycles == 1 and got.version == 1


async def test_cas_bumps_version(store: SessionStore) -> None:
    await store.create(make_session("s1"))
    loaded = await store.get("s1")
    assert loaded is not None and loaded.version == 1
    loaded.cycles = 5
    loaded.state = SessionState.RUNNING
    assert await store.cas(loaded, 1) is True
    assert loaded.version == 2
    got = await store.get("s1")
    assert got is not None
    assert got.version == 2 and got.cycles == 5 and got.state == SessionState.RUNNING
    assert got == loaded


async def test_cas_with_stale_version_changes_nothing(store: SessionStore) -> None:
    await store.create(make_session("s1"))
    a = await store.get("s1")
    b = await store.get("s1")
    assert a is not None and b is not None
    a.cycles = 1
    assert await store.cas(a, 1)
    b.cycles = 99
    b.state = SessionState.FINISHED
    assert await store.cas(b, 1) is False
    assert b.version == 1
    got = await store.get("s1")
    assert got == a
    assert "s1" in await store.active_ids()
    assert await store.cas(make_session("missing"), 0) is False
    assert await store.get("missing") is None


async def test_concurrent_updates_all_land(store: SessionStore) -> None:
    await store.create(make_session("race"))
    gate = Gate(20)
    results = await asyncio.gather(*(store.update("race", bumper(f"r{i}", gate)) for i in range(20)))
    assert all(r is not None for r in results)
    got = await store.get("race")
    assert got is not None
    assert got.cycles == 20 and got.version == 21


async def test_concurrent_approvals_exactly_one_wins(store: SessionStore) -> None:
    session = make_session("approve", state=SessionState.AWAITING_APPROVAL)
    session.steps.append(pending_step())
    await store.create(session)

    gate = Gate(10)
    results = await asyncio.gather(*(store.update("approve", approver(f"user{i}", gate)) for i in range(10)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    got = await store.get("approve")
    assert got is not None
    assert got.version == 2
    assert got.state == SessionState.RUNNING
    assert got.steps[0].status == StepStatus.APPROVED
    assert got.steps[0].decided_by == winners[0].steps[0].decided_by


async def test_two_store_instances_race_atomically(new_store: StoreFactory) -> None:
    """Two clients / connections on one backend: compare-and-set holds across them."""
    one, two = await new_store(), await new_store()
    await one.create(make_session("shared"))

    gate = Gate(20)
    await asyncio.gather(*((one, two)[i % 2].update("shared", bumper(f"r{i}", gate)) for i in range(20)))
    for st in (one, two):
        got = await st.get("shared")
        assert got is not None and got.cycles == 20 and got.version == 21

    session = make_session("shared-approve")
    session.steps.append(pending_step())
    await one.create(session)

    gate = Gate(10)
    racers = [(one, two)[i % 2].update("shared-approve", approver(f"u{i}", gate)) for i in range(10)]
    results = await asyncio.gather(*racers)
    assert sum(r is not None for r in results) == 1


async def test_sessions_of_newest_first_per_user(store: SessionStore) -> None:
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    for sid, minutes in [("b", 2), ("a", 1), ("c", 3)]:
        await store.create(make_session(sid, owner="U1", created_at=t0 + timedelta(minutes=minutes)))
    await store.create(make_session("other-user", owner="U2", created_at=t0 + timedelta(minutes=9)))
    await store.create(make_session("other-platform", owner="U1", platform="slack", created_at=t0))

    mine = await store.sessions_of("test:U1")
    assert [s.id for s in mine] == ["c", "b", "a"]
    assert all(s.version == 1 for s in mine)
    assert [s.id for s in await store.sessions_of("test:U2")] == ["other-user"]
    assert [s.id for s in await store.sessions_of("slack:U1")] == ["other-platform"]
    assert await store.sessions_of("test:nobody") == []


async def test_active_ids_drop_terminal_sessions(store: SessionStore) -> None:
    for sid in ("a", "b", "c"):
        await store.create(make_session(sid))
    await store.create(make_session("born-done", state=SessionState.FAILED))
    assert set(await store.active_ids()) == {"a", "b", "c"}

    b = await store.get("b")
    assert b is not None
    b.state = SessionState.FINISHED
    assert await store.cas(b, b.version)
    assert set(await store.active_ids()) == {"a", "c"}

    b.state = SessionState.PAUSED  # a finished session resumed comes back
    assert await store.cas(b, b.version)
    assert set(await store.active_ids()) == {"a", "b", "c"}


async def test_delete(store: SessionStore) -> None:
    await store.create(make_session("gone"))
    await store.create(make_session("kept"))
    await store.delete("gone")
    await store.delete("never-existed")
    assert await store.get("gone") is None
    assert [s.id for s in await store.sessions_of("test:U1")] == ["kept"]
    assert await store.active_ids() == ["kept"]


async def test_terminal_sessions_expire(new_store: StoreFactory) -> None:
    store = await new_store(finished_ttl_s=0.2)
    for sid in ("done", "resumed", "running"):
        await store.create(make_session(sid))
    moves = {"done": [SessionState.STOPPED], "resumed": [SessionState.FINISHED, SessionState.PAUSED]}
    for sid, states in moves.items():
        for state in states:
            s = await store.get(sid)
            assert s is not None
            s.state = state
            assert await store.cas(s, s.version)

    async def done_gone() -> bool:
        return await store.get("done") is None

    assert await wait_until(done_gone), "a terminal session outlived its TTL"
    assert {s.id for s in await store.sessions_of("test:U1")} == {"running", "resumed"}
    assert set(await store.active_ids()) == {"resumed", "running"}
    assert await store.get("running") is not None
    assert await store.get("resumed") is not None
    # the id can be used again once expired
    await store.create(make_session("done"))
    assert (await store.get("done")) is not None


async def test_spend_adds_up_under_concurrency(store: SessionStore) -> None:
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert await store.get_spend("test:U1", day) == 0.0
    totals = await asyncio.gather(*(store.add_spend("test:U1", day, 0.01) for _ in range(50)))
    assert await store.get_spend("test:U1", day) == pytest.approx(0.50, abs=1e-9)
    assert max(totals) == pytest.approx(0.50, abs=1e-9)
    assert len({round(t, 9) for t in totals}) == 50  # every add saw its own running total
    assert await store.get_spend("test:U2", day) == 0.0
    assert await store.get_spend("test:U1", "2000-01-01") == 0.0


async def test_lease_expiry_says_when_a_lease_lapses(store: SessionStore) -> None:
    assert await store.lease_expiry("s9") is None
    before = time.time()
    assert await store.acquire_lease("s9", "A", 30)
    until = await store.lease_expiry("s9")
    assert until is not None and before + 29 <= until <= time.time() + 30.5
    await store.release_lease("s9", "A")
    assert await store.lease_expiry("s9") is None


async def test_leases(store: SessionStore) -> None:
    assert await store.acquire_lease("s1", "A", 0.3)
    assert not await store.acquire_lease("s1", "B", 0.3)
    assert await store.acquire_lease("s1", "A", 0.3)  # renew
    await store.release_lease("s1", "B")  # not B's: no effect
    assert not await store.acquire_lease("s1", "B", 0.3)
    assert await store.acquire_lease("s2", "B", 5)  # leases are per session

    async def b_takes_over() -> bool:
        return await store.acquire_lease("s1", "B", 5)

    assert await wait_until(b_takes_over), "a lapsed lease was not given to another holder"
    assert not await store.acquire_lease("s1", "A", 5)
    await store.release_lease("s1", "A")  # A lost it: no effect
    assert not await store.acquire_lease("s1", "A", 5)
    await store.release_lease("s1", "B")
    assert await store.acquire_lease("s1", "A", 5)


async def test_places_map_threads_to_sessions(store: SessionStore) -> None:
    assert await store.session_at("slack:C1:1700.1") is None
    await store.bind_place("slack:C1:1700.1", "abc234", ttl_s=60)
    await store.bind_place("slack:C1:1700.2", "def567", ttl_s=0.2)
    assert await store.session_at("slack:C1:1700.1") == "abc234"
    assert await store.session_at("slack:C1:1700.2") == "def567"
    await asyncio.sleep(0.4)
    assert await store.session_at("slack:C1:1700.2") is None
    assert await store.session_at("slack:C1:1700.1") == "abc234"


async def test_documents(store: SessionStore) -> None:
    assert await store.doc_get("schedule", "abc234") is None
    assert await store.doc_create("schedule", "abc234", '{"n": 1}')
    assert not await store.doc_create("schedule", "abc234", '{"n": 2}')
    assert await store.doc_get("schedule", "abc234") == (1, '{"n": 1}')
    assert await store.doc_cas("schedule", "abc234", 1, '{"n": 3}')
    assert not await store.doc_cas("schedule", "abc234", 1, '{"n": 4}')  # stale
    assert await store.doc_get("schedule", "abc234") == (2, '{"n": 3}')
    await store.doc_create("schedule", "def567", "{}")
    await store.doc_create("other", "zzz999", "{}")
    assert await store.doc_list("schedule") == [(2, '{"n": 3}'), (1, "{}")]
    results = await asyncio.gather(
        *[store.doc_cas("schedule", "def567", 1, f'{{"w": {i}}}') for i in range(8)]
    )
    assert sum(results) == 1  # concurrent writers of one version: exactly one lands
    assert await store.doc_delete("schedule", "abc234")
    assert not await store.doc_delete("schedule", "abc234")
    assert [d for _, d in await store.doc_list("schedule")] == [
        (await store.doc_get("schedule", "def567"))[1]
    ]


async def test_channel_profiles(store: SessionStore) -> None:
    key = "slack:T1:C1"
    fresh = ChannelProfile(key=key, platform="slack", team="T1", channel="C1")
    assert await store.get_profile(key) is None
    assert await store.list_profiles() == []

    def set_budget(p: ChannelProfile) -> None:
        p.budget_usd, p.updated_by = 0.5, "<@U1>"

    made = await store.change_profile(fresh, set_budget)
    assert made is not None and made.budget_usd == 0.5
    got = await store.get_profile(key)
    assert got is not None and got.budget_usd == 0.5 and got.updated_by == "<@U1>" and got.team == "T1"
    # concurrent changes of different keys all land (compare-and-set, retried)
    changes = [
        ("ai_name", "Poet"),
        ("smart_llm", "gpt-4o"),
        ("memory_scope", "channel"),
        ("tool_policy", {"web_search": "allow", "*": "ask"}),
        ("mcp_servers", ["docs", "github"]),
        ("continuous_limit", 7),
    ]
    await asyncio.gather(
        *(store.change_profile(fresh, lambda p, f=f, v=v: setattr(p, f, v)) for f, v in changes)  # type: ignore[misc]
    )
    got = await store.get_profile(key)
    assert got is not None and got.budget_usd == 0.5
    for field, value in changes:
        assert getattr(got, field) == value, field
    assert await store.change_profile(fresh, lambda p: False) is None  # aborted: nothing changes
    assert await store.get_profile(key) == got
    other = ChannelProfile(
        key="discord:G1:42", platform="discord", team="G1", channel="42", ai_role="a scout"
    )
    await store.change_profile(other, lambda p: None)
    assert sorted(p.key for p in await store.list_profiles()) == ["discord:G1:42", key]
    # a profile whose keys are all unset is listed as none
    await store.change_profile(other, lambda p: setattr(p, "ai_role", None))
    assert [p.key for p in await store.list_profiles()] == [key]
    # a channel with nothing set and no stored profile stores nothing
    empty = ChannelProfile(key="slack:T1:C9", platform="slack", team="T1", channel="C9")
    assert await store.change_profile(empty, lambda p: None) == empty
    assert await store.get_profile("slack:T1:C9") is None


async def test_templates(store: SessionStore) -> None:
    key = "slack:T1:weekly"
    first = Template(key=key, name="weekly", platform="slack", team="T1", goals=["a", "b"], owner="U1")
    assert await store.get_template(key) is None
    assert await store.save_template(first, replace=lambda old: True) == first
    assert await store.get_template(key) == first
    # replacing asks who may: refused, nothing changes
    second = first.model_copy(update={"goals": ["c"], "owner": "U2"})
    seen: list[Template] = []
    assert await store.save_template(second, replace=lambda old: seen.append(old) is not None) is None
    assert seen == [first] and await store.get_template(key) == first
    assert await store.save_template(second, replace=lambda old: old.owner == "U1") == second
    assert (await store.get_template(key)) == second
    other = Template(key="discord:G1:daily", name="daily", platform="discord", goals=["x"], owner="9")
    await store.save_template(other, replace=lambda old: True)
    assert sorted(t.key for t in await store.list_templates()) == ["discord:G1:daily", key]
    # two saves of a new name at once: one creates it, the other replaces it or is refused
    racers = [first.model_copy(update={"key": "slack:T1:race", "goals": [str(i)]}) for i in range(6)]
    results = await asyncio.gather(*(store.save_template(t, replace=lambda old: False) for t in racers))
    assert sum(r is not None for r in results) == 1
    assert await store.delete_template(key)
    assert not await store.delete_template(key)
    assert await store.get_template(key) is None


async def test_claims_are_first_once_within_their_ttl(store: SessionStore) -> None:
    assert await store.claim("slack:event:Ev1", 0.3)
    assert not await store.claim("slack:event:Ev1", 0.3)  # a repeat
    assert await store.claim("slack:event:Ev2", 0.3)  # claims are per key
    results = await asyncio.gather(*[store.claim("slack:command:T1", 5) for _ in range(10)])
    assert sum(results) == 1  # concurrent deliveries of one request: exactly one is first

    async def claimable_again() -> bool:
        return await store.claim("slack:event:Ev1", 5)

    assert await wait_until(claimable_again), "a lapsed claim was not given again"
    assert not await store.claim("slack:event:Ev1", 5)


async def test_secrets_never_reach_the_store(store: SessionStore) -> None:
    from bot.redact import Redactor

    store.redactor = Redactor([("openai_api_key", "sk-contract-secret"), ("x", 'with "quote"')])
    session = make_session("sec")
    session.steps = [pending_step(1)]
    session.steps[0].result = 'env: OPENAI_API_KEY=sk-contract-secret; with "quote"'
    await store.create(session)
    session.reason = "the provider said: sk-contract-secret"
    assert await store.cas(session, 1)
    stored = await store.get("sec")
    assert stored is not None
    assert stored.steps[0].result == "env: OPENAI_API_KEY=[redacted OPENAI_API_KEY]; [redacted X]"
    assert stored.reason == "the provider said: [redacted OPENAI_API_KEY]"


async def test_a_lone_surrogate_does_not_stop_a_write(store: SessionStore) -> None:
    session = make_session("sur")
    session.goals = ["a \ud800 b"]  # from a chat's JSON ("\\ud800"), which Python's json accepts
    await store.create(session)
    stored = await store.get("sur")
    assert stored is not None and stored.goals == ["a \ufffd b"]


async def test_stored_bytes(store: SessionStore) -> None:
    session = make_session("big")
    session.steps = [pending_step(i) for i in range(5)]
    await store.create(session)
    assert await store.stored_bytes("big") > len(session.steps[0].thoughts.plan)
    assert await store.stored_bytes("missing") == 0


async def test_ping(store: SessionStore) -> None:
    assert await store.ping() is True


# ---------------------------------------------------------------------------------------------- Redis only
async def test_dead_redis_raises_clear_store_error() -> None:
    store = RedisStore(DEAD_REDIS_URL)
    with pytest.raises(StoreError) as info:
        await store.open()
    message = str(info.value)
    assert "127.0.0.1:1" in message and "not answering" in message
    assert "s3cret" not in message and "Traceback" not in message
    with pytest.raises(StoreError, match="not open"):
        await store.get("x")


async def test_redis_errors_after_open_become_store_errors() -> None:
    store = RedisStore(DEAD_REDIS_URL)
    store._client = aioredis.from_url(DEAD_REDIS_URL)  # as if Redis went away after open()
    try:
        with pytest.raises(StoreError, match=r"127\.0\.0\.1:1") as info:
            await store.get("x")
        assert "s3cret" not in str(info.value)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def redis_store_of_its_own(**options: Any) -> AsyncIterator[tuple[RedisStore, aioredis.Redis, str]]:
    """An open RedisStore on a fresh key prefix, a raw client to look at its keys; all removed after."""
    prefix = f"test:{uuid4().hex[:8]}:"
    store = RedisStore(REDIS_URL, prefix=prefix, finished_ttl_s=60, **options)
    await store.open()
    raw = aioredis.from_url(REDIS_URL, decode_responses=True)
    try:
        yield store, raw, prefix
    finally:
        keys = [k async for k in raw.scan_iter(match=f"{prefix}*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
        await store.close()


async def test_redis_key_layout() -> None:
    async with redis_store_of_its_own() as (store, raw, prefix):
        session = make_session("s1")
        await store.create(session)
        await store.acquire_lease("s1", "A", 5)
        await store.add_spend(session.user_key, "2025-01-01", 0.5)
        # the session's keys carry its shard's hash tag ({48} = crc32("s1") % 64), as does the
        # shard's set of active sessions: one slot, so one script updates them on a cluster
        key = f"{prefix}session:{{48}}:s1"
        names = ("steps:{48}:s1", "lease:{48}:s1", "active:{48}")
        assert {key_slot(f"{prefix}{name}".encode()) for name in names} == {key_slot(key.encode())}
        # the head (`h`, the session's JSON without its steps) and the number of steps (`n`);
        # the steps are a list of their own (see tests/test_store_layout.py)
        assert await raw.hgetall(key) | {"h": ""} == {
            "v": "1",
            "h": "",
            "n": "0",
            "u": "test:U1",
            "s": "planning",
        }
        assert await raw.ttl(key) == -1
        session.state = SessionState.FINISHED
        assert await store.cas(session, 1)
        fields = await raw.hgetall(key)
        assert fields["v"] == "2" and fields["s"] == "finished"
        assert Session.model_validate_json(fields["h"]).version == 2  # JSON and `v` agree
        assert 0 < await raw.pttl(key) <= 60_000
        assert 0 < await raw.ttl(f"{prefix}spend:2025-01-01:test:U1") <= 3 * 86400
        assert await raw.zrange(f"{prefix}user:test:U1", 0, -1) == ["s1"]
        assert await raw.smembers(f"{prefix}active:{{48}}") == set()
        assert await raw.get(f"{prefix}lease:{{48}}:s1") == "A"
        session.state = SessionState.PAUSED
        assert await store.cas(session, 2)
        assert await raw.smembers(f"{prefix}active:{{48}}") == {"s1"}
        assert await store.doc_create("schedule", "d1", "{}")  # a kind's documents and index: one slot
        assert await raw.hgetall(f"{prefix}doc:{{schedule}}:d1") == {"v": "1", "d": "{}"}
        assert await raw.smembers(f"{prefix}docs:{{schedule}}") == {"d1"}


async def test_more_commands_at_once_than_pooled_connections_wait_their_turn() -> None:
    """A busy process has more store commands in flight than its pool has connections
    (REDIS_MAX_CONNECTIONS): they wait for one, none fails with "Too many connections"."""
    async with redis_store_of_its_own(max_connections=4) as (store, _, _):
        await asyncio.gather(*(store.create(make_session(f"s{i}")) for i in range(40)))
        found = await asyncio.gather(*(store.get(f"s{i % 40}") for i in range(400)))
        assert all(s is not None for s in found)
        assert len(await store.sessions_of("test:U1")) == 40


# ---------------------------------------------------------------------------------------------- SQLite only
async def test_sqlite_second_store_on_same_file_sees_writes(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "sessions.sqlite3"
    first = SQLiteStore(path)
    await first.open()
    session = make_session("s1")
    await first.create(session)
    session.cycles = 3
    assert await first.cas(session, 1)
    await first.add_spend("test:U1", "2099-01-01", 0.25)
    assert await first.acquire_lease("s1", "old-process", 30)

    second = SQLiteStore(path)  # the process after a restart
    await second.open()
    try:
        got = await second.get("s1")
        assert got is not None and got.cycles == 3 and got.version == 2
        assert [s.id for s in await second.sessions_of("test:U1")] == ["s1"]
        assert await second.active_ids() == ["s1"]
        assert await second.get_spend("test:U1", "2099-01-01") == pytest.approx(0.25)
        assert not await second.acquire_lease("s1", "new-process", 30)
        await first.close()
        got.cycles = 4
        assert await second.cas(got, 2)
    finally:
        await first.close()
        await second.close()

    third = SQLiteStore(path)
    await third.open()
    try:
        again = await third.get("s1")
        assert again is not None and again.cycles == 4 and again.version == 3
    finally:
        await third.close()


# ---------------------------------------------------------------------------------------------- factories
def test_make_store_picks_the_backend(tmp_path: Path) -> None:
    plain = Settings(_env_file=None, data_dir=tmp_path, finished_session_ttl_hours=2)  # type: ignore[call-arg]
    store = make_store(plain)
    assert isinstance(store, SQLiteStore)
    assert store.path == tmp_path / "sessions.sqlite3" and store.finished_ttl_s == 7200

    with_redis = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        redis_url="redis://:pw@127.0.0.1:6379/3",
        redis_prefix="x:",
        archive_retention_days=7,
    )
    store = make_store(with_redis)
    assert isinstance(store, RedisStore)
    assert store.prefix == "x:" and store.finished_ttl_s == 86400 and store.where == "127.0.0.1:6379"

    archive = make_archive(with_redis)
    assert archive.path == tmp_path / "archive.sqlite3" and archive.retention_days == 7


async def test_stored_version_and_a_refusal_of_a_stale_copy(store: SessionStore) -> None:
    """A mutation that refuses a stale copy is asked again about the stored session; one that
    refuses the current one is believed without a second read."""
    session = Session(id="vv1", owner="U1", place=Place(platform="t", channel="C"), goals=["g"])
    await store.create(session)
    assert await store.stored_version("vv1") == 1 and await store.stored_version("nope") is None
    stale = await store.get("vv1")
    assert stale is not None
    await store.update("vv1", lambda s: setattr(s, "tasks", ["moved on"]))
    seen: list[list[str]] = []

    def only_when_moved_on(s: Session) -> bool | None:
        seen.append(list(s.tasks))
        return None if s.tasks == ["moved on"] else False

    saved = await store.update("vv1", only_when_moved_on, current=stale)
    assert saved is not None and seen == [[], ["moved on"]]
    fresh = await store.get("vv1")
    seen.clear()
    assert await store.update("vv1", lambda s: seen.append(1) or False, current=fresh) is None
    assert seen == [1]
