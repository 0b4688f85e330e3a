"""The archive: finished sessions with their full transcript and spend, on SQLite.

Live sessions expire from the store some hours after they finish; the engine saves each one here
first, so history and usage can still be read for `retention_days`.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.models import Session
from bot.redact import NO_SECRETS, Redactor
from bot.store.sqlite_file import SQLiteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS archive (
    id TEXT PRIMARY KEY,
    user_key TEXT NOT NULL,
    platform TEXT NOT NULL,
    state TEXT NOT NULL,
    goals TEXT NOT NULL,
    cycles INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS archive_user_created ON archive (user_key, created_at);
CREATE INDEX IF NOT EXISTS archive_finished ON archive (finished_at);
"""


def _ts(moment: datetime) -> float:
    """Seconds since the epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


class Archive(SQLiteFile):
    label = "archive"

    def __init__(self, path: Path, retention_days: int = 90, redactor: Redactor = NO_SECRETS) -> None:
        super().__init__(path)
        self.retention_days = retention_days
        self.redactor = redactor

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if await self._connect(_SCHEMA):
            await self.purge()

    # ------------------------------------------------------------------ sessions
    async def save(self, session: Session) -> None:
        """Insert or replace the archived copy of a session."""
        finished = session.finished_at or session.updated_at
        with self._guard("save"):
            await self._run(
                "INSERT INTO archive"
                " (id, user_key, platform, state, goals, cycles, cost_usd, created_at, finished_at, data)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET user_key = excluded.user_key, platform = excluded.platform,"
                " state = excluded.state, goals = excluded.goals, cycles = excluded.cycles,"
                " cost_usd = excluded.cost_usd, created_at = excluded.created_at,"
                " finished_at = excluded.finished_at, data = excluded.data",
                (
                    session.id,
                    session.user_key,
                    session.place.platform,
                    str(session.state),
                    self.redactor.text(json.dumps(session.goals, ensure_ascii=False)),
                    session.cycles,
                    session.usage.cost_usd,
                    _ts(session.created_at),
                    _ts(finished),
                    self.redactor.text(session.model_dump_json()),
                ),
            )

    async def get(self, session_id: str) -> Session | None:
        with self._guard("get"):
            rows = await self._rows("SELECT data FROM archive WHERE id = ?", (session_id,))
        return Session.model_validate_json(rows[0][0]) if rows else None

    async def list_for(self, user_key: str, limit: int = 20) -> list[Session]:
        """A user's archived sessions, newest first."""
        with self._guard("list_for"):
            rows = await self._rows(
                "SELECT data FROM archive WHERE user_key = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (user_key, limit),
            )
        return [Session.model_validate_json(row[0]) for row in rows]

    async def spend_of(self, user_key: str, since: datetime) -> float:
        """USD spent by a user's archived sessions created at or after `since`."""
        with self._guard("spend_of"):
            rows = await self._rows(
                "SELECT COALESCE(SUM(cost_usd), 0.0) FROM archive WHERE user_key = ? AND created_at >= ?",
                (user_key, _ts(since)),
            )
        return float(rows[0][0])

    async def purge(self) -> int:
        """Delete sessions that finished more than `retention_days` ago; returns how many."""
        cutoff = time.time() - self.retention_days * 86400
        with self._guard("purge"):
            return await self._run("DELETE FROM archive WHERE finished_at < ?", (cutoff,))
