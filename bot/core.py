"""The core assembled: store, archive, LLM, tools, memory, engine, runner and service.
Adapters get a `Core`, add their platform, and call `core.service`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from pydantic_settings import BaseSettings

from bot import sandbox
from bot.adapter import ChatAdapter
from bot.engine import Engine
from bot.llm.client import LLMClient
from bot.mcp_servers import McpServers
from bot.memory import Memory, NoMemory, open_memory
from bot.metrics import Metrics
from bot.models import Session
from bot.parts import Parts
from bot.presenter.views import NoticeView
from bot.queue import KickQueue
from bot.redact import Redactor
from bot.runner import Runner
from bot.schedules import ScheduleBook, ScheduleRunner
from bot.service import Service
from bot.settings import Settings
from bot.store import make_archive, make_store
from bot.store.archive import SessionArchive
from bot.store.base import OpenError, SessionStore, StoreError
from bot.tools import ToolRegistry, default_registry

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


def announce_sandbox(settings: Settings) -> None:
    """Choose where commands run (probing takes a moment, once) and say it: a warning when they
    run unsandboxed, or when no sandbox works and the execution tools are off."""
    chosen = sandbox.select(settings)
    if chosen.warning:
        log.warning(chosen.warning)
    if chosen.sandbox is None:
        log.warning("execute_python_code, execute_python_file and execute_shell are off: %s", chosen.reason)
    else:
        log.info("commands the agent runs run in %s", chosen.reason)


class Core:
    def __init__(
        self,
        settings: Settings,
        store: SessionStore,
        archive: SessionArchive,
        llm: LLMClient,
        tools: ToolRegistry | None = None,
        memory: Memory | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        # one redaction filter for every part that sends text out; an adapter's secrets join it
        # when the adapter is added
        self.redactor = Redactor.of(settings)
        self.parts = Parts(
            settings=settings,
            store=store,
            archive=archive,
            llm=llm,
            tools=tools or default_registry(),
            memory=memory or NoMemory(),
            metrics=metrics or llm.metrics,  # one registry for everything this core records
            redactor=self.redactor,
        )
        self.settings, self.store, self.archive, self.llm = settings, store, archive, llm
        self.tools, self.memory, self.metrics = self.parts.tools, self.parts.memory, self.parts.metrics
        self.platforms = self.parts.platforms
        for part in (store, archive, llm, self.memory):
            if hasattr(part, "redactor"):
                part.redactor = self.redactor
        self.engine = Engine(self.parts)
        self.scheduler = AsyncIOScheduler(timezone=settings.scheduler_timezone)
        self.runner = Runner(self.engine, self.scheduler)
        self.schedules = ScheduleBook(settings, store)
        self.service = Service(self.parts, self.engine, self.runner, self.schedules)
        self.leader = ScheduleRunner(
            settings, self.schedules, self.scheduler, self.engine.holder, self.service.fire
        )
        # MCP tool servers (MCP_SERVERS, MCP_CONFIG): connected by `start`, their tools join
        # self.tools while they are up; a session that calls one that went down is told here
        self.mcp = McpServers(settings, self.tools, self.redactor, notify=self._mcp_notice)
        # ROLE=ingress or worker: kicks go through the work queue in Redis (bot/queue.py)
        self.queue: KickQueue | None = None

    async def _mcp_notice(self, session: Session, text: str) -> None:
        await self.engine.post(session, NoticeView(session_id=session.id, level="warning", text=text))

    @classmethod
    async def start(cls, settings: Settings, store: SessionStore | None = None) -> Core:
        """Open the store, the archive and the memory. A store that cannot be opened raises its
        StoreError; the archive or the memory, an OpenError naming it ("Cannot open the memory
        (...)"), its secrets redacted."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = store or make_store(settings)
        await store.open()
        archive = make_archive(settings)
        try:
            await archive.open()
        except Exception as exc:
            await store.close()
            if isinstance(exc, StoreError):
                raise OpenError("archive", Redactor.of(settings).text(str(exc))) from exc
            raise
        llm = LLMClient(settings, metrics=Metrics())
        try:
            memory = await open_memory(settings, client=llm.client)
        except Exception as exc:
            await llm.close()
            await archive.close()
            await store.close()
            if isinstance(exc, StoreError):
                raise OpenError("memory", Redactor.of(settings).text(str(exc))) from exc
            raise
        core = cls(settings, store, archive, llm, memory=memory)
        if settings.role != "all":
            queue = KickQueue(settings, store, core.metrics, consumer=core.engine.holder)
            try:
                await queue.open()
            except Exception:
                await core.close()
                raise
            core.queue = core.runner.queue = queue
        await core.mcp.start()
        core.scheduler.start()
        if settings.execute_local_commands:
            await asyncio.to_thread(announce_sandbox, settings)
        return core

    def add_platform(self, adapter: ChatAdapter) -> None:
        """An adapter the core posts through from now on; its settings' secrets are redacted
        everywhere, like the core's."""
        self.platforms[adapter.name] = adapter
        if adapter.metrics is None:  # it counts its API errors (bot/ops.py)
            adapter.metrics = self.metrics
        if isinstance(settings := getattr(adapter, "settings", None), BaseSettings):
            self.redactor.extend(settings)

    def remove_platform(self, adapter: ChatAdapter) -> None:
        if self.platforms.get(adapter.name) is adapter:
            del self.platforms[adapter.name]

    def start_background(self) -> None:
        """For a long-running process: take part in running the schedules, and pick up sessions
        whose process died (their lease lapsed) every lease period. A worker (ROLE=worker) takes
        kicks from the queue instead, which reclaims a dead worker's; an ingress does neither: it
        drives nothing, and its schedules fire on a worker."""
        if self.settings.role == "ingress":
            return
        self.leader.start()
        if self.queue is not None:
            self.queue.serve(self.engine.drive, self.engine.recover, lambda: self.leader.leader)
            return
        self.scheduler.add_job(
            self.resume_all,
            "interval",
            seconds=self.settings.lease_seconds,
            id="recover-sessions",
            replace_existing=True,
            coalesce=True,
            max_instances=1,
        )

    async def resume_all(self) -> int:
        """After a start: drive again every session that was being worked on. With the work
        queue (ROLE=ingress or worker) nothing: each worker sweeps once it serves."""
        if self.queue is not None:
            return 0
        ids = await self.engine.recover()
        for session_id in ids:
            self.runner.kick(session_id)
        if ids:
            log.info("resuming %d sessions", len(ids))
        return len(ids)

    async def close_queue(self) -> None:
        """Stop taking kicks and driving (a worker stops this before its adapters, so that no
        drive posts through a closed client); `close` does it too."""
        if self.queue is not None:
            await self.queue.close()

    async def stop_driving(self) -> None:
        """Stop the schedules, the work queue and the sessions being driven here: drives are
        cancelled and wind down (a command that is ending has its result recorded) within
        STOP_WAIT_S. `autogpt-bot run` calls it once its adapters stopped receiving and before
        it stops them, so that what a drive posts while it winds down still reaches the chat;
        `close` does it too (again, a no-op then)."""
        await self._stop_parts(
            ("schedules", self.leader.stop),
            ("work queue", self.close_queue),
            ("sessions", self.runner.stop),
        )

    async def close(self) -> None:
        """Stop everything; a part that does not stop within CLOSE_TIMEOUT_S is logged and left,
        so shutting down can never hang the process."""
        await self.stop_driving()
        await self._stop_parts(
            ("MCP servers", self.mcp.close),
            ("LLM client", self.llm.close),
            ("memory", self.memory.close),
            ("archive", self.archive.close),
            ("store", self.store.close),
        )

    async def _stop_parts(self, *parts: tuple[str, Callable[[], Awaitable[None]]]) -> None:
        for name, step in parts:
            try:
                await asyncio.wait_for(step(), CLOSE_TIMEOUT_S)
            except TimeoutError:
                log.error("closing the %s took longer than %g s; going on", name, CLOSE_TIMEOUT_S)
