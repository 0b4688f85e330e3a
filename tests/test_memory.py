"""Long-term memory: one contract suite run on every backend (local SQLite, Redis, Milvus Lite,
Pinecone through its real client against a fake index data plane), with embeddings from the
scripted LLM server (bag-of-words vectors: texts sharing words are similar). Then the Pinecone
specifics, the factory's errors and the memory_add / memory_search tools."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.memory import Memory, MemoryUnavailable, NoMemory, make_memory, open_memory, scope_key
from bot.models import Place, Session, Usage
from bot.settings import Settings
from bot.tools.base import ToolContext, ToolError, ToolRegistry
from bot.tools.memory_tools import register
from tests.conftest import make_settings
from tests.fakes.llm_server import ScriptedLLM
from tests.fakes.pinecone_api import FakePinecone

REDIS_URL = "redis://127.0.0.1:6379/13"
PINECONE_KEY = "pcsk-test-pinecone-key-5e1f"

CAT = "the cat sat on the mat in the kitchen"
DOG = "dogs bark loudly at the mailman every night"
STOCKS = "stock market prices fell sharply on monday"
RAIN = "heavy rain flooded the city streets"
CODE = "python code raised a KeyError in the parser"


def sess(
    session_id: str, owner: str, channel: str = "c1", team: str | None = "t1", platform: str = "test"
) -> Session:
    return Session(
        id=session_id,
        owner=owner,
        place=Place(platform=platform, channel=channel, team=team),
        goals=["remember things"],
    )


MakeSettings = Callable[..., Settings]


@pytest.fixture(params=["local", "redis", "milvus", "pinecone"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def memory_prefix() -> Iterator[str]:
    prefix = f"test:mem:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def pinecone_server() -> Iterator[FakePinecone]:
    with FakePinecone(api_key=PINECONE_KEY, dimension=64) as server:  # the scripted LLM's dimension
        yield server


@pytest.fixture
def pinecone_index(pinecone_server: FakePinecone) -> Iterator[FakePinecone]:
    """The fake Pinecone index, empty for each test."""
    pinecone_server.reset(dimension=64)
    yield pinecone_server
    pinecone_server.reset(dimension=64)


@pytest.fixture
def settings_of(
    tmp_path: Path, llm: ScriptedLLM, backend: str, memory_prefix: str, request: pytest.FixtureRequest
) -> MakeSettings:
    """Settings for `backend`; every call with the same overrides points at the same storage."""
    collection = f"t_{uuid.uuid4().hex[:12]}"
    pinecone: dict[str, Any] = {}
    if backend == "pinecone":
        index: FakePinecone = request.getfixturevalue("pinecone_index")
        pinecone = {"pinecone_api_key": PINECONE_KEY, "pinecone_index_host": index.base_url}

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "memory_backend": backend,
            "redis_url": REDIS_URL,
            "redis_prefix": memory_prefix,
            "milvus_addr": str(tmp_path / "milvus.db"),
            "milvus_collection": collection,
            **pinecone,
        }
        values.update(overrides)
        return make_settings(tmp_path, llm, **values)

    return build


@pytest.fixture
async def opened() -> AsyncIterator[list[Memory]]:
    """Memories a test opened; closed at the end whatever happens."""
    memories: list[Memory] = []
    yield memories
    for memory in memories:
        await memory.close()


async def open_one(opened: list[Memory], settings: Settings) -> Memory:
    memory = await open_memory(settings)
    opened.append(memory)
    return memory


# ---------------------------------------------------------------------------- contract


async def test_add_then_search_most_similar_first(settings_of: MakeSettings, opened: list[Memory]) -> None:
    memory = await open_one(opened, settings_of())
    s = sess("s1", "u1")
    for text in (CAT, DOG, STOCKS, RAIN, CODE):
        usage = await memory.add(s, text)
        assert usage.calls == 1 and usage.prompt_tokens > 0 and usage.cost_usd > 0

    found, usage = await memory.search(s, "where did the cat sit? on the mat", k=3)
    assert found[0] == CAT
    assert len(found) == 3
    assert usage.calls == 1

    found, _ = await memory.search(s, "why did the dogs bark at night", k=1)
    assert found == [DOG]
    found, _ = await memory.search(s, "stock prices", k=10)  # k larger than what is stored
    assert found[0] == STOCKS and sorted(found) == sorted([CAT, DOG, STOCKS, RAIN, CODE])
    assert (await memory.search(s, "anything", k=0))[0] == []


async def test_the_same_memory_twice_is_returned_once(
    settings_of: MakeSettings, opened: list[Memory]
) -> None:
    memory = await open_one(opened, settings_of())
    s = sess("s1", "u1")
    for text in (CAT, CAT, CAT, DOG):
        await memory.add(s, text)
    found, _ = await memory.search(s, "the cat", k=2)
    assert found == [CAT, DOG]


async def test_relevant_and_remember_charge_through_spend(
    settings_of: MakeSettings, opened: list[Memory], llm: ScriptedLLM
) -> None:
    memory = await open_one(opened, settings_of())
    s = sess("s1", "u1")
    spent: list[Usage] = []
    await memory.remember(s, f"Command read_file returned: {CAT}", spend=spent.append)
    await memory.remember(s, "   ", spend=spent.append)  # nothing to remember: no call
    assert await memory.relevant(s, "cat on the mat", spend=spent.append) == [
        f"Command read_file returned: {CAT}"
    ]
    assert [u.calls for u in spent] == [1, 1]
    assert len(llm.requests_of("embeddings")) == 2
    assert llm.last("embeddings")["model"] == "text-embedding-3-small"
    # the engine's calls, unchanged: no spend callback
    await memory.remember(s, DOG)
    assert (await memory.relevant(s, "dogs bark", k=1)) == [DOG]


@pytest.mark.parametrize("scope", ["session", "user", "channel"])
async def test_scopes_are_isolated(settings_of: MakeSettings, opened: list[Memory], scope: str) -> None:
    memory = await open_one(opened, settings_of(memory_scope=scope))
    alice_1 = sess("a1", "alice", channel="c1")
    alice_2 = sess("a2", "alice", channel="c2")  # alice's other session, another channel
    bob_same_channel = sess("b1", "bob", channel="c1")
    bob_elsewhere = sess("b2", "bob", channel="c9")
    await memory.add(alice_1, CAT)
    await memory.add(bob_elsewhere, DOG)

    async def sees(session: Session) -> list[str]:
        return (await memory.search(session, "the cat sat on the mat; dogs bark", k=5))[0]

    assert await sees(alice_1) == [CAT]
    assert await sees(bob_elsewhere) == [DOG]
    if scope == "session":
        assert await sees(alice_2) == []
        assert await sees(bob_same_channel) == []
    elif scope == "user":  # alice's later sessions remember; bob never sees hers
        assert await sees(alice_2) == [CAT]
        assert await sees(bob_same_channel) == [DOG]  # his own, from his other session
    else:  # channel: shared by whoever is in c1, nobody else
        assert await sees(alice_2) == []
        assert await sees(bob_same_channel) == [CAT]
        assert await sees(sess("x", "alice", channel="c1", team="t2")) == []  # another team
        assert await sees(sess("y", "alice", channel="c1", platform="other")) == []  # another platform


async def test_memories_survive_a_restart(settings_of: MakeSettings, opened: list[Memory]) -> None:
    settings = settings_of(memory_scope="user")
    first = await open_memory(settings)
    await first.add(sess("s1", "u1"), CAT)
    await first.add(sess("s1", "u1"), RAIN)
    await first.close()

    again = await open_one(opened, settings)  # a new process would do just this
    found, _ = await again.search(sess("s2", "u1"), "a cat on a mat", k=1)
    assert found == [CAT]


async def test_wipe_on_start_clears_this_index_only(settings_of: MakeSettings, opened: list[Memory]) -> None:
    other = {"memory_index": "other", "milvus_collection": f"o_{uuid.uuid4().hex[:12]}"}
    s = sess("s1", "u1")
    for overrides in ({}, other):
        m = await open_memory(settings_of(**overrides))
        await m.add(s, CAT)
        await m.close()

    kept = await open_one(opened, settings_of())  # no wipe by default
    assert (await kept.search(s, "cat", k=5))[0] == [CAT]
    await kept.close()
    opened.clear()

    wiped = await open_one(opened, settings_of(wipe_memory_on_start=True))
    assert (await wiped.search(s, "cat", k=5))[0] == []
    await wiped.add(s, DOG)  # and it still works after the wipe
    assert (await wiped.search(s, "dogs", k=5))[0] == [DOG]

    untouched = await open_one(opened, settings_of(**other))
    assert (await untouched.search(s, "cat", k=5))[0] == [CAT]


async def test_concurrent_adds_on_a_fresh_store(settings_of: MakeSettings, opened: list[Memory]) -> None:
    memory = await open_one(opened, settings_of())
    s = sess("s1", "u1")
    texts = [CAT, DOG, STOCKS, RAIN, CODE]
    await asyncio.gather(*(memory.add(s, t) for t in texts))
    assert sorted((await memory.search(s, "anything at all", k=10))[0]) == sorted(texts)


async def test_embedding_failure_never_breaks_a_cycle(
    settings_of: MakeSettings, opened: list[Memory], failing_api: str, refused_url: str
) -> None:
    s = sess("s1", "u1")
    good = await open_one(opened, settings_of())
    await good.add(s, CAT)

    for base_url, expected in ((failing_api, "(500)"), (refused_url, "cannot reach")):
        broken = await open_one(opened, settings_of(openai_base_url=base_url, llm_max_retries=0))
        spent: list[Usage] = []
        assert await broken.relevant(s, "cat", spend=spent.append) == []
        await broken.remember(s, DOG, spend=spent.append)  # logged and skipped
        assert spent == []  # a failed call costs nothing
        with pytest.raises(MemoryUnavailable, match=expected) as err:
            await broken.add(s, RAIN)
        assert "embedding service" in err.value.message
        with pytest.raises(MemoryUnavailable, match=expected):
            await broken.search(s, "cat")

    assert (await good.search(s, "dogs bark rain cat", k=5))[0] == [CAT]  # nothing half-stored


async def test_memory_tools(settings_of: MakeSettings, opened: list[Memory], tmp_path: Path) -> None:
    settings = settings_of()
    memory = await open_one(opened, settings)
    registry = ToolRegistry()
    register(registry)
    assert [t.name for t in registry.available(settings)] == ["memory_add", "memory_search"]
    add, search = registry.get("memory_add", settings), registry.get("memory_search", settings)
    assert add is not None and search is not None
    assert add.prompt_line() == 'memory_add: Add to long-term memory, args: "text": "<text>"'

    ctx = ToolContext(session=sess("s1", "u1"), settings=settings, workspace=tmp_path, memory=memory)
    assert await add.run(ctx, add.validate({"text": CAT})) == f'Committed to memory: "{CAT}"'
    await add.run(ctx, add.validate({"string": DOG}))  # AutoGPT's argument name
    out = await search.run(ctx, search.validate({"query": "where is the cat"}))
    assert out.splitlines() == ['Memories most relevant to "where is the cat":', f"1. {CAT}", f"2. {DOG}"]
    assert ctx.usage.calls == 3 and ctx.usage.cost_usd > 0  # every embedding charged

    other = ToolContext(session=sess("s2", "u2"), settings=settings, workspace=tmp_path, memory=memory)
    assert await search.run(other, search.validate({"query": "cat"})) == 'No memories found for "cat".'
    with pytest.raises(ToolError, match="text"):
        add.validate({"text": ""})


async def test_memory_tools_report_failures(
    settings_of: MakeSettings, opened: list[Memory], tmp_path: Path, refused_url: str
) -> None:
    settings = settings_of(openai_base_url=refused_url, llm_max_retries=0)
    memory = await open_one(opened, settings)
    registry = ToolRegistry()
    register(registry)
    ctx = ToolContext(session=sess("s1", "u1"), settings=settings, workspace=tmp_path, memory=memory)
    tool = registry.get("memory_add", settings)
    assert tool is not None
    with pytest.raises(ToolError, match="could not add to memory: cannot reach the embedding service"):
        await tool.run(ctx, tool.validate({"text": CAT}))
    tool = registry.get("memory_search", settings)
    assert tool is not None
    with pytest.raises(ToolError, match="could not search memory: cannot reach the embedding service"):
        await tool.run(ctx, tool.validate({"query": "cat"}))
    assert ctx.usage.calls == 0


# ---------------------------------------------------------------------------- not parametrised


async def test_no_memory(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(tmp_path, llm, memory_backend="no_memory")
    memory = await open_memory(settings)
    assert isinstance(memory, NoMemory)
    s = sess("s1", "u1")
    await memory.remember(s, CAT)
    assert await memory.relevant(s, "cat") == []
    assert await memory.search(s, "cat") == ([], Usage())
    with pytest.raises(MemoryUnavailable, match="MEMORY_BACKEND=no_memory"):
        await memory.add(s, CAT)
    await memory.close()
    assert llm.requests_of("embeddings") == []
    registry = ToolRegistry()
    register(registry)
    assert registry.available(settings) == []
    assert registry.get("memory_add", settings) is None


async def test_two_opens_of_one_new_memory_file_wait_out_a_held_write_lock(
    tmp_path: Path, llm: ScriptedLLM
) -> None:
    """Two processes on one DATA_DIR start together. While another connection holds the new
    file's write lock, SQLite refuses the switch to WAL at once with "database is locked" instead
    of waiting (this is what made one of two processes die at start). Each open retries, as the
    SQLite store's does: both succeed once the lock is let go, and share the memories."""
    from bot.memory.local import LocalMemory

    settings = make_settings(tmp_path, llm)
    path = tmp_path / "memory.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE held (x)")
    asyncio.get_running_loop().call_later(0.5, holder.execute, "COMMIT")
    first, second = LocalMemory(settings, path=path), LocalMemory(settings, path=path)
    try:
        started = time.monotonic()
        results = await asyncio.gather(first.open(), second.open(), return_exceptions=True)
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert time.monotonic() - started >= 0.4  # they waited for the lock
        s = sess("s1", "u1")
        await first.add(s, CAT)
        found, _ = await second.search(s, "a cat on a mat")
        assert found == [CAT]
    finally:
        holder.close()
        await first.close()
        await second.close()


