"""The one base of the fakes' local servers, and their scripted failures.

Every fake is an aiohttp application on 127.0.0.1 (a free port unless one is given) that speaks a
service's wire protocol, so the real client libraries run unmodified. It runs either

- in the test's own event loop: ``LoopServer`` (``async with Fake() as fake`` or
  ``await fake.start()`` / ``await fake.stop()``), or
- in a background thread with its own event loop: ``ThreadServer`` (``with Fake() as fake`` or
  ``fake.start()`` / ``fake.stop()``), so that sync tests, async tests and subprocesses can all use
  the same instance.

A fake subclasses one of them and adds its routes in ``add_routes``::

    class FakeThing(ThreadServer):
        def add_routes(self, app: web.Application) -> None:
            app.router.add_get("/thing", self._thing)

        async def _thing(self, request: web.Request) -> web.Response:
            if (failure := self.failures.take("thing", dict(request.query))) is not None:
                return web.json_response({"error": failure.message}, status=failure.status)
            await self.sleep(self.delay)  # returns early when the server stops
            return web.json_response({"ok": True})

``Failure`` is the one shape of a scripted failure (the next ``times`` requests to a route whose
payload ``when`` accepts fail); ``Failures`` holds them in order and hands out the next one that
applies (``take``). What a failure looks like on the wire is each fake's own business.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Self

from aiohttp import web

__all__ = ["HOST", "Failure", "Failures", "LocalServer", "LoopServer", "ThreadServer"]

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


# --------------------------------------------------------------------------- scripted failures


@dataclass
class Failure:
    """The next ``times`` requests to ``route`` (a regular expression matching the whole route: an
    API method name, a path, a request kind) sent with HTTP ``method`` (None: any) and whose payload
    ``when`` accepts (None: any) are answered with this failure instead.

    ``status`` is the HTTP status, ``error`` the service's error code (Slack's ``error``, Discord's
    JSON ``code``, Google's ``reason``), ``message`` the human-readable text, and ``retry_after``
    (seconds, or None) what a rate-limited answer tells the client to wait."""

    route: str
    status: int = 500
    error: str | int = "error"
    message: str = "scripted failure"
    times: int = 1
    when: Callable[[Any], bool] | None = None
    method: str | None = None
    retry_after: float | None = None

    def applies(self, route: str, payload: Any = None, method: str | None = None) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method)
            and re.fullmatch(self.route, route) is not None
            and (self.when is None or bool(self.when(payload)))
        )


class Failures:
    """Scripted failures, in the order they were added; safe to script from any thread."""

    def __init__(self) -> None:
        self._items: list[Failure] = []
        self._lock = threading.Lock()

    def add(self, failure: Failure) -> Failure:
        with self._lock:
            self._items.append(failure)
        return failure

    def take(self, route: str, payload: Any = None, method: str | None = None) -> Failure | None:
        """The first failure that applies to this request, with one of its ``times`` used up."""
        with self._lock:
            for failure in self._items:
                if failure.applies(route, payload, method):
                    failure.times -= 1
                    if failure.times == 0:
                        self._items.remove(failure)
                    return failure
        return None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return sum(f.times for f in self._items)


# --------------------------------------------------------------------------- the server


class LocalServer:
    """What both ways of running share: the application, the runner, the address, websockets
    closed on stop and a sleep that ends when the server stops. Use ``LoopServer`` or
    ``ThreadServer``."""

    client_max_size: ClassVar[int] = 1024**2  # the largest request body, in bytes
    shutdown_timeout: ClassVar[float] = 1.0  # how long stopping waits for running handlers
    handler_cancellation: ClassVar[bool] = False  # cancel a handler whose client went away

    def __init__(self, host: str = HOST, port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._websockets: list[web.WebSocketResponse] = []

    # -- what a fake provides

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def _serve_more(self, runner: web.AppRunner) -> None:
        """Called once the first address is bound (``self.port`` is known): more sites, if any."""

    async def _before_stop(self) -> None:
        """Called first when the server stops, in its loop."""

    # -- addresses

    @property
    def started(self) -> bool:
        return self._runner is not None

    @property
    def origin(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.origin

    def url(self, path: str = "") -> str:
        return self.origin + path

    # -- in the server's loop

    @property
    def stopping(self) -> bool:
        return self._closing is not None and self._closing.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep without blocking other requests; returns early when the server stops."""
        if seconds <= 0 or self._closing is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    @contextlib.asynccontextmanager
    async def websocket(self, request: web.Request, **options: Any) -> AsyncIterator[web.WebSocketResponse]:
        """An accepted websocket, closed at the end of the block or when the server stops."""
        ws = web.WebSocketResponse(**options)
        await ws.prepare(request)
        self._websockets.append(ws)
        try:
            yield ws
        finally:
            self._websockets.remove(ws)
            if not ws.closed:
                await ws.close()

    async def _astart(self) -> None:
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        self._closing = asyncio.Event()
        app = web.Application(client_max_size=self.client_max_size)
        self.add_routes(app)
        runner = web.AppRunner(
            app,
            access_log=None,
            handler_cancellation=self.handler_cancellation,
            shutdown_timeout=self.shutdown_timeout,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
            self.port = int(runner.addresses[0][1])
            await self._serve_more(runner)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner

    async def _astop(self) -> None:
        if self._closing is not None:
            self._closing.set()
        await self._before_stop()
        for ws in list(self._websockets):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class LoopServer(LocalServer):
    """A local server in the test's event loop."""

    async def start(self) -> Self:
        await self._astart()
        return self

    async def stop(self) -> None:
        await self._astop()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


class ThreadServer(LocalServer):
    """A local server in a background thread with its own event loop. Stopping it ends whatever
    still runs in that loop."""

    handler_cancellation: ClassVar[bool] = True

    def __init__(self, host: str = HOST, port: int = 0) -> None:
        super().__init__(host, port)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=_run_loop, args=(loop,), name=type(self).__name__, daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._astart(), loop).result(timeout=START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=START_TIMEOUT_S)
        finally:
            with contextlib.suppress(RuntimeError):  # the loop is closed already
                loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=START_TIMEOUT_S)
            self._loop = None
            self._thread = None
            self._runner = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _shutdown(self) -> None:
        await self._astop()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
