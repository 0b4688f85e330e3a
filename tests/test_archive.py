"""The archive of finished sessions, on a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.models import CommandCall, Place, Session, SessionState, Step, StepStatus, Thoughts, Usage
from bot.store import Archive, StoreError

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


@pytest.fixture
async def archive(tmp_path: Path) -> AsyncIterator[Archive]:
    a = Archive(tmp_path / "data" / "archive.sqlite3")
    await a.open()
    try:
        yield a
    finally:
        await a.close()


async def test_save_and_get_round_trip(archive: Archive) -> None:
    session = finished_session("s1")
    await archive.save(session)
    got = await archive.get("s1")
    assert got == session
    assert got is not None and got.steps[0].result == "ok" and got.version == 7
    assert await archive.get("missing") is None


async def test_save_is_an_upsert(archive: Archive) -> None:
    session = finished_session("s1", cost=0.1)
    await archive.save(session)
    session.usage.cost_usd = 0.3
    session.state = SessionState.STOPPED
    await archive.save(session)
    got = await archive.get("s1")
    assert got is not None and got.state == SessionState.STOPPED
    assert len(await archive.list_for("test:U1")) == 1
    assert await archive.spend_of("test:U1", NOW - timedelta(days=1)) == pytest.approx(0.3)


async def test_list_for_newest_first_per_user(archive: Archive) -> None:
    for sid, age in [("mid", 2), ("new", 1), ("old", 3)]:
        await archive.save(finished_session(sid, created_days_ago=age))
    await archive.save(finished_session("theirs", owner="U2"))
    await archive.save(finished_session("slack", platform="slack"))
    assert [s.id for s in await archive.list_for("test:U1")] == ["new", "mid", "old"]
    assert [s.id for s in await archive.list_for("test:U1", limit=2)] == ["new", "mid"]
    assert [s.id for s in await archive.list_for("test:U2")] == ["theirs"]
    assert [s.id for s in await archive.list_for("slack:U1")] == ["slack"]
    assert await archive.list_for("test:nobody") == []


async def test_spend_of_sums_sessions_created_since(archive: Archive) -> None:
    await archive.save(finished_session("a", created_days_ago=0.5, cost=0.25))
    await archive.save(finished_session("b", created_days_ago=2, cost=0.5))
    await archive.save(finished_session("c", created_days_ago=10, cost=4.0))
    await archive.save(finished_session("d", owner="U2", cost=9.0))
    assert await archive.spend_of("test:U1", NOW - timedelta(days=1)) == pytest.approx(0.25)
    assert await archive.spend_of("test:U1", NOW - timedelta(days=3)) == pytest.approx(0.75)
    naive = (NOW - timedelta(days=30)).replace(tzinfo=None)  # naive is read as UTC
    assert await archive.spend_of("test:U1", naive) == pytest.approx(4.75)
    assert await archive.spend_of("test:nobody", NOW - timedelta(days=30)) == 0.0


async def test_purge_drops_sessions_past_retention(archive: Archive) -> None:
    await archive.save(finished_session("recent", finished_days_ago=89))
    await archive.save(finished_session("stale", created_days_ago=120, finished_days_ago=100))
    assert await archive.purge() == 1
    assert await archive.get("stale") is None
    assert await archive.get("recent") is not None
    assert await archive.purge() == 0


async def test_survives_reopen_and_open_purges(tmp_path: Path) -> None:
    path = tmp_path / "archive.sqlite3"
    first = Archive(path)
    await first.open()
    await first.save(finished_session("keep", finished_days_ago=1))
    await first.save(finished_session("aging", finished_days_ago=10))
    await first.close()

    second = Archive(path, retention_days=5)  # a shorter retention: open() purges
    await second.open()
    try:
        assert (await second.get("keep")) is not None
        assert await second.get("aging") is None
        assert [s.id for s in await second.list_for("test:U1")] == ["keep"]
    finally:
        await second.close()


async def test_closed_archive_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        await Archive(tmp_path / "a.sqlite3").get("x")


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
