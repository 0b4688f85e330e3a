"""MEMORY_BACKEND=local: a SQLite file (DATA_DIR/memory.sqlite3), vectors as float32 blobs,
cosine search with numpy over the rows of one scope.

Why not sqlite-vec: a scope holds hundreds to a few thousand memories, which numpy scores in
well under a millisecond, while sqlite-vec is a loadable extension (some Python builds cannot
load extensions at all) whose vec0 tables fix one dimension per table. Plain rows keep any
embedding model working, and the `(idx, scope, dim)` index means a search reads only its scope.
"""

from __future__ import annotations

import time
from pathlib import Path

import aiosqlite
import numpy as np

from bot.memory.base import ScopeCache, VectorMemory
from bot.memory.embed import Embedder
from bot.memory.errors import MemoryUnavailable
from bot.settings import Settings
from bot.store.base import StoreError
from bot.store.sqlite_file import SQLiteFile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idx TEXT NOT NULL,
    scope TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS memories_scope ON memories (idx, scope, dim);
"""


class LocalMemory(VectorMemory):
    def __init__(
        self, settings: Settings, embedder: Embedder | None = None, path: Path | None = None
    ) -> None:
        super().__init__(settings, embedder)
        self.file = SQLiteFile(Path(path or settings.data_dir / "memory.sqlite3"))
        self.file.label = "local memory"  # its errors name the memory, not "SQLite file"
        self.path = self.file.path
        self.index = settings.memory_index
        self.name = f"local memory {self.path.name}"
        self._cache = ScopeCache()

    @property
    def db(self) -> aiosqlite.Connection:
        return self.client  # type: ignore[no-any-return]

    async def _open(self) -> None:
        """Open the file as the SQLite store and archive open theirs: WAL, a busy timeout, and an
        open that SQLite refuses at once with "database is locked" (another process making the
        same new file WAL, or creating its table, at that moment) retried."""
        try:
            await self.file._connect(_SCHEMA)
        except StoreError as exc:
            raise MemoryUnavailable(str(exc)) from exc  # "local memory memory.sqlite3 failed (open): ..."
        self._client = self.file.db

    async def _close(self) -> None:
        self._client = None
        await self.file.close()

    async def _wipe(self) -> None:
        await self.db.execute("DELETE FROM memories WHERE idx = ?", (self.index,))
        self._cache.clear()

    async def _put(self, scope: str, text: str, vector: np.ndarray) -> None:
        await self.db.execute(
            "INSERT INTO memories (idx, scope, dim, vector, text, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (self.index, scope, int(vector.size), vector.astype("<f4").tobytes(), text, time.time()),
        )

    async def _has_any(self, scope: str) -> bool:
        rows = await self.db.execute_fetchall(
            "SELECT 1 FROM memories WHERE idx = ? AND scope = ? LIMIT 1", (self.index, scope)
        )
        return bool(list(rows))

    async def _query(self, scope: str, vector: np.ndarray, k: int) -> list[str]:
        dim = int(vector.size)
        known = self._cache.get(scope, dim)
        last = known.ids[-1] if known.ids else 0
        if last:  # still in step with the file (another process may have wiped it)?
            count = await self.db.execute_fetchall(
                "SELECT COUNT(*) FROM memories WHERE idx = ? AND scope = ? AND dim = ? AND id <= ?",
                (self.index, scope, dim, last),
            )
            if next(iter(count))[0] != len(known.ids):
                known, last = self._cache.drop(scope, dim), 0
        rows = await self.db.execute_fetchall(  # only what was added since this process last looked
            "SELECT id, vector, text FROM memories WHERE idx = ? AND scope = ? AND dim = ? AND id > ?",
            (self.index, scope, dim, last),
        )
        known.add([(int(r[0]), bytes(r[1]), str(r[2])) for r in rows], dim)
        return known.search(vector, k)