def test_redis_backend_needs_redis_url(tmp_path: Path, llm: ScriptedLLM) -> None:
    with pytest.raises(MemoryUnavailable, match="MEMORY_BACKEND=redis needs REDIS_URL"):
        make_memory(make_settings(tmp_path, llm, memory_backend="redis"))


async def test_unreachable_redis_is_a_clear_error(tmp_path: Path, llm: ScriptedLLM, refused_url: str) -> None:
    port = refused_url.rsplit(":", 1)[1].split("/")[0]
    settings = make_settings(
        tmp_path, llm, memory_backend="redis", redis_url=f"redis://:secretpw@127.0.0.1:{port}/0"
    )
    with pytest.raises(MemoryUnavailable, match=f"Redis memory at 127.0.0.1:{port} is not answering") as err:
        await open_memory(settings)
    assert "secretpw" not in str(err.value)


def test_bad_milvus_addr_is_a_clear_error(tmp_path: Path, llm: ScriptedLLM) -> None:
    with pytest.raises(MemoryUnavailable, match="MILVUS_ADDR must be"):
        make_memory(make_settings(tmp_path, llm, memory_backend="milvus", milvus_addr="localhost:19530"))
    with pytest.raises(MemoryUnavailable, match="MILVUS_COLLECTION must be"):
        make_memory(make_settings(tmp_path, llm, memory_backend="milvus", milvus_collection="my-memories"))


