"""Shared fixtures: the scripted LLM server, the real Redis, settings in a temporary folder, and
a started core with the test chat platform."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.core import Core
from bot.settings import Settings
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import ScriptedLLM
from tests.redis_servers import redis_cluster

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
# PostgreSQL for ARCHIVE_URL: each test gets a schema of its own there (`pg_url`); `.ci/run`
# starts a server when none answers
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def llm_server() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def llm(llm_server: ScriptedLLM) -> Iterator[ScriptedLLM]:
    llm_server.reset()
    yield llm_server
    llm_server.reset()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    prefix = f"test:{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def make_settings(tmp_path: Path, llm: ScriptedLLM, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "openai_api_key": "sk-test-secret",
        "openai_base_url": llm.base_url,
        "data_dir": tmp_path,
        "llm_max_retries": 1,
        "llm_timeout": 5.0,
        "smart_llm": "gpt-4o",
        "fast_llm": "gpt-4o-mini",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real three-master Redis Cluster on local ports (7100-7199), started once per test process
    when a test asks for it, stopped at the end; the URL of one of its nodes."""
    with redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as url:
        yield url


@pytest.fixture(params=["redis", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The session store of `settings`; a test may parametrize it with "redis-cluster" too."""
    return str(request.param)


@pytest.fixture
def settings(
    tmp_path: Path, llm: ScriptedLLM, store_kind: str, redis_prefix: str, request: pytest.FixtureRequest
) -> Settings:
    extra: dict[str, Any] = {}
    if store_kind == "redis":
        extra = {"redis_url": REDIS_URL, "redis_prefix": redis_prefix}
    elif store_kind == "redis-cluster":
        url = request.getfixturevalue("redis_cluster_url")
        extra = {"redis_url": url, "redis_cluster": True, "redis_prefix": redis_prefix}
    return make_settings(tmp_path, llm, **extra)


@contextlib.asynccontextmanager
async def started_core(settings: Settings, **updates: Any) -> AsyncIterator[tuple[Core, TestPlatform]]:
    """A started core (settings changed by `updates`) with the test chat platform; closed after."""
    c = await Core.start(settings.model_copy(update=updates) if updates else settings)
    platform = TestPlatform()
    c.add_platform(platform)
    try:
        yield c, platform
    finally:
        await c.close()


@pytest.fixture
async def core(settings: Settings) -> AsyncIterator[Core]:
    async with started_core(settings) as (c, _):
        yield c


@pytest.fixture
def chat(core: Core) -> TestPlatform:
    platform = core.platforms["test"]
    assert isinstance(platform, TestPlatform)
    return platform


async def _execute(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _postgres(sql: str) -> None:
    """`sql` on the test PostgreSQL, on a thread of its own (a fixture may be set up while an
    event loop runs)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _execute(sql)).result()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """ARCHIVE_URL of a fresh schema in the test PostgreSQL (TEST_POSTGRES_URL), dropped after.
    Without a PostgreSQL the test is skipped, except in CI (`CI` set), where that fails it."""
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        _postgres(f"CREATE SCHEMA {schema}")
    except (OSError, TimeoutError) as exc:
        reason = f"no PostgreSQL answers at {POSTGRES_URL} (TEST_POSTGRES_URL; .ci/run starts one): {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}search_path={schema}"
    finally:
        _postgres(f"DROP SCHEMA {schema} CASCADE")
