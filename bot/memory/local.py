"""MEMORY_BACKEND=local: a SQLite file (DATA_DIR/memory.sqlite3), vectors as float32 blobs,
cosine search with numpy over the rows of one scope.

Why not sqlite-vec: a scope holds hundreds to a few thousand memories, which numpy scores in
well under a millisecond, while sqlite-vec is a loadable extension (some Python builds cannot
load extensions at all) whose vec0 tables fix one dimension per table. Plain rows keep any
embedding model working, and the `(idx, scope, dim)` index means a search reads only its scope.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiosqlite
import numpy as np

from bot.memory.base import VectorMemory, top_k
from bot.memory.embed import Embedder
from bot.memory.errors import MemoryUnavailable
from bot.settings import Settings

BUSY_TIMEOUT_MS = 10_000

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
        self.path = Path(path or settings.data_dir / "memory.sqlite3")
        self.index = settings.memory_index
        self.name = f"local memory {self.path}"
        self._db: aiosqlite.Connection | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise MemoryUnavailable(f"{self.name} is not open")
        return self._db

    async def _open(self) -> None:
        if self._db is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except (OSError, sqlite3.Error) as exc:
            raise MemoryUnavailable(f"cannot open {self.name}: {exc}") from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            await db.close()
            raise MemoryUnavailable(f"cannot open {self.name}: {exc}") from exc
        self._db = db

    async def _close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def _wipe(self) -> None:
        await self.db.execute("DELETE FROM memories WHERE idx = ?", (self.index,))

    async def _put(self, scope: str, text: str, vector: np.ndarray) -> None:
        await self.db.execute(
            "INSERT INTO memories (idx, scope, dim, vector, text, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            (self.index, scope, int(vector.size), vector.astype("<f4").tobytes(), text, time.time()),
        )

    async def _query(self, scope: str, vector: np.ndarray, k: int) -> list[str]:
        rows = list(
            await self.db.execute_fetchall(
                # newest first, so among equally similar memories the newer one wins
                "SELECT vector, text FROM memories WHERE idx = ? AND scope = ? AND dim = ? ORDER BY id DESC",
                (self.index, scope, int(vector.size)),
            )
        )
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(row[0] for row in rows), dtype="<f4").reshape(len(rows), -1)
        return [str(rows[i][1]) for i in top_k(matrix, vector, k)]