async def test_milvus_defaults_to_a_lite_file_under_data_dir(tmp_path: Path, llm: ScriptedLLM) -> None:
    memory = await open_memory(make_settings(tmp_path, llm, memory_backend="milvus"))
    try:
        await memory.add(sess("s1", "u1"), CAT)
        assert (tmp_path / "milvus.db").exists()
    finally:
        await memory.close()


async def test_milvus_server_url(tmp_path: Path, llm: ScriptedLLM, refused_url: str) -> None:
    """MILVUS_ADDR as a server URL: a Milvus Lite server started apart stands in for a real one."""
    from milvus_lite.server_manager import server_manager_instance

    path = str(tmp_path / "server.db")
    url = server_manager_instance.start_and_get_uri(path)
    assert url is not None and url.startswith("http://127.0.0.1:")
    try:
        settings = make_settings(
            tmp_path, llm, memory_backend="milvus", milvus_addr=url, milvus_token="root:Milvus"
        )
        for _ in range(2):  # the second time, what the first stored is still there
            memory = await open_memory(settings)
            try:
                await memory.add(sess("s1", "u1"), CAT if _ == 0 else DOG)
                assert (await memory.search(sess("s1", "u1"), "cat on the mat", k=5))[0][0] == CAT
            finally:
                await memory.close()
    finally:
        server_manager_instance.release_server(path)

    port = refused_url.rsplit(":", 1)[1].split("/")[0]
    down = make_settings(tmp_path, llm, memory_backend="milvus", milvus_addr=f"http://127.0.0.1:{port}")
    with pytest.raises(MemoryUnavailable, match=f"cannot open Milvus at 127.0.0.1:{port}"):
        await open_memory(down)


