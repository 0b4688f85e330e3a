"""Runs sessions in the background of this process, as APScheduler jobs: one job per session
(job id `session:<id>`, at most one instance), so a session never runs twice at once here; the
lease in the store keeps other processes off it.

A kick while the session's job is running is not lost: the job drives once more before it ends.
Nothing about a session is held here but its id while its job runs.
"""

from __future__ import annotations

import asyncio
import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.engine import Engine
from bot.queue import KickQueue

log = logging.getLogger(__name__)

STOP_WAIT_S = 5.0  # how long stopping waits for the sessions being driven to wind down


class Runner:
    def __init__(self, engine: Engine, scheduler: AsyncIOScheduler) -> None:
        self.engine = engine
        self.scheduler = scheduler
        self._jobs: dict[str, asyncio.Future[None]] = {}
        self._tasks: dict[str, asyncio.Task[object]] = {}  # the task driving each session here
        self._again: set[str] = set()
        # ROLE=ingress or worker: every kick goes through the work queue (bot/queue.py) and a
        # worker's queue drives it; none is driven here
        self.queue: KickQueue | None = None
        self._stopping = False

    def kick(self, session_id: str) -> None:
        if self.queue is not None:
            self.queue.kick(session_id)
            return
        if session_id in self._jobs:
            self._again.add(session_id)
            return
        self._jobs[session_id] = asyncio.get_running_loop().create_future()
        self.scheduler.add_job(
            self._run,
            args=[session_id],
            id=f"session:{session_id}",
            name=f"session {session_id}",
            max_instances=1,
            misfire_grace_time=None,
            replace_existing=True,
        )

    async def _run(self, session_id: str) -> None:
        if (me := asyncio.current_task()) is not None:
            self._tasks[session_id] = me
        try:
            while True:
                self._again.discard(session_id)
                try:
                    await self.engine.drive(session_id)
                except asyncio.CancelledError:
                    if self._stopping:  # `stop` cut the drive short: it wound down, nothing failed
                        return
                    raise
                except Exception:
                    log.exception("session %s: driving failed", session_id)
                if session_id not in self._again:
                    return
        finally:
            self._tasks.pop(session_id, None)
            done = self._jobs.pop(session_id, None)
            self._again.discard(session_id)
            if done is not None and not done.done():
                done.set_result(None)

    async def finished(self, session_id: str) -> None:
        """Until the session's job here (if any) has ended."""
        job = self._jobs.get(session_id)
        if job is not None:
            await asyncio.gather(job, return_exceptions=True)

    @property
    def busy(self) -> int:
        return len(self._jobs)

    async def idle(self, within: float | None = None) -> None:
        """Wait until no session is being driven (tests and shutdown)."""

        async def wait() -> None:
            while self._jobs:
                await asyncio.gather(*list(self._jobs.values()), return_exceptions=True)

        await asyncio.wait_for(wait(), within)

    async def stop(self) -> None:
        """Cancel what runs and wait for it to wind down (at most STOP_WAIT_S): a command that is
        ending has its result recorded; one cut short is reported as interrupted when resumed.
        The store is still open meanwhile (Core.close stops this first)."""
        self._stopping = True
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        running = [t for t in self._tasks.values() if not t.done()]
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=STOP_WAIT_S)
        for done in self._jobs.values():
            if not done.done():
                done.cancel()
        self._jobs.clear()
