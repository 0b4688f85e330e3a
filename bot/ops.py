"""Operations endpoints, served with aiohttp in the bot's own event loop on OPS_HOST:OPS_PORT:

GET /healthz   200 {"status": "ok", "store": "ok", "adapters": {"<platform>": "connected"},
                    "scheduler": "leader" | "standby"}
               503 with the same shape, "status": "failing" and "failing": [the parts that fail]
               when the store does not answer or an adapter is disconnected.
GET /metrics   Prometheus text format (or OpenMetrics, by the Accept header) of `core.metrics`;
               the sessions-by-state gauge is read from the store at each scrape.

A process with nothing to run (`autogpt-bot run` with no chat credentials and no terminal) serves
/healthz as 503 {"status": "not configured", "reason": "not configured: <what to set>"} (and an
empty /metrics) until it is stopped: `OpsServer.not_configured(settings, reason)`.

Each adapter in `core.platforms` says whether it is connected (`ChatAdapter.connected()`); the
core's metrics count its API errors (`Metrics.platform_error(its name, method)`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.aiohttp import make_aiohttp_handler

from bot.adapter import ChatAdapter
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.core import Core

log = logging.getLogger(__name__)

CHECK_TIMEOUT_S = 3.0  # one health check part (the store's ping, an adapter) may take this long
SCRAPE_TIMEOUT_S = 5.0  # reading the sessions' states for /metrics


async def check_store(core: Core) -> str:
    """ "ok", or why the store does not answer."""
    try:
        if await asyncio.wait_for(core.store.ping(), CHECK_TIMEOUT_S):
            return "ok"
        return "error: ping failed"
    except TimeoutError:
        return f"error: no answer within {CHECK_TIMEOUT_S:g} s"
    except Exception as exc:
        return f"error: {exc}"


async def check_adapter(adapter: ChatAdapter) -> str:
    try:
        up = await asyncio.wait_for(adapter.connected(), CHECK_TIMEOUT_S)
    except Exception as exc:
        log.warning("health: %s did not say whether it is connected: %s", type(adapter).__name__, exc)
        up = False
    return "connected" if up else "disconnected"


async def health(core: Core) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of /healthz."""
    names = list(core.platforms)
    store, *states = await asyncio.gather(
        check_store(core), *(check_adapter(core.platforms[name]) for name in names)
    )
    adapters = dict(zip(names, states, strict=True))
    failing = (["store"] if store != "ok" else []) + [
        f"adapters.{name}" for name, state in adapters.items() if state != "connected"
    ]
    body: dict[str, Any] = {
        "status": "failing" if failing else "ok",
        "store": store,
        "adapters": adapters,
        "scheduler": "leader" if core.leader.leader else "standby",
    }
    if failing:
        body["failing"] = failing
    return (503 if failing else 200), body


async def refresh_sessions(core: Core) -> None:
    """Fill the sessions-by-state gauge from the store (store_up says whether that worked)."""

    async def read() -> None:
        ids = await core.store.active_ids()
        sessions = await asyncio.gather(*(core.store.get(sid) for sid in ids))
        core.metrics.count_sessions(s.state for s in sessions if s is not None and not s.state.terminal)

    try:
        await asyncio.wait_for(read(), SCRAPE_TIMEOUT_S)
        core.metrics.store_up.set(1)
    except Exception as exc:
        log.warning("metrics: could not read the sessions from the store: %s", exc)
        core.metrics.store_up.set(0)
    if core.queue is not None:
        try:
            await asyncio.wait_for(core.queue.observe(), SCRAPE_TIMEOUT_S)
        except Exception as exc:
            log.warning("metrics: could not read the work queue: %s", exc)


class OpsServer:
    """`/healthz` and `/metrics` of one core. `port` is the bound port once started (OPS_PORT=0:
    any free port)."""

    def __init__(
        self,
        core: Core | None,
        settings: Settings | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        reason: str | None = None,
    ) -> None:
        if settings is None:
            if core is None:
                raise ValueError("OpsServer needs a core or settings")
            settings = core.settings
        self.core = core
        self.reason = reason  # set: not configured, and why (then there is no core)
        self.host = settings.ops_host if host is None else host
        self.port = settings.ops_port if port is None else port
        self._runner: web.AppRunner | None = None
        registry = core.metrics.registry if core is not None else CollectorRegistry()
        self._metrics = make_aiohttp_handler(registry, disable_compression=True)

    @classmethod
    def not_configured(
        cls, settings: Settings, reason: str, *, host: str | None = None, port: int | None = None
    ) -> OpsServer:
        """/healthz answers 503 "not configured: <reason>" until the process is stopped."""
        return cls(None, settings, host=host, port=port, reason=reason)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._scrape)
        return app

    async def start(self) -> None:
        """Listen; raises OSError (with the port) when it cannot."""
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        log.info("ops: /healthz and /metrics on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
        return f"http://{host}:{self.port}"

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.core is None:
            body = {
                "status": "not configured",
                "reason": f"not configured: {self.reason or 'nothing to run'}",
                "failing": ["configuration"],
            }
            return web.json_response(body, status=503)
        status, body = await health(self.core)
        if status != 200:
            log.warning("health: failing: %s", ", ".join(body.get("failing", [])))
        return web.json_response(body, status=status)

    async def _scrape(self, request: web.Request) -> web.StreamResponse:
        if self.core is not None:
            await refresh_sessions(self.core)
        return await self._metrics(request)