# ---------------------------------------------------------------------------- pinecone


def pinecone_settings(tmp_path: Path, llm: ScriptedLLM, index: FakePinecone, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "memory_backend": "pinecone",
        "pinecone_api_key": PINECONE_KEY,
        "pinecone_index_host": index.base_url,
    }
    values.update(overrides)
    return make_settings(tmp_path, llm, **values)


def test_pinecone_needs_its_key_and_host(tmp_path: Path, llm: ScriptedLLM) -> None:
    with pytest.raises(
        MemoryUnavailable, match="MEMORY_BACKEND=pinecone needs PINECONE_API_KEY and PINECONE_INDEX_HOST"
    ):
        make_memory(make_settings(tmp_path, llm, memory_backend="pinecone"))
    with pytest.raises(MemoryUnavailable, match="needs PINECONE_INDEX_HOST"):
        make_memory(make_settings(tmp_path, llm, memory_backend="pinecone", pinecone_api_key="k"))


async def test_pinecone_namespaces_and_ids(
    tmp_path: Path, llm: ScriptedLLM, pinecone_index: FakePinecone, opened: list[Memory]
) -> None:
    """One namespace per scope, MEMORY_INDEX:sha256(scope key); the same memory twice is one vector;
    the Api-Key header is sent on every call."""
    memory = await open_one(opened, pinecone_settings(tmp_path, llm, pinecone_index, memory_scope="channel"))
    s = sess("s1", "u1", channel="C9", team="T1")
    for text in (CAT, CAT, DOG):
        await memory.add(s, text)
    namespace = "autogpt:" + hashlib.sha256(scope_key(s, "channel").encode()).hexdigest()
    assert pinecone_index.namespaces() == {namespace: 2}
    assert sorted(pinecone_index.texts(namespace)) == sorted([CAT, DOG])
    assert "C9" not in json.dumps(pinecone_index.namespaces())  # only the scope's hash reaches Pinecone
    assert {c.api_key for c in pinecone_index.calls} == {PINECONE_KEY}
    assert [c.route for c in pinecone_index.calls][:1] == ["describe_index_stats"]  # open checks it answers


