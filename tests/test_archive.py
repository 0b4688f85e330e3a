"""The archive of finished sessions, on a real SQLite file and on a real PostgreSQL (ARCHIVE_URL,
a schema of its own per test): the same tests, the same behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from bot.models import CommandCall, Place, Session, SessionState, Step, StepStatus, Thoughts, Usage
from bot.redact import Redactor
from bot.store import Archive, SessionArchive, StoreError
from bot.store.pg_archive import PgArchive

Maker = Callable[..., SessionArchive]  # an archive on the test's one file or schema

NOW = datetime.now(UTC)


def finished_session(
    sid: str,
    owner: str = "U1",
    platform: str = "test",
    created_days_ago: float = 0,
    finished_days_ago: float = 0,
    cost: float = 0.1,
) -> Session:
    created = NOW - timedelta(days=created_days_ago)
    return Session(
        id=sid,
        version=7,
        owner=owner,
        place=Place(platform=platform, channel="C1"),
        goals=["g1", "g2 ✓"],
        state=SessionState.FINISHED,
        cycles=3,
        usage=Usage(calls=3, prompt_tokens=300, completion_tokens=30, cost_usd=cost),
        steps=[
            Step(
                no=1,
                thoughts=Thoughts(text="t"),
                command=CommandCall(name="finish", args={"reason": "done"}),
                status=StepStatus.DONE,
                result="ok",
            )
        ],
        created_at=created,
        updated_at=created,
        finished_at=NOW - timedelta(days=finished_days_ago),
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Maker:
    """Archives on one place: a SQLite file, or a fresh PostgreSQL schema (`pg_url`)."""
    if request.param == "sqlite":
        return lambda **kw: Archive(tmp_path / "data" / "archive.sqlite3", **kw)
    url = request.getfixturevalue("pg_url")
    return lambda **kw: PgArchive(url, **kw)


@pytest.fixture
async def archive(make: Maker) -> AsyncIterator[SessionArchive]:
    a = make()
    await a.open()
    try:
        yield a
    finally:
        await a.close()


async def test_save_and_get_round_trip(archive: SessionArchive) -> None:
    session = finished_session("s1")
    await archive.save(session)
    got = await archive.get("s1")
    assert got == session
    assert got is not None and got.steps[0].result == "ok" and got.version == 7
    assert await archive.get("missing") is None


async def test_save_is_an_upsert(archive: SessionArchive) -> None:
    session = finished_session("s1", cost=0.1)
    await archive.save(session)
    session.usage.cost_usd = 0.3
    session.state = SessionState.STOPPED
    await archive.save(session)
    got = await archive.get("s1")
    assert got is not None and got.state == SessionState.STOPPED
    assert len(await archive.list_for("test:U1")) == 1
    assert await archive.spend_of("test:U1", NOW - timedelta(days=1)) == pytest.approx(0.3)


async def test_list_for_newest_first_per_user(archive: SessionArchive) -> None:
    for sid, age in [("mid", 2), ("new", 1), ("old", 3)]:
        await archive.save(finished_session(sid, created_days_ago=age))
    await archive.save(finished_session("theirs", owner="U2"))
    await archive.save(finished_session("slack", platform="slack"))
    assert [s.id for s in await archive.list_for("test:U1")] == ["new", "mid", "old"]
    assert [s.id for s in await archive.list_for("test:U1", limit=2)] == ["new", "mid"]
    assert [s.id for s in await archive.list_for("test:U2")] == ["theirs"]
    assert [s.id for s in await archive.list_for("slack:U1")] == ["slack"]
    assert await archive.list_for("test:nobody") == []


async def test_spend_of_sums_sessions_created_since(archive: SessionArchive) -> None:
    await archive.save(finished_session("a", created_days_ago=0.5, cost=0.25))
    await archive.save(finished_session("b", created_days_ago=2, cost=0.5))
    await archive.save(finished_session("c", created_days_ago=10, cost=4.0))
    await archive.save(finished_session("d", owner="U2", cost=9.0))
    assert await archive.spend_of("test:U1", NOW - timedelta(days=1)) == pytest.approx(0.25)
    assert await archive.spend_of("test:U1", NOW - timedelta(days=3)) == pytest.approx(0.75)
    naive = (NOW - timedelta(days=30)).replace(tzinfo=None)  # naive is read as UTC
    assert await archive.spend_of("test:U1", naive) == pytest.approx(4.75)
    assert await archive.spend_of("test:nobody", NOW - timedelta(days=30)) == 0.0


async def test_purge_drops_sessions_past_retention(archive: SessionArchive) -> None:
    await archive.save(finished_session("recent", finished_days_ago=89))
    await archive.save(finished_session("stale", created_days_ago=120, finished_days_ago=100))
    assert await archive.purge() == 1
    assert await archive.get("stale") is None
    assert await archive.get("recent") is not None
    assert await archive.purge() == 0


async def test_survives_reopen_and_open_purges(make: Maker) -> None:
    first = make()
    await first.open()
    await first.save(finished_session("keep", finished_days_ago=1))
    await first.save(finished_session("aging", finished_days_ago=10))
    await first.close()

    second = make(retention_days=5)  # a shorter retention: open() purges
    await second.open()
    try:
        assert (await second.get("keep")) is not None
        assert await second.get("aging") is None
        assert [s.id for s in await second.list_for("test:U1")] == ["keep"]
    finally:
        await second.close()


async def test_closed_archive_raises_store_error(make: Maker) -> None:
    with pytest.raises(StoreError, match="not open"):
        await make().get("x")


@pytest.mark.parametrize("kind", ["archive", "store"])
async def test_several_processes_opening_one_new_file_at_once_all_succeed(tmp_path: Path, kind: str) -> None:
    """Several bot processes on one DATA_DIR start together: each opens the same new SQLite file
    (making it WAL, creating its tables). SQLite refuses some of them at once with "database is
    locked" instead of waiting; every open must still succeed. (Each connection has its own
    thread, so the opens really run at the same time.)"""
    from bot.store.sqlite_store import SQLiteStore

    for round_no in range(20):
        path = tmp_path / f"r{round_no}" / "data.sqlite3"
        files = [Archive(path) if kind == "archive" else SQLiteStore(path) for _ in range(4)]
        try:
            results = await asyncio.gather(*(f.open() for f in files), return_exceptions=True)
            assert [r for r in results if isinstance(r, BaseException)] == []
        finally:
            for f in files:
                await f.close()


# ---------------------------------------------------------------------------- both backends, more


async def test_usage_since_filters_and_keeps_the_order_of_saving(archive: SessionArchive) -> None:
    for sid in ("b", "a", "c"):  # one moment: ties keep the order they were first saved in
        same = finished_session(sid)
        same.created_at = NOW - timedelta(hours=1)
        await archive.save(same)
    await archive.save(finished_session("old", created_days_ago=5))
    await archive.save(finished_session("theirs", owner="U2", platform="slack", cost=0.5))
    await archive.save(finished_session("b"))  # saved again: it keeps its place among the ties
    got = await archive.usage_since(NOW - timedelta(days=1))
    assert [r.id for r in got] == ["a", "c", "b", "theirs"]
    assert got[0].owner == "U1" and got[0].channel == "C1" and got[0].usage.cost_usd == pytest.approx(0.1)
    assert got[0].created_at == NOW - timedelta(hours=1) and got[0].created_at.tzinfo is not None
    assert [r.id for r in await archive.usage_since(NOW - timedelta(days=1), platform="slack")] == ["theirs"]
    assert [r.id for r in await archive.usage_since(NOW - timedelta(days=9), user_key="test:U1")] == [
        "old",
        "a",
        "c",
        "b",
    ]
    assert await archive.usage_since(NOW - timedelta(days=9), channel="C9") == []


async def test_finished_since_reads_every_session_a_batch_at_a_time(
    archive: SessionArchive, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.store import archive as sqlite_archive
    from bot.store import pg_archive

    for module in (sqlite_archive, pg_archive):
        monkeypatch.setattr(module, "BATCH", 2)  # a batch boundary falls between equal times
    tied = NOW - timedelta(hours=2)
    for sid in ("s3", "s1", "s2", "s4"):
        s = finished_session(sid)
        s.finished_at = tied
        await archive.save(s)
    await archive.save(finished_session("late", finished_days_ago=0))
    await archive.save(finished_session("early", finished_days_ago=3))
    got = [s.id async for s in archive.finished_since(NOW - timedelta(days=1))]
    assert got == ["s1", "s2", "s3", "s4", "late"]


async def test_saved_transcripts_are_redacted_the_same_way(make: Maker) -> None:
    secret = "sk-live-archive-secret-91"
    archive = make(redactor=Redactor([("OPENAI_API_KEY", secret)]))
    await archive.open()
    try:
        session = finished_session("s1")
        session.goals = [f"use {secret}"]
        session.owner_name = f"bob {secret}"
        session.steps[0].result = f"the key is {secret}\x00 and a NUL"
        await archive.save(session)
        got = await archive.get("s1")
        assert got is not None and secret not in got.model_dump_json()
        assert got.goals == ["use [redacted OPENAI_API_KEY]"]
        assert got.steps[0].result is not None
        assert got.steps[0].result.startswith("the key is [redacted OPENAI_API_KEY]")
        # PostgreSQL cannot hold U+0000: it is kept as U+FFFD there
        assert got.steps[0].result.endswith(("\x00 and a NUL", "\ufffd and a NUL"))
        (record,) = await archive.usage_since(NOW - timedelta(days=1))
        assert record.owner_name == "bob [redacted OPENAI_API_KEY]"
    finally:
        await archive.close()


async def test_two_processes_share_one_archive(make: Maker) -> None:
    """Two bot processes on one archive (one PostgreSQL database, or one SQLite file on a shared
    volume) open it at once, and each sees the sessions the other finished."""
    first, second = make(), make()
    await asyncio.gather(first.open(), second.open())
    try:
        await first.save(finished_session("from-a", cost=0.25))
        await second.save(finished_session("from-b", created_days_ago=1, cost=0.5))
        for archive in (first, second):
            assert {"from-a", "from-b"} <= {s.id for s in await archive.list_for("test:U1")}
            assert (await archive.get("from-a")) is not None and (await archive.get("from-b")) is not None
            assert await archive.spend_of("test:U1", NOW - timedelta(days=2)) == pytest.approx(0.75)
        stopped = finished_session("from-a")
        stopped.state = SessionState.STOPPED
        await second.save(stopped)  # the other's session, saved again: one row, the newer copy
        got = await first.get("from-a")
        assert got is not None and got.state == SessionState.STOPPED
        assert len(await first.usage_since(NOW - timedelta(days=2))) == 2
    finally:
        await first.close()
        await second.close()


# ---------------------------------------------------------------------------- PostgreSQL


def test_archive_url_picks_postgresql(tmp_path: Path) -> None:
    from bot.settings import Settings
    from bot.store import make_archive

    url = "postgresql://bot:hunter2-archive@db.internal:5433/bot?search_path=autogpt"
    settings = Settings(_env_file=None, data_dir=tmp_path, archive_url=url, archive_retention_days=7)  # type: ignore[call-arg]
    archive = make_archive(settings)
    assert isinstance(archive, PgArchive) and archive.retention_days == 7
    assert archive.where == "db.internal:5433/bot" and "hunter2" not in repr(settings)
    assert isinstance(make_archive(Settings(_env_file=None, data_dir=tmp_path)), Archive)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="must be a postgresql:// URL"):
        Settings(_env_file=None, archive_url="mysql://u:p@h/db")  # type: ignore[call-arg]


async def test_a_postgresql_that_does_not_answer_or_refuses_is_a_clear_error(pg_url: str) -> None:
    dead = PgArchive("postgresql://bot:hunter2-archive@127.0.0.1:1/bot")
    with pytest.raises(StoreError) as err:
        await dead.open()
    assert str(err.value).startswith("PostgreSQL at 127.0.0.1:1/bot is not answering: ")
    assert "hunter2" not in str(err.value)
    nodb = PgArchive(urlunsplit(urlsplit(pg_url)._replace(path="/no_such_db_17")))
    with pytest.raises(StoreError, match=r'refused: database "no_such_db_17" does not exist'):
        await nodb.open()
    bad = PgArchive("postgresql://bot:hunter2-archive@127.0.0.1:99999/bot")
    with pytest.raises(StoreError, match="not a valid PostgreSQL URL") as err:
        await bad.open()
    assert "hunter2" not in str(err.value)
