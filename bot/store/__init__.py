"""Session stores (Redis for several processes, SQLite for one) and the archive of finished sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.redact import Redactor
from bot.store.archive import Archive, SessionArchive
from bot.store.base import SessionExists, SessionStore, StoreError
from bot.store.redis_client import RedisTarget
from bot.store.redis_store import RedisStore
from bot.store.sqlite_store import SQLiteStore

if TYPE_CHECKING:
    from bot.settings import Settings

__all__ = [
    "Archive",
    "RedisStore",
    "SQLiteStore",
    "SessionArchive",
    "SessionExists",
    "SessionStore",
    "StoreError",
    "make_archive",
    "make_store",
]


def make_store(settings: Settings) -> SessionStore:
    """Redis when REDIS_URL or REDIS_SENTINEL is set (one server, a cluster with REDIS_CLUSTER, or
    Sentinel), else SQLite under DATA_DIR (one process only)."""
    ttl_s = settings.finished_session_ttl_hours * 3600
    store: SessionStore
    if settings.redis_configured:
        store = RedisStore(RedisTarget.of(settings), prefix=settings.redis_prefix, finished_ttl_s=ttl_s)
    else:
        store = SQLiteStore(settings.data_dir / "sessions.sqlite3", finished_ttl_s=ttl_s)
    store.redactor = Redactor.of(settings)
    return store


def make_archive(settings: Settings) -> SessionArchive:
    """PostgreSQL when ARCHIVE_URL is set (one archive for several processes), else SQLite under
    DATA_DIR."""
    url = settings.archive_url.get_secret_value() if settings.archive_url is not None else ""
    if url:
        from bot.store.pg_archive import PgArchive  # asyncpg is imported only when it is used

        return PgArchive(url, retention_days=settings.archive_retention_days, redactor=Redactor.of(settings))
    return Archive(
        settings.data_dir / "archive.sqlite3",
        retention_days=settings.archive_retention_days,
        redactor=Redactor.of(settings),
    )