async def test_pinecone_long_text_fits_the_metadata_limit(
    tmp_path: Path, llm: ScriptedLLM, pinecone_index: FakePinecone, opened: list[Memory]
) -> None:
    memory = await open_one(opened, pinecone_settings(tmp_path, llm, pinecone_index))
    s = sess("s1", "u1")
    long = "naïve “quoted” café\n" * 2000  # 40,000 characters, about 54 KB of UTF-8 and more as JSON
    await memory.add(s, long)
    [stored] = pinecone_index.texts(next(iter(pinecone_index.namespaces())))
    assert len(json.dumps({"text": stored}, ensure_ascii=False).encode()) <= 40_960
    assert long.startswith(stored) and len(stored) > 10_000
    found, _ = await memory.search(s, "naïve café", k=1)
    assert found == [stored]


async def test_pinecone_bad_key_is_a_clear_error_at_open(
    tmp_path: Path, llm: ScriptedLLM, pinecone_index: FakePinecone
) -> None:
    settings = pinecone_settings(tmp_path, llm, pinecone_index, pinecone_api_key="pcsk-wrong-key-0000")
    with pytest.raises(MemoryUnavailable) as err:
        await open_memory(settings)
    message = err.value.message
    assert message.startswith(
        f"cannot open Pinecone index at 127.0.0.1:{pinecone_index.port} (MEMORY_INDEX autogpt)"
    )
    assert "PINECONE_API_KEY was rejected (HTTP 401)" in message
    assert "pcsk-wrong-key-0000" not in message and PINECONE_KEY not in message


