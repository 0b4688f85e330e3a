"""The archive: finished sessions with their full transcript and spend, on SQLite (the default,
under DATA_DIR) or on PostgreSQL (`ARCHIVE_URL`: `bot/store/pg_archive.py`).

Live sessions expire from the store some hours after they finish; the engine saves each one here
first, so history and usage can still be read for `retention_days`.

Besides the whole session (`data`), a row keeps what usage reports read (its channel, team,
owner's name and `Usage`, per model) in columns of their own, so a report never decodes a
transcript. A file made before those columns gets them when it is opened, filled in from `data`.
`SessionArchive` is what both backends share: the interface, and the row a session is saved as
(redacted the same way on both).
"""

from __future__ import annotations

import json
import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bot.models import Session, Usage, UsageRecord
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
    data TEXT NOT NULL,
    channel TEXT,
    team TEXT,
    owner_name TEXT,
    usage TEXT
);
CREATE INDEX IF NOT EXISTS archive_user_created ON archive (user_key, created_at);
CREATE INDEX IF NOT EXISTS archive_finished ON archive (finished_at);
CREATE INDEX IF NOT EXISTS archive_created ON archive (created_at);
"""
# columns a file from an older version lacks, and how to fill them in from `data`
_ADDED_COLUMNS = {
    "channel": "json_extract(data, '$.place.channel')",
    "team": "json_extract(data, '$.place.team')",
    "owner_name": "json_extract(data, '$.owner_name')",
    "usage": "json_extract(data, '$.usage')",
}
BATCH = 200  # sessions read at once by `finished_since`


def aware(moment: datetime) -> datetime:
    """`moment` with a time zone; a naive datetime is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _ts(moment: datetime) -> float:
    """Seconds since the epoch; a naive datetime is taken as UTC."""
    return aware(moment).timestamp()


@dataclass(frozen=True)
class ArchiveRow:
    """One archived session as every backend stores it: its transcript, goals and owner's name
    redacted, and the columns reports read."""

    id: str
    user_key: str
    platform: str
    state: str
    goals: str  # a JSON list
    cycles: int
    cost_usd: float
    created_at: datetime
    finished_at: datetime
    data: str  # the session's JSON
    channel: str
    team: str | None
    owner_name: str | None
    usage: str  # its Usage's JSON


def usage_record(
    sid: str,
    key: str,
    platform: str,
    name: str | None,
    channel: str | None,
    team: str | None,
    cycles: int,
    created: datetime,
    usage: str | None,
    cost: float,
) -> UsageRecord:
    """A report's record of one archived row (a row from before spend per model was recorded
    has only its total)."""
    spent = Usage.model_validate_json(usage) if usage else Usage(cost_usd=float(cost))
    return UsageRecord(
        id=sid,
        user_key=key,
        platform=platform,
        owner=key.split(":", 1)[1] if ":" in key else key,
        owner_name=name,
        channel=channel or "",
        team=team,
        cycles=int(cycles),
        created_at=created,
        usage=spent,
    )


class SessionArchive(ABC):
    """Finished sessions, kept `retention_days` after they finished: the interface the engine,
    the service and the reports use. `open` creates what is missing and purges."""

    retention_days: int
    redactor: Redactor

    def row(self, session: Session) -> ArchiveRow:
        """What `save` stores of `session`, the same (and redacted the same way) on every backend."""
        return ArchiveRow(
            id=session.id,
            user_key=session.user_key,
            platform=session.place.platform,
            state=str(session.state),
            goals=self.redactor.text(json.dumps(session.goals, ensure_ascii=False)),
            cycles=session.cycles,
            cost_usd=session.usage.cost_usd,
            created_at=aware(session.created_at),
            finished_at=aware(session.finished_at or session.updated_at),
            data=self.redactor.text(session.model_dump_json()),
            channel=session.place.channel,
            team=session.place.team,
            owner_name=self.redactor.text(session.owner_name) if session.owner_name else None,
            usage=session.usage.model_dump_json(),
        )

    def cutoff(self) -> float:
        """Seconds since the epoch: a session that finished before then is purged."""
        return time.time() - self.retention_days * 86400

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def save(self, session: Session) -> None:
        """Insert or replace the archived copy of a session."""

    @abstractmethod
    async def get(self, session_id: str) -> Session | None: ...

    @abstractmethod
    async def list_for(self, user_key: str, limit: int = 20) -> list[Session]:
        """A user's archived sessions, newest first."""

    @abstractmethod
    async def spend_of(self, user_key: str, since: datetime) -> float:
        """USD spent by a user's archived sessions created at or after `since`."""

    @abstractmethod
    async def usage_since(
        self,
        since: datetime,
        platform: str | None = None,
        user_key: str | None = None,
        channel: str | None = None,
    ) -> list[UsageRecord]:
        """What the sessions created at or after `since` used (of one platform, user or channel
        when given), oldest first, without their transcripts."""

    @abstractmethod
    def finished_since(self, since: datetime) -> AsyncIterator[Session]:
        """Every archived session that finished at or after `since`, oldest first, read a batch
        at a time (for an export: each holds its whole transcript)."""

    @abstractmethod
    async def purge(self) -> int:
        """Delete sessions that finished more than `retention_days` ago; returns how many."""


