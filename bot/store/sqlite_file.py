"""One SQLite file on aiosqlite, shared by the SQLite session store and the archive: connecting
(WAL, a busy timeout so another process on the file waits), running statements, and turning
sqlite errors into `StoreError` with the file named."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.store.base import StoreError, opened

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
OPEN_ATTEMPTS = 40  # switching a new file to WAL while another process does can fail at once


class SQLiteFile:
    label = "SQLite file"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        return opened(self._db, f"{self.label} {self.path.name}")

    @contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{self.label} {self.path.name} failed ({action}): {exc}") from exc

    async def _run(self, sql: str, params: Iterable[Any] = ()) -> int:
        """Execute one statement; returns the number of rows it changed."""
        async with self.db.execute(sql, tuple(params)) as cursor:
            return cursor.rowcount

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        return list(await self.db.execute_fetchall(sql, tuple(params)))

    async def _call(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the connection, on aiosqlite's thread, as one item of its queue: no
        other statement of this process runs in between (so `work` may hold a transaction), and
        several statements cost one hop to that thread."""
        db = self.db
        return await db._execute(lambda: work(db._conn))  # aiosqlite's own way to run a call there

    async def _transaction(self, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """`work` in one transaction (see `transaction`) on the connection's thread."""
        return await self._call(lambda conn: self.transaction(conn, work, write=write))

    @staticmethod
    def transaction(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T], *, write: bool) -> T:
        """`work` in one transaction: IMMEDIATE (the write lock taken at once, waiting up to the
        busy timeout) to write, a deferred one (a consistent snapshot) to read."""
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return result

    async def _connect(self, schema: str) -> bool:
        """Open the file (creating its folder and `schema`); False if it was open already."""
        if self._db is not None:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {self.path}: {exc}") from exc
        with self._guard("open"):
            for attempt in itertools.count(1):
                try:
                    self._db = await self._open(schema)
                    return True
                except sqlite3.OperationalError as exc:
                    # SQLite answers "locked" without waiting when waiting could deadlock (two
                    # connections making a new file WAL, or creating its tables, at once): retry.
                    if "locked" not in str(exc) or attempt >= OPEN_ATTEMPTS:
                        raise
                    await asyncio.sleep(0.05 * (1 + attempt % 5))
        raise AssertionError("not reached")

    async def _open(self, schema: str) -> aiosqlite.Connection:
        db = await aiosqlite.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.executescript(schema)
        except BaseException:
            await db.close()
            raise
        return db

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()
