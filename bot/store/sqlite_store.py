"""The session store on SQLite: the embedded default for one bot process (no REDIS_URL).

WAL mode and a busy timeout let a second connection (a restart overlapping the old process, a
benchmark, a maintenance script) wait for the write lock instead of failing. A statement on its
own commits on its own (autocommit); what takes several (a commit, a read of a session) runs as
one transaction on aiosqlite's thread, so it is atomic across connections too.

A session is its row in `sessions` (the head: its JSON without its steps, in `head`, and the
number of its steps) and one row per step in `steps` (session_id, no = its position, data). A
commit checks the version, writes the head and only the steps that changed, in one transaction.
A row written by an older version holds the whole session's JSON in `data` (''  in the new
layout): it is read as it is and rewritten in the new layout by its next commit. A process of
the older version cannot read a rewritten row (its `data` is empty), so it never writes one back
without its steps.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from bot.models import Session, SessionState
from bot.store.base import SessionExists, SessionStore, StoreError, Write, decode_session
from bot.store.sqlite_file import SQLiteFile

PURGE_EVERY_S = 60.0
SPEND_KEEP_DAYS = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    user_key TEXT NOT NULL,
    state TEXT NOT NULL,
    active INTEGER NOT NULL,
    created_at REAL NOT NULL,
    expires_at REAL NULL,
    data TEXT NOT NULL,
    head TEXT NULL,
    steps_n INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS steps (
    session_id TEXT NOT NULL,
    no INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (session_id, no)
);
CREATE INDEX IF NOT EXISTS sessions_user_key ON sessions (user_key, created_at);
CREATE INDEX IF NOT EXISTS sessions_active ON sessions (active);
CREATE TABLE IF NOT EXISTS leases (
    id TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS docs (
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE TABLE IF NOT EXISTS places (
    place TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS spend (
    user_key TEXT NOT NULL,
    day TEXT NOT NULL,
    usd REAL NOT NULL,
    PRIMARY KEY (user_key, day)
);
"""

_LIVE = "(expires_at IS NULL OR expires_at >= ?)"
_ADDED_COLUMNS = {
    "head": "TEXT NULL",
    "steps_n": "INTEGER NOT NULL DEFAULT 0",
}  # to a file of an older version
_PUT_STEP = (
    "INSERT INTO steps (session_id, no, data) VALUES (?, ?, ?)"
    " ON CONFLICT (session_id, no) DO UPDATE SET data = excluded.data"
)
_EXPIRED_STEPS = "DELETE FROM steps WHERE session_id IN (SELECT id FROM sessions WHERE expires_at < ?)"

Row = tuple[str | None, str, int]  # head, data (the whole JSON of the older layout, or ''), steps_n


def _decode(session_id: str, row: Row, steps: list[str]) -> Session:
    head, whole, count = row
    if whole:
        return Session.model_validate_json(whole)
    if head is None or count != len(steps):
        raise StoreError(f"session {session_id}: {len(steps)} steps stored of {count}")
    return decode_session(head, steps)