async def test_pinecone_unreachable_is_a_clear_error_at_open(
    tmp_path: Path, llm: ScriptedLLM, refused_url: str
) -> None:
    host = refused_url.removesuffix("/v1")
    settings = make_settings(
        tmp_path, llm, memory_backend="pinecone", pinecone_api_key=PINECONE_KEY, pinecone_index_host=host
    )
    with pytest.raises(MemoryUnavailable) as err:
        await open_memory(settings)
    assert "cannot reach it (connection refused); check PINECONE_INDEX_HOST" in err.value.message
    assert PINECONE_KEY not in err.value.message


async def test_pinecone_server_errors_are_clear_and_never_break_a_cycle(
    tmp_path: Path, llm: ScriptedLLM, pinecone_index: FakePinecone, opened: list[Memory]
) -> None:
    memory = await open_one(opened, pinecone_settings(tmp_path, llm, pinecone_index))
    s = sess("s1", "u1")
    pinecone_index.fail_next("upsert", 503, "Service Unavailable", times=4)  # the client retries 3 times
    with pytest.raises(MemoryUnavailable) as err:
        await memory.add(s, CAT)
    assert "could not store the memory: Pinecone had a server error (HTTP 503): Service Unavailable" in (
        err.value.message
    )
    assert err.value.usage.calls == 1  # the embedding was paid for anyway
    pinecone_index.fail_next("query", 500, times=4)
    assert await memory.relevant(s, "cat") == []  # logged, the cycle goes on
    await memory.add(s, CAT)  # and it works again
    assert (await memory.search(s, "cat", k=1))[0] == [CAT]


async def test_pinecone_dimension_mismatch_is_a_clear_error(
    tmp_path: Path, llm: ScriptedLLM, pinecone_index: FakePinecone, opened: list[Memory]
) -> None:
    pinecone_index.reset(dimension=1536)
    memory = await open_one(opened, pinecone_settings(tmp_path, llm, pinecone_index))
    s = sess("s1", "u1")
    expected = (
        f"Pinecone index at 127.0.0.1:{pinecone_index.port} (MEMORY_INDEX autogpt) has dimension 1536 but "
        "EMBEDDING_MODEL text-embedding-3-small gives 64-dimension vectors"
    )
    with pytest.raises(MemoryUnavailable, match=re.escape(expected)):
        await memory.add(s, CAT)
    with pytest.raises(MemoryUnavailable, match=re.escape(expected)):
        await memory.search(s, "cat")
    assert await memory.relevant(s, "cat") == []
    assert pinecone_index.namespaces() == {}
    assert [c.route for c in pinecone_index.calls] == ["describe_index_stats"]  # nothing sent that would fail


async def test_pinecone_wipe_on_start_clears_only_this_index_namespaces(
    tmp_path: Path, llm: ScriptedLLM, pinecone_index: FakePinecone, opened: list[Memory]
) -> None:
    """Namespaces of another MEMORY_INDEX (even one whose name starts like this one) and of other
    users of the Pinecone index are left alone."""
    s1, s2 = sess("s1", "u1"), sess("s2", "u2")
    for index_name in ("autogpt", "autogpt-staging", "other"):
        m = await open_memory(pinecone_settings(tmp_path, llm, pinecone_index, memory_index=index_name))
        await m.add(s1, CAT)
        await m.add(s2, DOG)
        await m.close()
    foreign = pinecone_index.data.setdefault("autogpt:not-ours", {})  # someone else's namespace
    foreign.update(pinecone_index.data[next(iter(pinecone_index.namespaces()))])
    before = pinecone_index.namespaces()
    assert len(before) == 7

    wiped = await open_one(
        opened, pinecone_settings(tmp_path, llm, pinecone_index, wipe_memory_on_start=True)
    )
    after = pinecone_index.namespaces()
    assert sorted(after) == sorted(ns for ns in before if not re.fullmatch("autogpt:[0-9a-f]{64}", ns))
    assert len(after) == 5
    assert (await wiped.search(s1, "cat", k=5))[0] == []
    for index_name in ("autogpt-staging", "other"):
        kept = await open_one(
            opened, pinecone_settings(tmp_path, llm, pinecone_index, memory_index=index_name)
        )
        assert (await kept.search(s1, "cat", k=5))[0] == [CAT]


