"""The three Redis set-ups of bot/store/redis_client.py, on real servers: one Redis (the rest of
the suite), a three-master Redis Cluster (REDIS_CLUSTER=true; the store's contract suite and a
kill -9 scenario run there too) and a master found through Sentinel (REDIS_SENTINEL). A wrong
set-up is refused at start with a message that says which setting to change."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from pydantic import ValidationError

from bot.memory import open_memory
from bot.models import Place, Session, SessionState
from bot.settings import Settings
from bot.store import RedisStore, StoreError, make_store
from bot.store.redis_client import make_redis
from tests.conftest import REDIS_URL, make_settings
from tests.fakes.llm_server import ScriptedLLM
from tests.redis_servers import redis_with_sentinel

MASTER = "mymaster"


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, int]]:
    """(master port, sentinel port) of a real Redis master watched by one Sentinel."""
    with redis_with_sentinel(tmp_path_factory.mktemp("sentinel"), MASTER) as ports:
        yield ports


def session(sid: str) -> Session:
    return Session(id=sid, owner="U1", place=Place(platform="test", channel="C1"), goals=["g"])


async def test_the_store_through_sentinel(
    tmp_path: Path, llm: ScriptedLLM, sentinel: tuple[int, int], redis_prefix: str
) -> None:
    master_port, sentinel_port = sentinel
    # REDIS_SENTINEL alone is enough: REDIS_URL would only add a password and a database
    settings = make_settings(tmp_path, llm, redis_sentinel=f"{MASTER}@127.0.0.1:{sentinel_port}")
    settings = settings.model_copy(update={"redis_prefix": redis_prefix})
    store = make_store(settings)
    assert (
        isinstance(store, RedisStore)
        and store.where == f"master {MASTER} of Sentinel 127.0.0.1:{sentinel_port}"
    )
    await store.open()
    try:
        await store.create(session("via-sentinel"))
        saved = await store.update("via-sentinel", lambda s: setattr(s, "state", SessionState.RUNNING))
        assert saved is not None and saved.version == 2
        assert await store.active_ids() == ["via-sentinel"]
        assert [s.id for s in await store.sessions_of("test:U1")] == ["via-sentinel"]
        assert await store.acquire_lease("via-sentinel", "me", 5)
        assert await store.add_spend("test:U1", "2025-01-01", 0.25) == pytest.approx(0.25)
        # the writes are on the master the Sentinel named
        with redis.Redis(port=master_port, decode_responses=True) as direct:
            assert direct.hget(store._session_key("via-sentinel"), "s") == "running"
        # what the other parts get; more commands at once than connections wait for one
        client = make_redis(settings.model_copy(update={"redis_max_connections": 2}), decode_responses=True)
        got = await asyncio.gather(*(client.get(store._lease_key("via-sentinel")) for _ in range(50)))
        assert got == ["me"] * 50
        await client.aclose()
    finally:
        await store.close()

    wrong = settings.model_copy(update={"redis_sentinel": f"nosuch@127.0.0.1:{sentinel_port}"})
    with pytest.raises(StoreError, match=r"master nosuch of Sentinel .* is not answering: No master found"):
        await make_store(wrong).open()


@pytest.mark.parametrize("store_kind", ["redis-cluster"])
async def test_memory_on_the_cluster(settings: Settings) -> None:
    """MEMORY_BACKEND=redis on the cluster: scopes spread over the nodes; a wipe finds them all."""
    assert settings.redis_cluster
    settings = settings.model_copy(update={"memory_backend": "redis"})
    memory = await open_memory(settings)
    try:
        owners = [Session(id=f"m{i}", owner=f"U{i}", place=Place(platform="test", channel="C"), goals=["g"])
                  for i in range(3)]  # fmt: skip
        for i, owner in enumerate(owners):
            await memory.add(owner, f"user {i} keeps the cat on the mat")
            await memory.add(owner, f"user {i} checks the stock prices")
        found, _ = await memory.search(owners[1], "the cat on the mat", k=1)
        assert found == ["user 1 keeps the cat on the mat"]
        await memory.wipe()
        assert (await memory.search(owners[1], "the cat", k=5))[0] == []
    finally:
        await memory.close()


async def test_a_wrong_redis_set_up_is_refused_clearly(redis_cluster_url: str) -> None:
    node = redis_cluster_url.rsplit("/", 1)[0]
    port = node.rsplit(":", 1)[1]
    with pytest.raises(
        StoreError, match=f"127.0.0.1:{port} is a node of a Redis Cluster: set REDIS_CLUSTER=true"
    ):
        await RedisStore(redis_cluster_url).open()
    plain = REDIS_URL.rsplit("/", 1)[0] + "/0"
    with pytest.raises(StoreError, match=r"is not a Redis Cluster .*: set REDIS_CLUSTER=false"):
        await RedisStore(plain, cluster=True).open()
    with pytest.raises(StoreError, match="database 0 only") as info:
        await RedisStore(f"redis://:s3cret@127.0.0.1:{port}/3", cluster=True).open()
    assert "s3cret" not in str(info.value)


def test_redis_settings_are_checked(tmp_path: Path) -> None:
    def settings(**values: object) -> Settings:
        return Settings(_env_file=None, data_dir=tmp_path, **values)  # type: ignore[call-arg]

    assert settings(redis_sentinel=" ").redis_sentinel is None
    assert not settings().redis_configured and settings(redis_sentinel="m@h").redis_configured
    for bad, says in [
        ("h1:26379", "give MASTER@host:port"),
        ("m@", "no Sentinel given"),
        ("m@h1:x", "'h1:x' is not a Sentinel's host:port"),
    ]:
        with pytest.raises(ValidationError, match=says):
            settings(redis_sentinel=bad)
    with pytest.raises(ValidationError, match="REDIS_CLUSTER and REDIS_SENTINEL are exclusive"):
        settings(redis_cluster=True, redis_sentinel="m@h1")
