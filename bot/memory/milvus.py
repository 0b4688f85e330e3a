"""MEMORY_BACKEND=milvus: pymilvus' `MilvusClient`, against a Milvus server (MILVUS_ADDR an
http(s)/tcp URL, MILVUS_TOKEN for credentials) or Milvus Lite (MILVUS_ADDR a local path ending in
`.db`; unset: DATA_DIR/milvus.db), which runs inside this process.

One collection (MILVUS_COLLECTION) is the index: id, vector (COSINE), scope, text. The scope is
stored as its SHA-256, so a filter expression never has to quote user-controlled text. The
collection is created on the first memory, when the embedding's dimension is known. pymilvus is
synchronous: every call runs in a thread, one at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bot.memory.base import VectorMemory
from bot.memory.embed import Embedder
from bot.memory.errors import MemoryUnavailable
from bot.settings import Settings

T = TypeVar("T")

TEXT_MAX_BYTES = 65_535  # Milvus' largest VARCHAR
TIMEOUT_S = 10.0
_COLLECTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")

# Milvus Lite servers this process started, by path, and how many open memories use each: the
# last one to close stops the server (which writes its data out).
_lite_users: dict[str, int] = {}


def _import_pymilvus() -> Any:
    """Import pymilvus without its import-time `load_dotenv()`, which would copy a `.env` found
    above the virtualenv into os.environ (the bot reads `.env` itself, through its settings)."""
    import dotenv

    original = dotenv.load_dotenv
    dotenv.load_dotenv = lambda *args, **kwargs: False  # type: ignore[assignment]
    try:
        import pymilvus
    finally:
        dotenv.load_dotenv = original
    return pymilvus


def is_lite(addr: str) -> bool:
    return addr.endswith(".db") and "://" not in addr


def _cut_utf8(text: str, max_bytes: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


def scope_hash(scope: str) -> str:
    return hashlib.sha256(scope.encode("utf-8")).hexdigest()


class MilvusMemory(VectorMemory):
    def __init__(self, settings: Settings, embedder: Embedder | None = None) -> None:
        super().__init__(settings, embedder)
        addr = (settings.milvus_addr or "").strip() or str(settings.data_dir / "milvus.db")
        self.lite = is_lite(addr)
        self.addr = str(Path(addr).resolve()) if self.lite else addr
        if not self.lite and "://" not in addr:
            raise MemoryUnavailable(
                f"MILVUS_ADDR must be a Milvus server URL (http://host:19530) or a Milvus Lite file "
                f"ending in .db, got {addr!r}"
            )
        self.collection = settings.milvus_collection
        if not _COLLECTION_NAME.fullmatch(self.collection):
            raise MemoryUnavailable(
                f"MILVUS_COLLECTION must be letters, digits and underscores, not starting with a digit "
                f"(got {self.collection!r})"
            )
        where = f"Milvus Lite {self.addr}" if self.lite else f"Milvus at {_host(addr)}"
        self.name = f"{where}, collection {self.collection}"
        self._dim: int | None = None
        self._pymilvus: Any = None
        self._lock = asyncio.Lock()  # one pymilvus call at a time
        self._schema_lock = asyncio.Lock()  # one collection creation at a time

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        async with self._lock:
            return await asyncio.to_thread(fn, *args, **kwargs)

    # ------------------------------------------------------------------ lifecycle
    async def _open(self) -> None:
        try:
            self._pymilvus = pymilvus = await asyncio.to_thread(_import_pymilvus)
        except ImportError as exc:
            raise MemoryUnavailable(f"MEMORY_BACKEND=milvus needs pymilvus: {exc}") from exc
        if self.lite:
            try:
                Path(self.addr).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MemoryUnavailable(f"cannot create the folder of {self.addr}: {exc}") from exc
        token = self.settings.milvus_token.get_secret_value() if self.settings.milvus_token else ""
        try:
            client = await self._call(pymilvus.MilvusClient, uri=self.addr, token=token, timeout=TIMEOUT_S)
        except Exception as exc:
            raise MemoryUnavailable(f"cannot open {self.name}: {_short(exc)}") from exc
        if self.lite:
            _lite_users[self.addr] = _lite_users.get(self.addr, 0) + 1
        self._client = client
        try:
            await self._load_existing()
        except Exception as exc:
            await self._close()
            raise MemoryUnavailable(f"cannot open {self.name}: {_short(exc)}") from exc

    async def _load_existing(self) -> None:
        """Learn the dimension of an existing collection and load it for search."""
        self._dim = None
        if not await self._call(self.client.has_collection, self.collection):
            return
        described = await self._call(self.client.describe_collection, self.collection)
        for field in described.get("fields", []):
            if field.get("name") == "vector":
                self._dim = int((field.get("params") or {}).get("dim", 0)) or None
        await self._call(self.client.load_collection, self.collection)

    async def _close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await self._call(client.close)
        finally:
            if self.lite:
                _lite_users[self.addr] = _lite_users.get(self.addr, 1) - 1
                if _lite_users[self.addr] <= 0:
                    del _lite_users[self.addr]
                    await asyncio.to_thread(_release_lite, self.addr)

    async def _wipe(self) -> None:
        if await self._call(self.client.has_collection, self.collection):
            await self._call(self.client.drop_collection, self.collection)
        self._dim = None

    # ------------------------------------------------------------------ data
    async def _create(self, dim: int) -> None:
        pymilvus = self._pymilvus
        schema = pymilvus.MilvusClient.create_schema(auto_id=True, enable_dynamic_field=False)
        schema.add_field("id", pymilvus.DataType.INT64, is_primary=True)
        schema.add_field("vector", pymilvus.DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("scope", pymilvus.DataType.VARCHAR, max_length=64)
        schema.add_field("text", pymilvus.DataType.VARCHAR, max_length=TEXT_MAX_BYTES)
        index = self.client.prepare_index_params()
        index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
        await self._call(
            self.client.create_collection,
            self.collection,
            schema=schema,
            index_params=index,
            consistency_level="Strong",  # a memory is found by the very next search
        )
        await self._call(self.client.load_collection, self.collection)
        self._dim = dim

    async def _put(self, scope: str, text: str, vector: np.ndarray) -> None:
        dim = int(vector.size)
        if self._dim is None:
            async with self._schema_lock:
                if self._dim is None:
                    await self._load_existing()  # another process may have created it meanwhile
                if self._dim is None:
                    await self._create(dim)
        if self._dim != dim:
            raise MemoryUnavailable(
                f"{self.name} holds {self._dim}-dimension vectors but EMBEDDING_MODEL "
                f"{self.settings.embedding_model} gives {dim}: use another MILVUS_COLLECTION, "
                "or WIPE_MEMORY_ON_START=true once"
            )
        row = {"vector": vector.tolist(), "scope": scope_hash(scope), "text": _cut_utf8(text, TEXT_MAX_BYTES)}
        await self._call(self.client.insert, self.collection, [row])

    async def _query(self, scope: str, vector: np.ndarray, k: int) -> list[str]:
        if self._dim is None:
            await self._load_existing()
            if self._dim is None:  # nothing stored yet
                return []
        if self._dim != int(vector.size):  # memories of another embedding model
            return []
        found = await self._call(
            self.client.search,
            self.collection,
            data=[vector.tolist()],
            filter=f'scope == "{scope_hash(scope)}"',
            limit=k,
            output_fields=["text"],
            search_params={"metric_type": "COSINE"},
        )
        hits = found[0] if found else []
        return [str(hit["entity"]["text"]) for hit in hits]


def _release_lite(path: str) -> None:
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return
    server_manager_instance.release_server(path)


def _host(url: str) -> str:
    """The server of a Milvus URL without credentials."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 19530}"
    except ValueError:
        return "the configured address"


def _short(exc: Exception) -> str:
    return (getattr(exc, "message", None) or str(exc) or type(exc).__name__)[:300]
