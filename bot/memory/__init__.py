"""Long-term memory seen by the agent each cycle.

Each command and its result are embedded and stored; before each cycle the memories most similar
to the current task are put in the prompt. MEMORY_BACKEND picks the store: `local` (SQLite under
DATA_DIR), `redis` (REDIS_URL), `milvus` (a server or Milvus Lite), `pinecone` (an index's host)
or `no_memory`. MEMORY_SCOPE
says who shares memories: a session, a user's sessions, or a channel.

    memory = await open_memory(settings)   # or make_memory(settings) and then `await memory.open()`
    ...
    await memory.close()
"""

from __future__ import annotations

from openai import AsyncOpenAI

from bot.memory.base import Memory, NoMemory, Spend, VectorMemory, scope_key
from bot.memory.embed import Embedder
from bot.memory.errors import MemoryUnavailable
from bot.settings import Settings

__all__ = [
    "Embedder",
    "Memory",
    "MemoryUnavailable",
    "NoMemory",
    "Spend",
    "VectorMemory",
    "make_memory",
    "open_memory",
    "scope_key",
]


def make_memory(settings: Settings, client: AsyncOpenAI | None = None) -> Memory:
    """The memory MEMORY_BACKEND names, not yet opened. `client`: an AsyncOpenAI to embed with
    (default: one made from the settings, closed with the memory). Raises MemoryUnavailable when
    the settings cannot work (redis without REDIS_URL, a bad MILVUS_ADDR)."""
    backend = settings.memory_backend
    if backend == "no_memory":
        return NoMemory()
    embedder = Embedder(settings, client)
    if backend == "redis":
        from bot.memory.redis_memory import RedisMemory

        return RedisMemory(settings, embedder)
    if backend == "milvus":
        from bot.memory.milvus import MilvusMemory

        return MilvusMemory(settings, embedder)
    if backend == "pinecone":
        from bot.memory.pinecone import PineconeMemory

        return PineconeMemory(settings, embedder)
    from bot.memory.local import LocalMemory

    return LocalMemory(settings, embedder)


async def open_memory(settings: Settings, client: AsyncOpenAI | None = None) -> Memory:
    """`make_memory`, opened (and wiped when WIPE_MEMORY_ON_START). Raises MemoryUnavailable
    (a StoreError) with a clear message when the backend cannot be reached."""
    memory = make_memory(settings, client)
    await memory.open()
    return memory