def test_scope_keys() -> None:
    s = sess("s1", "U1", channel="C1", team="T1", platform="slack")
    assert scope_key(s, "session") == "session:s1"
    assert scope_key(s, "user") == "user:slack:U1"
    assert scope_key(s, "channel") == 'channel:["slack", "T1", "C1"]'
    assert scope_key(sess("s1", "U1", channel="a:b", team=None), "channel") != scope_key(
        sess("s1", "U1", channel="b", team="a"), "channel"
    )


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def failing_api() -> Iterator[str]:
    """An OpenAI-compatible base URL whose every request answers HTTP 500."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = json.dumps({"error": {"message": "embedding backend down", "type": "server_error"}})
            data = body.encode()
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


@pytest.fixture
def refused_url() -> str:
    """A base URL on a port nobody listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_a_search_decodes_only_what_is_new_and_follows_another_process(
    settings_of: MakeSettings, opened: list[Memory], backend: str
) -> None:
    """local and redis keep a scope's decoded memories and fetch only what was added since; what
    another process adds is found, and what it wiped is not returned."""
    if backend not in ("local", "redis"):
        pytest.skip("a backend without a process-side cache")
    settings = settings_of()
    one = await open_one(opened, settings)
    two = await open_one(opened, settings)
    s = sess("s1", "U1")
    await one.add(s, "the launch code is 1234")
    assert (await two.search(s, "launch code", 1))[0] == ["the launch code is 1234"]
    await one.add(s, "the café opens at nine")
    found, _ = await two.search(s, "when does the café open", 2)
    assert "the café opens at nine" in found
    await one.wipe()
    await one.add(s, "only this one is left")
    found, _ = await two.search(s, "launch code", 5)
    assert found == ["only this one is left"]


# ---------------------------------------------------------------------------- the embedding call


@pytest.fixture
def embedding_api() -> Iterator[tuple[str, list[Any], list[dict[str, Any]]]]:
    """An embeddings endpoint answering with `replies[0]` (a JSON value), recording each request."""
    replies: list[Any] = []
    seen: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append({"path": self.path, **json.loads(self.rfile.read(length))})
            data = json.dumps(replies[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", replies, seen
    server.shutdown()
    server.server_close()


async def test_an_embedding_is_read_as_base64_or_as_numbers(
    embedding_api: tuple[str, list[Any], list[dict[str, Any]]],
) -> None:
    """The request asks for base64 (as the openai client does); a server that ignores that and
    sends numbers is read as well, and the two give the same unit vector. Usage is charged."""
    import base64
    import struct

    from bot.memory.embed import Embedder

    url, replies, seen = embedding_api
    settings = Settings(_env_file=None, openai_api_key="sk-x", openai_base_url=url)  # type: ignore[call-arg]
    embedder = Embedder(settings)
    try:
        numbers = [3.0, 4.0, 0.0]
        usage = {"prompt_tokens": 7, "total_tokens": 7}
        replies[:] = [{"data": [{"embedding": numbers}], "usage": usage}]
        as_numbers, spent = await embedder.embed("one")
        assert seen[-1]["encoding_format"] == "base64" and seen[-1]["input"] == ["one"]
        assert seen[-1]["path"] == "/v1/embeddings"
        assert spent.calls == 1 and spent.prompt_tokens == 7
        packed = base64.b64encode(struct.pack("<3f", *numbers)).decode()
        replies[:] = [{"data": [{"embedding": packed}], "usage": usage}]
        as_base64, _ = await embedder.embed("two")
        assert as_numbers.tolist() == as_base64.tolist() == pytest.approx([0.6, 0.8, 0.0])
        for broken in ({"data": []}, {"data": [{"embedding": "%%%"}]}, {"data": [{"embedding": ["x"]}]}, [1]):
            replies[:] = [broken]
            with pytest.raises(MemoryUnavailable, match="no vector"):
                await embedder.embed(f"broken {broken}")
    finally:
        await embedder.close()