class Archive(SQLiteFile, SessionArchive):
    """The archive on SQLite: `DATA_DIR/archive.sqlite3`, the default."""

    label = "archive"

    def __init__(self, path: Path, retention_days: int = 90, redactor: Redactor = NO_SECRETS) -> None:
        super().__init__(path)
        self.retention_days = retention_days
        self.redactor = redactor

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        if await self._connect(_SCHEMA):
            with self._guard("open"):
                await self._call(self._add_columns)
            await self.purge()

    def _add_columns(self, conn: sqlite3.Connection) -> None:
        """The report columns, in a file an older version made (filled in from each row's data),
        in one transaction: another process opening the file waits, then finds them."""
        have = {row[1] for row in conn.execute("PRAGMA table_info(archive)")}
        if set(_ADDED_COLUMNS) <= have:
            return

        def add(c: sqlite3.Connection) -> None:
            have = {row[1] for row in c.execute("PRAGMA table_info(archive)")}
            missing = [name for name in _ADDED_COLUMNS if name not in have]
            for name in missing:
                c.execute(f"ALTER TABLE archive ADD COLUMN {name} TEXT")
            if missing:
                sets = ", ".join(f"{name} = {_ADDED_COLUMNS[name]}" for name in missing)
                c.execute(f"UPDATE archive SET {sets}")

        self.transaction(conn, add, write=True)

    # ------------------------------------------------------------------ sessions
    async def save(self, session: Session) -> None:
        """Insert or replace the archived copy of a session."""
        r = self.row(session)
        with self._guard("save"):
            await self._run(
                "INSERT INTO archive (id, user_key, platform, state, goals, cycles, cost_usd, created_at,"
                " finished_at, data, channel, team, owner_name, usage)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET user_key = excluded.user_key, platform = excluded.platform,"
                " state = excluded.state, goals = excluded.goals, cycles = excluded.cycles,"
                " cost_usd = excluded.cost_usd, created_at = excluded.created_at,"
                " finished_at = excluded.finished_at, data = excluded.data, channel = excluded.channel,"
                " team = excluded.team, owner_name = excluded.owner_name, usage = excluded.usage",
                (
                    r.id,
                    r.user_key,
                    r.platform,
                    r.state,
                    r.goals,
                    r.cycles,
                    r.cost_usd,
                    r.created_at.timestamp(),
                    r.finished_at.timestamp(),
                    r.data,
                    r.channel,
                    r.team,
                    r.owner_name,
                    r.usage,
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

    async def usage_since(
        self,
        since: datetime,
        platform: str | None = None,
        user_key: str | None = None,
        channel: str | None = None,
    ) -> list[UsageRecord]:
        """What the sessions created at or after `since` used (of one platform, user or channel
        when given), oldest first, without their transcripts."""
        where, params = ["created_at >= ?"], [_ts(since)]
        for column, value in (("platform", platform), ("user_key", user_key), ("channel", channel)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)  # type: ignore[arg-type]
        with self._guard("usage_since"):
            rows = await self._rows(
                "SELECT id, user_key, platform, owner_name, channel, team, cycles, created_at, usage,"
                f" cost_usd FROM archive WHERE {' AND '.join(where)} ORDER BY created_at, rowid",
                params,
            )
        return [
            usage_record(
                sid, key, plat, name, chan, team, cycles, datetime.fromtimestamp(created, UTC), usage, cost
            )
            for sid, key, plat, name, chan, team, cycles, created, usage, cost in rows
        ]

    async def finished_since(self, since: datetime) -> AsyncIterator[Session]:
        """Every archived session that finished at or after `since`, oldest first, read a batch
        at a time (for an export: each holds its whole transcript)."""
        sql = "SELECT id, finished_at, data FROM archive WHERE {} ORDER BY finished_at, id LIMIT ?"
        where, params = "finished_at >= ?", [_ts(since)]
        while True:
            with self._guard("finished_since"):
                rows = await self._rows(sql.format(where), [*params, BATCH])
            for sid, finished, data in rows:
                yield Session.model_validate_json(data)
                where, params = "finished_at > ? OR (finished_at = ? AND id > ?)", [finished, finished, sid]
            if len(rows) < BATCH:
                return

    async def purge(self) -> int:
        """Delete sessions that finished more than `retention_days` ago; returns how many."""
        with self._guard("purge"):
            return await self._run("DELETE FROM archive WHERE finished_at < ?", (self.cutoff(),))
