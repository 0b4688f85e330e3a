"""The session store on SQLite: the embedded default for one bot process (no REDIS_URL).

WAL mode and a busy timeout let a second connection (a restart overlapping the old process, a
benchmark, a maintenance script) wait for the write lock instead of failing. Every statement
commits on its own (autocommit), and `cas` is one `UPDATE ... WHERE version = ?`, so it is
atomic across connections too.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.models import Session, SessionState
from bot.store.base import SessionExists, SessionStore
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
    data TEXT NOT NULL
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
        await self._run("DELETE FROM sessions WHERE expires_at < ?", (now,))
        await self._run("DELETE FROM leases WHERE expires_at < ?", (now,))
        await self._run("DELETE FROM claims WHERE expires_at < ?", (now,))
        await self._run("DELETE FROM spend WHERE day < ?", (oldest_day,))

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if await self._connect(_SCHEMA):
            with self._guard("open"):
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
        with self._guard("create"):
            await self._maybe_purge()
            # an expired row not purged yet counts as missing, as a Redis key past its TTL does
            await self._run("DELETE FROM sessions WHERE id = ? AND expires_at < ?", (session.id, time.time()))
            try:
                await self._run(
                    "INSERT INTO sessions"
                    " (id, version, user_key, state, active, created_at, expires_at, data)"
                    " VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
                    (
                        session.id,
                        session.user_key,
                        state.value,
                        active,
                        session.created_at.timestamp(),
                        expires_at,
                        self.encode(session, 1),
                    ),
                )
            except sqlite3.IntegrityError:
                raise SessionExists(f"session {session.id} already exists") from None
        session.version = 1

    async def get(self, session_id: str) -> Session | None:
        with self._guard("get"):
            await self._maybe_purge()
            rows = await self._rows(
                f"SELECT data FROM sessions WHERE id = ? AND {_LIVE}", (session_id, time.time())
            )
        return Session.model_validate_json(rows[0][0]) if rows else None

    async def cas(self, session: Session, expected_version: int) -> bool:
        new_version = expected_version + 1
        state = SessionState(session.state)
        active, expires_at = self._expiry(state)
        with self._guard("cas"):
            changed = await self._run(
                "UPDATE sessions SET version = ?, state = ?, active = ?, expires_at = ?, data = ?"
                f" WHERE id = ? AND version = ? AND {_LIVE}",
                (
                    new_version,
                    state.value,
                    active,
                    expires_at,
                    self.encode(session, new_version),
                    session.id,
                    expected_version,
                    time.time(),
                ),
            )
        if changed == 1:
            session.version = new_version
            return True
        return False

    async def sessions_of(self, user_key: str) -> list[Session]:
        with self._guard("sessions_of"):
            await self._maybe_purge()
            rows = await self._rows(
                f"SELECT data FROM sessions WHERE user_key = ? AND {_LIVE}"
                " ORDER BY created_at DESC, rowid DESC",
                (user_key, time.time()),
            )
        return [Session.model_validate_json(row[0]) for row in rows]

    async def active_ids(self) -> list[str]:
        with self._guard("active_ids"):
            rows = await self._rows("SELECT id FROM sessions WHERE active = 1 ORDER BY id")
        return [row[0] for row in rows]

    async def delete(self, session_id: str) -> None:
        with self._guard("delete"):
            await self._run("DELETE FROM sessions WHERE id = ?", (session_id,))

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
                "SELECT length(CAST(data AS BLOB)) FROM sessions WHERE id = ?", (session_id,)
            )
        return int(rows[0][0]) if rows else 0
