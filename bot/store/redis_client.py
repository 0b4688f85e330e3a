"""The one place that makes Redis clients: the session store, MEMORY_BACKEND=redis and any other
part that talks to Redis get theirs from `make_redis` (or `open_redis`: connected and checked), so
each works on the three set-ups:

- one Redis server: `REDIS_URL` (redis://[:password@]host:port/db, rediss:// for TLS);
- a Redis Cluster: `REDIS_CLUSTER=true`, `REDIS_URL` one of its nodes (redis-py's `RedisCluster`
  finds the others and follows MOVED/ASK); database 0 only;
- Sentinel: `REDIS_SENTINEL=MASTER@host:port,host:port`; the master is asked of the Sentinels
  (redis-py's `Sentinel(...).master_for(...)`) and found again after a failover; `REDIS_URL`
  gives only the password, user and database.

The cluster is a setting, not detected: making a client does no I/O (the work queue makes its
client where no await is possible), and a deployment says what it runs on. `open_redis` checks the
server agrees: a cluster node reached without REDIS_CLUSTER=true (whose multi-key commands would
fail with MOVED later) or a plain server with it is refused at start with a message saying so.

A command waits for a free connection (up to POOL_WAIT_S) when REDIS_MAX_CONNECTIONS are busy,
on one server and through Sentinel; redis-py's cluster client has no waiting pool, so on a
cluster REDIS_MAX_CONNECTIONS is per node and a command past it fails (raise it there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, SecretStr
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import BlockingConnectionPool, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from bot.settings import sentinel_spec
from bot.store.base import StoreError

if TYPE_CHECKING:
    from bot.settings import Settings

POOL_WAIT_S = 20.0  # how long a command waits for a free connection of a full pool
CONNECT_TIMEOUT_S = 5.0
SOCKET_TIMEOUT_S = 10.0

AnyRedis = aioredis.Redis | RedisCluster


class RedisTarget(BaseModel):
    """Where Redis is and how to reach it: what `REDIS_URL`, `REDIS_CLUSTER`, `REDIS_SENTINEL` and
    `REDIS_MAX_CONNECTIONS` say. `url` is a secret (it may hold a password)."""

    model_config = ConfigDict(frozen=True)

    url: SecretStr = SecretStr("")
    cluster: bool = False
    sentinel: str | None = None
    max_connections: int = 100

    @classmethod
    def of(cls, settings: Settings) -> RedisTarget:
        return cls(
            url=settings.redis_url or SecretStr(""),
            cluster=settings.redis_cluster,
            sentinel=settings.redis_sentinel,
            max_connections=settings.redis_max_connections,
        )

    @property
    def where(self) -> str:
        """What to name in a message: host:port (or the Sentinels' master), never credentials."""
        if self.sentinel:
            master, nodes = sentinel_spec(self.sentinel)
            return f"master {master} of Sentinel {','.join(f'{h}:{p}' for h, p in nodes)}"
        where = _where(self.url.get_secret_value())
        return f"cluster node {where}" if self.cluster else where


def _where(url: str) -> str:
    """host:port (or the socket path) of a Redis URL, never its credentials."""
    try:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            return parts.path or "unix socket"
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    except ValueError:
        return "the configured address"


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):  # type: ignore[misc]
    """The Sentinel pool (the master's address asked of the Sentinels) with the waiting of
    BlockingConnectionPool when all connections are busy."""


def connect(target: RedisTarget, *, decode_responses: bool = False) -> AnyRedis:
    """A client for `target`; no I/O yet. ValueError on a URL or set-up that cannot work (its text
    never holds the password)."""
    url = target.url.get_secret_value().strip()
    common: dict[str, Any] = {
        "decode_responses": decode_responses,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
    }
    try:
        if target.sentinel:
            master, nodes = sentinel_spec(target.sentinel)
            given = parse_url(url) if url else {}
            kwargs = {k: v for k, v in given.items() if k in ("username", "password", "db")}
            if given.get("connection_class") is not None and "SSL" in given["connection_class"].__name__:
                kwargs["ssl"] = True
            sentinel = Sentinel(
                nodes,
                sentinel_kwargs={
                    "socket_connect_timeout": CONNECT_TIMEOUT_S,
                    "socket_timeout": SOCKET_TIMEOUT_S,
                },
            )
            return sentinel.master_for(
                master,
                connection_pool_class=_BlockingSentinelPool,
                max_connections=target.max_connections,
                timeout=POOL_WAIT_S,
                **common,
                **kwargs,
            )
        if not url:
            raise ValueError("REDIS_URL is empty")
        if target.cluster:
            if parse_url(url).get("db", 0) not in (0, "0"):
                raise ValueError("a Redis Cluster has database 0 only: end REDIS_URL with /0 or nothing")
            return RedisCluster.from_url(url, max_connections=target.max_connections, **common)
        pool = BlockingConnectionPool.from_url(
            url, max_connections=target.max_connections, timeout=POOL_WAIT_S, **common
        )
        return aioredis.Redis.from_pool(pool)
    except ValueError as exc:
        text = str(exc)
        if url and (secret := urlsplit(url).password):
            text = text.replace(secret, "****")
        if "://" in text:  # redis-py quotes the URL it could not read
            text = "not a valid Redis URL"
        raise ValueError(f"REDIS_URL: {text} ({_where(url)})") from None


def make_redis(settings: Settings, *, decode_responses: bool = False) -> AnyRedis:
    """A Redis client on what the settings say (one server, a cluster or Sentinel); no I/O yet."""
    return connect(RedisTarget.of(settings), decode_responses=decode_responses)


async def open_redis(
    target: RedisTarget,
    *,
    decode_responses: bool = False,
    error: type[Exception] = StoreError,
    name: str | None = None,
) -> AnyRedis:
    """A connected client (it answered PING, and is a cluster exactly when REDIS_CLUSTER says so),
    or `error` saying why not, never the URL's password."""
    name = name or f"Redis at {target.where}"
    try:
        client = connect(target, decode_responses=decode_responses)
    except ValueError as exc:
        raise error(str(exc)) from None
    try:
        await client.ping()
        if not target.cluster:
            info = await client.info("cluster")
            if info.get("cluster_enabled") in (1, "1"):
                raise error(
                    f"{name} is a node of a Redis Cluster: set REDIS_CLUSTER=true "
                    "(and give no REDIS_SENTINEL)"
                )
    except RedisClusterException as exc:
        await client.aclose()
        if "not enabled" in str(exc).lower():
            raise error(
                f"{name} is not a Redis Cluster (cluster mode is off): set REDIS_CLUSTER=false"
            ) from None
        raise error(f"{name} is not answering: {exc}") from exc
    except ResponseError as exc:
        await client.aclose()
        raise error(f"{name} refused the connection: {exc}") from exc
    except (RedisError, OSError) as exc:
        await client.aclose()
        raise error(f"{name} is not answering: {exc}") from exc
    except BaseException:
        await client.aclose()
        raise
    return client
