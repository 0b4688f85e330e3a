"""The session head under compare-and-set, steps stored one by one: a commit's bytes and CPU do
not grow with the session's length; the older single-JSON layout is still read and rewritten;
secrets are redacted in the head and in every step; a step edited after being written is
rewritten. On the real Redis (database 15) and SQLite files."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import redis.asyncio as aioredis

from bot.models import CommandCall, MessageRef, Place, Session, SessionState, Step, StepStatus, Thoughts
from bot.redact import Redactor
from bot.store import RedisStore, SessionStore, SQLiteStore
from bot.store.base import StepList, Write

REDIS_URL = os.environ.get("TEST_STORE_REDIS_URL", "redis://127.0.0.1:6379/15")
SECRET = "sk-layout-secret-123"

# The schema of the previous version (single JSON per session), to write old-layout files.
OLD_SCHEMA = """
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    user_key TEXT NOT NULL,
    state TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NULL,
    data TEXT NOT NULL
);
CREATE INDEX sessions_user_key ON sessions (user_key, created_at);
CREATE INDEX sessions_active ON sessions (active);
"""


def big_step(no: int) -> Step:
    """A step of about 700 bytes of JSON, like an agent's."""
    return Step(
        no=no,
        thoughts=Thoughts(
            text="look at the page " * 6,
            reasoning="because it says so " * 6,
            plan="- read\n- write\n" * 4,
            criticism="be brief " * 5,
            speak="reading " * 5,
        ),
        command=CommandCall(name="browse", args={"url": f"https://example.com/{no}", "q": "weather " * 4}),
        status=StepStatus.DONE,
        result="the page says: sunny " * 10,
        proposed_at=datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=no),
    )


def session_with(steps: int, sid: str | None = None) -> Session:
    return Session(
        id=sid or uuid4().hex,
        owner="U1",
        place=Place(platform="test", channel="C1"),
        goals=["g"],
        state=SessionState.RUNNING,
        tasks=[f"task {i}" for i in range(5)],
        steps=[big_step(i + 1) for i in range(steps)],
    )