class SQLiteStore(SQLiteFile, SessionStore):
    label = "SQLite store"

    def __init__(self, path: Path, finished_ttl_s: float = 86400) -> None:
        super().__init__(path)
        self.finished_ttl_s = finished_ttl_s
        self._next_purge = 0.0

    # ------------------------------------------------------------------ plumbing
    def _expiry(self, state: SessionState) -> tuple[int, float | None]:
        """(active, expires_at) for a session in `state`."""
        if state.terminal:
            return 0, time.time() + self.finished_ttl_s
        return 1, None

    async def _maybe_purge(self) -> None:
        """Drop expired sessions, lapsed leases and old spend, at most once a minute."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + min(PURGE_EVERY_S, self.finished_ttl_s)
        await self._purge()

    async def _purge(self) -> None:
        now = time.time()
        oldest_day = (datetime.now(UTC) - timedelta(days=SPEND_KEEP_DAYS)).strftime("%Y-%m-%d")

        def purge(conn: sqlite3.Connection) -> None:
            conn.execute(_EXPIRED_STEPS, (now,))
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM leases WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM claims WHERE expires_at < ?", (now,))
            conn.execute("DELETE FROM spend WHERE day < ?", (oldest_day,))

        await self._transaction(purge, write=True)

    async def _add_columns(self) -> None:
        """The columns of the head and step layout, in a file an older version created."""
        have = {row[1] for row in await self._rows("PRAGMA table_info(sessions)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in have:
                try:
                    await self._run(f"ALTER TABLE sessions ADD COLUMN {name} {kind}")
                except sqlite3.OperationalError as exc:  # another process added it just now
                    if "duplicate column" not in str(exc):
                        raise

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if await self._connect(_SCHEMA):
            with self._guard("open"):
                await self._add_columns()
                await self._purge()
            self._next_purge = time.monotonic() + min(PURGE_EVERY_S, self.finished_ttl_s)

    async def close(self) -> None:
        await SQLiteFile.close(self)

    async def ping(self) -> bool:
        with self._guard("ping"):
            rows = await self._rows("SELECT 1")
        return bool(rows)

    # ------------------------------------------------------------------ sessions
    async def create(self, session: Session) -> None:
        state = SessionState(session.state)
        active, expires_at = self._expiry(state)
        write = self.write_of(session, 1, whole=True)
        sid, now = session.id, time.time()

        def insert(conn: sqlite3.Connection) -> bool:
            # an expired row not purged yet counts as missing, as a Redis key past its TTL does
            conn.execute(
                "DELETE FROM steps WHERE session_id IN"
                " (SELECT id FROM sessions WHERE id = ? AND expires_at < ?)",
                (sid, now),
            )
            conn.execute("DELETE FROM sessions WHERE id = ? AND expires_at < ?", (sid, now))
            try:
                conn.execute(
                    "INSERT INTO sessions"
                    " (id, version, user_key, state, active, created_at, expires_at, data, head, steps_n)"
                    " VALUES (?, 1, ?, ?, ?, ?, ?, '', ?, ?)",
                    (
                        sid,
                        session.user_key,
                        state.value,
                        active,
                        session.created_at.timestamp(),
                        expires_at,
                        write.head,
                        write.count,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            conn.execute("DELETE FROM steps WHERE session_id = ?", (sid,))
            conn.executemany(_PUT_STEP, [(sid, j, text) for j, text in write.steps])
            return True

        with self._guard("create"):
            await self._maybe_purge()
            created = await self._transaction(insert, write=True)
        if not created:
            raise SessionExists(f"session {session.id} already exists")
        session.version = 1

    @staticmethod
    def _read_one(conn: sqlite3.Connection, session_id: str, now: float) -> tuple[Row | None, list[str]]:
        row = conn.execute(
            f"SELECT head, data, steps_n FROM sessions WHERE id = ? AND {_LIVE}", (session_id, now)
        ).fetchone()
        if row is None or row[1]:
            return row, []
        steps = conn.execute("SELECT data FROM steps WHERE session_id = ? ORDER BY no", (session_id,))
        return row, [text for (text,) in steps]

    async def get(self, session_id: str) -> Session | None:
        now = time.time()
        with self._guard("get"):
            await self._maybe_purge()
            row, steps = await self._transaction(
                partial(self._read_one, session_id=session_id, now=now), write=False
            )
        return None if row is None else _decode(session_id, row, steps)

    async def cas(self, session: Session, expected_version: int) -> bool:
        return await self._save(session, expected_version, whole=True)

    async def commit(self, session: Session, expected_version: int) -> bool:
        return await self._save(session, expected_version, whole=False)

    async def _save(self, session: Session, expected_version: int, *, whole: bool) -> bool:
        new_version = expected_version + 1
        state = SessionState(session.state)
        active, expires_at = self._expiry(state)
        sid = session.id

        def save(conn: sqlite3.Connection, write: Write, now: float) -> int:
            """1 when written, 0 when the version is not the expected one, -1 when it is but the
            steps stored are not the ones `write` changes (an older layout)."""
            row = conn.execute(
                f"SELECT version, data, steps_n FROM sessions WHERE id = ? AND {_LIVE}", (sid, now)
            ).fetchone()
            if row is None or row[0] != expected_version:
                return 0
            if write.base is not None and (row[1] or row[2] != write.base):
                return -1
            conn.execute(
                "UPDATE sessions SET version = ?, state = ?, active = ?, expires_at = ?, data = '',"
                " head = ?, steps_n = ? WHERE id = ?",
                (new_version, state.value, active, expires_at, write.head, write.count, sid),
            )
            if write.base is None:
                conn.execute("DELETE FROM steps WHERE session_id = ?", (sid,))
            elif write.count < write.base:
                conn.execute("DELETE FROM steps WHERE session_id = ? AND no >= ?", (sid, write.count))
            conn.executemany(_PUT_STEP, [(sid, j, text) for j, text in write.steps])
            return 1

        write = self.write_of(session, new_version, whole=whole)
        with self._guard("cas"):
            while True:
                now = time.time()
                done = await self._transaction(partial(save, write=write, now=now), write=True)
                if done == -1 and write.base is not None:  # stored in the older layout: rewrite it whole
                    write = self.write_of(session, new_version, whole=True)
                    continue
                break
        if done == 1:
            session.version = new_version
            return True
        return False

    async def sessions_of(self, user_key: str) -> list[Session]:
        now = time.time()

        def read(conn: sqlite3.Connection) -> tuple[list[Any], list[Any]]:
            rows = conn.execute(
                f"SELECT id, head, data, steps_n FROM sessions WHERE user_key = ? AND {_LIVE}"
                " ORDER BY created_at DESC, rowid DESC",
                (user_key, now),
            ).fetchall()
            steps = conn.execute(
                "SELECT session_id, data FROM steps WHERE session_id IN"
                f" (SELECT id FROM sessions WHERE user_key = ? AND {_LIVE} AND data = '')"
                " ORDER BY session_id, no",
                (user_key, now),
            ).fetchall()
            return rows, steps

        with self._guard("sessions_of"):
            await self._maybe_purge()
            rows, step_rows = await self._transaction(read, write=False)
        steps: dict[str, list[str]] = {}
        for sid, text in step_rows:
            steps.setdefault(sid, []).append(text)
        return [_decode(sid, (head, data, count), steps.get(sid, [])) for sid, head, data, count in rows]

    async def active_ids(self) -> list[str]:
        with self._guard("active_ids"):
            rows = await self._rows("SELECT id FROM sessions WHERE active = 1 ORDER BY id")
        return [row[0] for row in rows]

    async def delete(self, session_id: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM steps WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

        with self._guard("delete"):
            await self._transaction(delete, write=True)

    # ------------------------------------------------------------------ spend
    async def add_spend(self, user_key: str, day: str, usd: float) -> float:
        with self._guard("add_spend"):
            rows = await self._rows(
                "INSERT INTO spend (user_key, day, usd) VALUES (?, ?, ?)"
                " ON CONFLICT (user_key, day) DO UPDATE SET usd = spend.usd + excluded.usd RETURNING usd",
                (user_key, day, usd),
            )
        return float(rows[0][0])

    async def get_spend(self, user_key: str, day: str) -> float:
        with self._guard("get_spend"):
            rows = await self._rows("SELECT usd FROM spend WHERE user_key = ? AND day = ?", (user_key, day))
        return float(rows[0][0]) if rows else 0.0

    async def _one_row(self, action: str, sql: str, params: tuple[object, ...]) -> bool:
        """Run a statement; whether it changed (inserted, updated or deleted) exactly one row."""
        with self._guard(action):
            return await self._run(sql, params) == 1

    # ------------------------------------------------------------------ claims
    async def claim(self, key: str, ttl_s: float) -> bool:
        now = time.time()
        return await self._one_row(
            "claim",
            "INSERT INTO claims (key, expires_at) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE claims.expires_at < ?",
            (key, now + ttl_s, now),
        )

    # ------------------------------------------------------------------ leases
    async def acquire_lease(self, session_id: str, holder: str, ttl_s: float) -> bool:
        now = time.time()
        return await self._one_row(
            "acquire_lease",
            "INSERT INTO leases (id, holder, expires_at) VALUES (?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at"
            " WHERE leases.holder = excluded.holder OR leases.expires_at < ?",
            (session_id, holder, now + ttl_s, now),
        )

    async def release_lease(self, session_id: str, holder: str) -> None:
        with self._guard("release_lease"):
            await self._run("DELETE FROM leases WHERE id = ? AND holder = ?", (session_id, holder))

    async def stored_version(self, session_id: str) -> int | None:
        with self._guard("stored_version"):
            rows = await self._rows(
                f"SELECT version FROM sessions WHERE id = ? AND {_LIVE}", (session_id, time.time())
            )
        return int(rows[0][0]) if rows else None

    async def lease_expiry(self, session_id: str) -> float | None:
        with self._guard("lease_expiry"):
            rows = await self._rows("SELECT expires_at FROM leases WHERE id = ?", (session_id,))
        until = float(rows[0][0]) if rows else None
        return until if until is not None and until > time.time() else None

    # ------------------------------------------------------------------ places
    async def bind_place(self, place_key: str, session_id: str, ttl_s: float) -> None:
        with self._guard("bind_place"):
            await self._run(
                "INSERT INTO places (place, session_id, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (place) DO UPDATE SET session_id = excluded.session_id,"
                " expires_at = excluded.expires_at",
                (place_key, session_id, time.time() + ttl_s),
            )

    async def session_at(self, place_key: str) -> str | None:
        with self._guard("session_at"):
            rows = await self._rows(
                "SELECT session_id FROM places WHERE place = ? AND expires_at >= ?", (place_key, time.time())
            )
        return str(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ documents
    async def doc_create(self, kind: str, doc_id: str, data: str) -> bool:
        return await self._one_row(
            "doc_create",
            "INSERT INTO docs (kind, id, version, data) VALUES (?, ?, 1, ?) ON CONFLICT DO NOTHING",
            (kind, doc_id, data),
        )

    async def doc_get(self, kind: str, doc_id: str) -> tuple[int, str] | None:
        with self._guard("doc_get"):
            rows = await self._rows(
                "SELECT version, data FROM docs WHERE kind = ? AND id = ?", (kind, doc_id)
            )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    async def doc_cas(self, kind: str, doc_id: str, expected_version: int, data: str) -> bool:
        return await self._one_row(
            "doc_cas",
            "UPDATE docs SET version = version + 1, data = ? WHERE kind = ? AND id = ? AND version = ?",
            (data, kind, doc_id, expected_version),
        )

    async def doc_list(self, kind: str) -> list[tuple[int, str]]:
        with self._guard("doc_list"):
            rows = await self._rows("SELECT version, data FROM docs WHERE kind = ? ORDER BY id", (kind,))
        return [(int(v), str(d)) for v, d in rows]

    async def doc_delete(self, kind: str, doc_id: str) -> bool:
        return await self._one_row("doc_delete", "DELETE FROM docs WHERE kind = ? AND id = ?", (kind, doc_id))

    # ------------------------------------------------------------------ benchmarks
    async def stored_bytes(self, session_id: str) -> int:
        with self._guard("stored_bytes"):
            rows = await self._rows(
                "SELECT length(CAST(data AS BLOB)) + coalesce(length(CAST(head AS BLOB)), 0)"
                " + (SELECT coalesce(sum(length(CAST(data AS BLOB))), 0) FROM steps WHERE session_id = ?)"
                " FROM sessions WHERE id = ?",
                (session_id, session_id),
            )
        return int(rows[0][0]) if rows else 0