@pytest.fixture(params=["redis", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SessionStore]:
    s: SessionStore
    if request.param == "redis":
        prefix = f"test:{uuid4().hex[:8]}:"
        s = RedisStore(REDIS_URL, prefix=prefix)
    else:
        s = SQLiteStore(tmp_path / "sessions.sqlite3")
    await s.open()
    yield s
    await s.close()
    if isinstance(s, RedisStore):
        client = aioredis.from_url(REDIS_URL)
        keys = [key async for key in client.scan_iter(match=f"{s.prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


class Meter:
    """What commits hand to the backend: the JSON bytes of each `Write` (head and steps), and on
    Redis the bytes of every EVALSHA argument (what goes over the wire), on SQLite the rows the
    connection changed (`total_changes`)."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store
        self.json_bytes = 0
        self.wire_bytes = 0
        self.rows = 0
        self.commits = 0
        write_of = store.write_of

        def counted(session: Session, version: int, *, whole: bool = False) -> Write:
            write = write_of(session, version, whole=whole)
            self.json_bytes += len(write.head.encode()) + sum(len(t.encode()) for _, t in write.steps)
            self.commits += 1
            return write

        store.write_of = counted  # type: ignore[method-assign]
        if isinstance(store, RedisStore):
            client = store.client
            evalsha = client.evalsha

            def wire(*args: Any, **kwargs: Any) -> Any:
                self.wire_bytes += sum(len(str(a).encode()) for a in args)
                return evalsha(*args, **kwargs)

            client.evalsha = wire  # type: ignore[method-assign]

    async def total_changes(self) -> int:
        if isinstance(self.store, SQLiteStore):
            return int(await self.store._call(lambda conn: conn.total_changes))
        return 0


def touch_last(i: int) -> Callable[[Session], None]:
    """A cycle's usual commit: counters in the head, the last step's status and result."""

    def mutate(s: Session) -> None:
        s.cycles += 1
        last = s.steps[-1]
        last.status = StepStatus.DONE if last.status != StepStatus.DONE else StepStatus.APPROVED
        last.result = f"result {i}"

    return mutate


async def commits(store: SessionStore, steps: int, n: int) -> tuple[float, float, float, float]:
    """(CPU seconds, JSON bytes, wire bytes, rows changed) per commit, over `n` commits of one
    session with `steps` steps through `update(..., current=...)`, as the engine makes them."""
    session = session_with(steps)
    await store.create(session)
    current = await store.get(session.id)
    assert current is not None
    for i in range(5):  # warm-up: scripts loaded, statements prepared
        current = await store.update(session.id, touch_last(i), current=current)
        assert current is not None
    meter = Meter(store)
    changes = await meter.total_changes()
    cpu = time.process_time()
    for i in range(n):
        current = await store.update(session.id, touch_last(i), current=current)
        assert current is not None
    cpu = time.process_time() - cpu
    rows = await meter.total_changes() - changes
    assert meter.commits == n and len(current.steps) == steps
    return cpu / n, meter.json_bytes / n, meter.wire_bytes / n, rows / n


async def test_bytes_per_commit_do_not_grow_with_the_steps(store: SessionStore) -> None:
    _, small_json, small_wire, small_rows = await commits(store, 5, 50)
    _, large_json, large_wire, large_rows = await commits(store, 200, 50)
    assert large_json <= small_json * 1.2, (small_json, large_json)
    assert small_json < 3000  # the head and one step, not the session
    if isinstance(store, RedisStore):
        assert large_wire <= small_wire * 1.2, (small_wire, large_wire)
    else:
        assert large_rows == small_rows <= 3, (small_rows, large_rows)  # the head's row and one step's


async def test_cpu_per_commit_does_not_grow_with_the_steps(store: SessionStore) -> None:
    # the best of three runs of 200 commits each, against the noise of a shared machine
    small = min([(await commits(store, 5, 200))[0] for _ in range(3)])
    large = min([(await commits(store, 200, 200))[0] for _ in range(3)])
    # the single-JSON layout took about 14 times as long at 200 steps as at 5
    assert large <= small * 2.0, f"{small * 1e6:.0f} us per commit at 5 steps, {large * 1e6:.0f} us at 200"


# ---------------------------------------------------------------------------------------------- raw access
async def raw_layout(store: SessionStore, sid: str) -> tuple[str | None, str | None, list[str]]:
    """(head, whole JSON of the older layout, step texts) as stored."""
    if isinstance(store, RedisStore):
        client = store.client
        head, whole = await client.hmget(store._session_key(sid), ["h", "d"])
        return head, whole, await client.lrange(store._steps_key(sid), 0, -1)
    assert isinstance(store, SQLiteStore)
    rows = await store._rows("SELECT head, data FROM sessions WHERE id = ?", (sid,))
    steps = await store._rows("SELECT data FROM steps WHERE session_id = ? ORDER BY no", (sid,))
    head, whole = (rows[0][0], rows[0][1]) if rows else (None, None)
    return head, whole or None, [text for (text,) in steps]


async def write_old_layout(store: SessionStore, session: Session) -> None:
    """Store `session` as an older version did: one JSON text holding everything (on Redis under
    the key names without hash tags, which the store moves when it opens again)."""
    text = session.model_dump_json()
    if isinstance(store, RedisStore):
        client = store.client
        key = f"{store.prefix}session:{session.id}"
        await client.hset(
            key, mapping={"v": session.version, "d": text, "u": session.user_key, "s": session.state.value}
        )
        await client.zadd(
            f"{store.prefix}user:{session.user_key}", {session.id: session.created_at.timestamp()}
        )
        await client.sadd(f"{store.prefix}active", session.id)
        await store.close()
        await store.open()
        return
    assert isinstance(store, SQLiteStore)
    await store._run(
        "INSERT INTO sessions (id, version, user_key, state, active, created_at, expires_at, data)"
        " VALUES (?, ?, ?, ?, 1, ?, NULL, ?)",
        (
            session.id,
            session.version,
            session.user_key,
            session.state.value,
            session.created_at.timestamp(),
            text,
        ),
    )


# ---------------------------------------------------------------------------------------------- migration
@pytest.mark.parametrize("with_current", [False, True])
async def test_old_layout_is_read_and_rewritten_on_the_next_commit(
    store: SessionStore, with_current: bool
) -> None:
    old = session_with(4, sid="old-one")
    old.version = 7
    await write_old_layout(store, old)

    got = await store.get("old-one")
    assert got == old
    assert [s.id for s in await store.sessions_of("test:U1")] == ["old-one"]
    assert await store.active_ids() == ["old-one"]

    def mutate(s: Session) -> None:
        s.cycles = 3
        s.steps[1].notes.append("seen")

    saved = await store.update("old-one", mutate, current=got if with_current else None)
    assert saved is not None and saved.version == 8
    head, whole, steps = await raw_layout(store, "old-one")
    assert whole is None and head is not None  # now in the new layout, whole
    assert len(steps) == 4 and Step.model_validate_json(steps[1]).notes == ["seen"]
    again = await store.get("old-one")
    assert again == saved and again.cycles == 3 and again.version == 8
    assert again.steps[1].notes == ["seen"] and again.steps[3] == old.steps[3]
    # and the commits after it write only what changed
    again2 = await store.update("old-one", lambda s: setattr(s.steps[0], "feedback", "ok"), current=again)
    assert again2 is not None and (await store.get("old-one")) == again2


async def test_redis_keys_of_the_previous_key_layout_are_moved_at_open() -> None:
    """Keys without hash tags (the layout before Redis Cluster support): sessions with their steps
    and leases, the active set, and documents with their index, moved when the store opens; a
    session id left in the old active set without a session is dropped."""
    store = RedisStore(REDIS_URL, prefix=f"test:{uuid4().hex[:8]}:")
    await store.open()
    p = store.prefix
    try:
        session = session_with(3, sid="pre-cluster")
        write = store.write_of(session, 4, whole=True)
        client = store.client
        await client.hset(
            f"{p}session:pre-cluster", mapping={"v": 4, "h": write.head, "n": 3, "u": "test:U1"}
        )
        await client.rpush(f"{p}steps:pre-cluster", *(text for _, text in write.steps))
        await client.set(f"{p}lease:pre-cluster", "old-process", px=30_000)
        await client.sadd(f"{p}active", "pre-cluster", "long-gone")
        await client.hset(f"{p}doc:schedule:sch1", mapping={"v": 2, "d": '{"x": 1}'})
        await client.sadd(f"{p}docs:schedule", "sch1")
        await store.close()
        await store.open()
        got = await store.get("pre-cluster")
        assert got is not None and got.version == 4 and got.steps == session.steps
        assert await store.active_ids() == ["pre-cluster"]
        assert not await store.acquire_lease("pre-cluster", "new-process", 5)  # the lease moved too
        assert await store.doc_list("schedule") == [(2, '{"x": 1}')]
        assert await store.doc_cas("schedule", "sch1", 2, "{}")
        left = [k async for k in client.scan_iter(match=f"{p}*") if "{" not in k]
        assert left == []
    finally:
        keys = [k async for k in store.client.scan_iter(match=f"{store.prefix}*")]
        if keys:
            await store.client.delete(*keys)
        await store.close()


async def test_a_sqlite_file_of_the_previous_version_opens_and_migrates(tmp_path: Path) -> None:
    path = tmp_path / "sessions.sqlite3"
    old = session_with(3, sid="from-before")
    old.version = 2
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, 1, ?, NULL, ?)",
            (old.id, 2, old.user_key, old.state.value, old.created_at.timestamp(), old.model_dump_json()),
        )
    conn.close()
    store = SQLiteStore(path)
    await store.open()
    try:
        assert await store.get("from-before") == old
        assert await store.active_ids() == ["from-before"]
        saved = await store.update("from-before", lambda s: setattr(s, "cycles", 9))
        assert saved is not None and saved.version == 3
        head, whole, steps = await raw_layout(store, "from-before")
        assert whole is None and head is not None and len(steps) == 3
        assert await store.get("from-before") == saved
    finally:
        await store.close()


# ---------------------------------------------------------------------------------------------- secrets
async def test_secrets_are_redacted_in_the_head_and_in_each_step(store: SessionStore) -> None:
    store.redactor = Redactor([("openai_api_key", SECRET)])
    session = session_with(3, sid="sec")
    session.reason = f"the provider said {SECRET}"
    session.steps[0].result = f"env: KEY={SECRET}"
    await store.create(session)
    head, _, steps = await raw_layout(store, "sec")
    assert head is not None and SECRET not in head and "[redacted OPENAI_API_KEY]" in head
    assert SECRET not in steps[0] and "[redacted OPENAI_API_KEY]" in steps[0]

    current = await store.get("sec")
    assert current is not None

    def leak(s: Session) -> None:
        s.error = SECRET
        s.steps[2].feedback = f"try {SECRET}"
        s.steps.append(big_step(4))
        s.steps[3].result = f"printed {SECRET}"

    saved = await store.update("sec", leak, current=current)
    assert saved is not None
    head, _, steps = await raw_layout(store, "sec")
    assert head is not None and all(SECRET not in text for text in [head, *steps])
    stored = await store.get("sec")
    assert stored is not None
    assert stored.error == "[redacted OPENAI_API_KEY]"
    assert stored.steps[2].feedback == "try [redacted OPENAI_API_KEY]"
    assert stored.steps[3].result == "printed [redacted OPENAI_API_KEY]"


# ---------------------------------------------------------------------------------------------- edited steps
async def test_a_step_edited_after_being_written_is_rewritten(store: SessionStore) -> None:
    session = session_with(5, sid="edit")
    session.steps.append(big_step(6))
    session.steps[-1].status = StepStatus.PENDING
    session.steps[-1].result = None
    session.state = SessionState.AWAITING_APPROVAL
    await store.create(session)
    before = (await raw_layout(store, "edit"))[2]
    current = await store.get("edit")
    assert current is not None

    ref = MessageRef(platform="test", channel="C1", id="m6", thread="t")

    def set_message(s: Session) -> bool | None:
        for step in s.steps:  # as the engine finds a step: by its number, from the first
            if step.no == 6:
                step.message = ref
                return None
        return False

    current = await store.update("edit", set_message, current=current)
    assert current is not None

    def approve(s: Session) -> None:
        step = s.pending_step
        assert step is not None
        step.status = StepStatus.APPROVED
        step.decided_by = "U2"
        s.state = SessionState.RUNNING

    current = await store.update("edit", approve, current=current)
    assert current is not None

    def done(s: Session) -> None:  # this one through a fresh load, not `current`
        last = s.last_step
        assert last is not None
        last.status = StepStatus.DONE
        last.result = "it ran"
        last.notes.append("note")

    saved = await store.update("edit", done)
    assert saved is not None and saved.version == 4

    got = await store.get("edit")
    assert got == saved
    last = got.steps[-1]
    assert (last.status, last.decided_by, last.result, last.notes, last.message) == (
        StepStatus.DONE,
        "U2",
        "it ran",
        ["note"],
        ref,
    )
    after = (await raw_layout(store, "edit"))[2]
    assert after[:5] == before[:5]  # the other steps were not rewritten
    assert after[5] != before[5]


async def test_update_never_changes_current_and_shares_the_untouched_steps(store: SessionStore) -> None:
    await store.create(session_with(4, sid="priv"))
    current = await store.get("priv")
    assert current is not None
    snapshot = current.model_dump_json()

    def change(s: Session) -> None:
        s.steps[-1].notes.append("x")
        s.tasks.append("more")
        for step in s.steps:
            step.thoughts.speak = step.thoughts.speak  # reached, not changed

    saved = await store.update("priv", change, current=current)
    assert saved is not None
    assert current.model_dump_json() == snapshot  # the caller's copy is untouched
    assert type(saved.steps) is list
    assert saved.steps[-1].notes == ["x"] and current.steps[-1].notes == []
    assert await store.get("priv") == saved

    aborted = await store.update("priv", lambda s: s.steps[0].notes.append("no") or False, current=saved)
    assert aborted is None and saved.steps[0].notes == []


@pytest.mark.parametrize(
    "edit",
    [
        lambda s: s.steps.pop(),
        lambda s: s.steps.pop(0),
        lambda s: s.steps.insert(0, big_step(0)),
        lambda s: s.steps.sort(key=lambda x: -x.no),
        lambda s: s.steps.reverse(),
        lambda s: s.steps.clear(),
        lambda s: s.steps.__delitem__(slice(1, 3)),
        lambda s: s.steps.__setitem__(2, big_step(99)),
        lambda s: (s.steps.pop(), s.steps.append(big_step(42))),
        lambda s: setattr(s, "steps", [*s.steps[:2], big_step(7)]),
        lambda s: s.model_copy(update={"steps": [big_step(1)]}),
    ],
)
async def test_any_change_to_the_list_of_steps_is_stored(
    store: SessionStore, edit: Callable[[Session], Any]
) -> None:
    session = session_with(5, sid="list")
    for i, step in enumerate(session.steps):
        step.result = f"r{i}"
    await store.create(session)
    current = await store.get("list")
    assert current is not None
    expected = current.model_copy(deep=True)
    returned = edit(expected)
    if isinstance(returned, Session):
        expected = returned

    def mutate(s: Session) -> Session | None:
        out = edit(s)
        return out if isinstance(out, Session) else None

    saved = await store.update("list", mutate, current=current)
    assert saved is not None
    got = await store.get("list")
    assert got is not None
    assert [st.model_dump() for st in got.steps] == [st.model_dump() for st in expected.steps]
    assert got == saved


def test_step_list_names_only_what_changed() -> None:
    base = [big_step(i) for i in range(10)]
    steps = StepList(base, copy_on_access=True)
    _ = steps[3].no  # reached, not changed
    steps[-1].result = "new"
    steps.append(big_step(11))
    count, changed = steps.changes()
    assert count == 10 and [j for j, _ in changed] == [9, 10]
    assert base[9].result != "new"  # the base is never changed
