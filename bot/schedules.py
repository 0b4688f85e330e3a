"""Recurring goals on a schedule.

A schedule is a durable document in the store (so it survives restarts and every process sees
it). One process at a time runs them: the leader, chosen with a lease in the store that it renews
(APScheduler 3 cannot share a job store between processes). The leader keeps an APScheduler job
per active schedule; APScheduler decides when a run is due and drops a run missed by more than
SCHEDULE_MISFIRE_GRACE (the next run then posts a note). Every run due within the grace runs once,
in order, also those missed during a hand-over between leaders. A run due while the schedule's
previous run is still going waits for it to end (`waiting`); several such runs are coalesced
into the latest.

Each firing starts a fresh continuous session whose id is derived from (schedule, due time): the
store's create-if-absent makes a firing happen exactly once, whichever leader gets there, even
across a hand-over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, Field

from bot.grammar import SESSION_ID_ALPHABET, new_session_id
from bot.models import ACTIVE, Place, utcnow
from bot.settings import Settings
from bot.store.base import SessionStore

log = logging.getLogger(__name__)

KIND = "schedule"
LEADER = "scheduler-leader"
EXAMPLES = '"0 9 * * 1-5" (09:00 on weekdays), "every 30m", "every 2h" or "every day at 09:00"'

_UNITS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_INTERVAL = re.compile(r"^every\s+(\d+)\s*([a-z]+)$", re.IGNORECASE)
_AT = re.compile(r"^every\s+(day|weekday)\s+at\s+(\d{1,2}):(\d{2})$", re.IGNORECASE)
_SINGLE = re.compile(r"^every\s+(minute|hour|day)$", re.IGNORECASE)


class ScheduleError(ValueError):
    """A schedule cannot be made as asked; the message says why, with an example."""


class Schedule(BaseModel):
    id: str
    owner: str
    owner_name: str | None = None
    place: Place  # the channel where it was made; each run opens its own thread there
    when: str
    tz: str
    goals: list[str]  # with a template: its goals when the schedule was made (they run if it is gone)
    name: str | None = None
    template: str | None = None  # each run takes this template's goals as they are then
    paused: bool = False
    created_at: datetime = Field(default_factory=utcnow)
    last_fire: datetime | None = None  # the due time of the last run started (or skipped)
    last_session: str | None = None
    waiting: datetime | None = None  # a run due while the previous one was still going
    runs: int = 0
    missed: list[str] = Field(default_factory=list)  # notes for the next run's thread

    @property
    def user_key(self) -> str:
        return f"{self.place.platform}:{self.owner}"

    @property
    def title(self) -> str:
        return f"Scheduled: {self.name or self.goals[0][:60]} ({self.when}, schedule {self.id})"

    def trigger(self, min_interval_s: float = 0) -> BaseTrigger:
        return make_trigger(self.when, self.tz, self.created_at, min_interval_s)

    def next_run(self, now: datetime | None = None) -> datetime | None:
        if self.paused:
            return None
        return self.trigger().get_next_fire_time(None, now or utcnow())


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"Unknown time zone '{tz}': use a name such as UTC or Europe/Paris.") from None


def make_trigger(when: str, tz: str, anchor: datetime, min_interval_s: float = 0) -> BaseTrigger:
    """A 5-field cron expression or an interval, as an APScheduler trigger in `tz`."""
    zone = _zone(tz)
    text = " ".join(when.split())
    if m := _INTERVAL.match(text):
        amount, unit = int(m.group(1)), m.group(2).lower()
        if unit not in _UNITS or amount < 1:
            raise ScheduleError(f"'{when}' is not an interval I understand. Examples: {EXAMPLES}.")
        seconds = amount * _UNITS[unit]
        if seconds < min_interval_s:
            raise ScheduleError(f"'{when}' is too often: at most once every {min_interval_s:g} seconds.")
        return IntervalTrigger(seconds=seconds, start_date=anchor, timezone=zone)
    if m := _SINGLE.match(text):
        unit = m.group(1).lower()
        if unit == "minute" and min_interval_s > 60:
            raise ScheduleError(f"'{when}' is too often: at most once every {min_interval_s:g} seconds.")
        return IntervalTrigger(
            seconds={"minute": 60, "hour": 3600, "day": 86400}[unit], start_date=anchor, timezone=zone
        )
    if m := _AT.match(text):
        hour, minute = int(m.group(2)), int(m.group(3))
        if hour > 23 or minute > 59:
            raise ScheduleError(f"'{when}': {hour:02d}:{minute:02d} is not a time of day.")
        days = "mon-fri" if m.group(1).lower() == "weekday" else "*"
        return CronTrigger(day_of_week=days, hour=hour, minute=minute, timezone=zone)
    fields = text.split(" ")
    if len(fields) != 5 or text.lower().startswith("every"):
        raise ScheduleError(
            f"'{when}' is neither a 5-field cron expression nor an interval. Examples: {EXAMPLES}."
        )
    try:
        return CronTrigger.from_crontab(text, timezone=zone)
    except ValueError as exc:
        raise ScheduleError(
            f"'{when}' is not a valid cron expression ({exc}). Examples: {EXAMPLES}."
        ) from None


def firing_id(schedule_id: str, due: datetime) -> str:
    """The session id of a schedule's run due at `due`: the same in every process."""
    digest = hashlib.sha256(f"{schedule_id}@{due.timestamp():.0f}".encode()).digest()
    return "".join(SESSION_ID_ALPHABET[b % len(SESSION_ID_ALPHABET)] for b in digest[:6])


class ScheduleBook:
    """Schedules in the store: create, list, change, with compare-and-set updates."""

    def __init__(self, settings: Settings, store: SessionStore) -> None:
        self.settings = settings
        self.store = store

    async def get(self, schedule_id: str) -> Schedule | None:
        found = await self.store.doc_get(KIND, schedule_id)
        return Schedule.model_validate_json(found[1]) if found else None

    async def all(self) -> list[Schedule]:
        return [Schedule.model_validate_json(data) for _, data in await self.store.doc_list(KIND)]

    async def of(self, user_key: str) -> list[Schedule]:
        return [s for s in await self.all() if s.user_key == user_key]

    async def create(self, schedule: Schedule) -> Schedule:
        schedule.trigger(self.settings.min_schedule_interval_s)  # raises ScheduleError
        for _ in range(10):
            schedule.id = new_session_id()
            if await self.store.doc_create(KIND, schedule.id, schedule.model_dump_json()):
                return schedule
        raise ScheduleError("could not find a free schedule id")

    async def update(self, schedule_id: str, mutate: Callable[[Schedule], bool | None]) -> Schedule | None:
        for _ in range(20):
            found = await self.store.doc_get(KIND, schedule_id)
            if found is None:
                return None
            version, data = found
            schedule = Schedule.model_validate_json(data)
            if mutate(schedule) is False:
                return None
            if await self.store.doc_cas(KIND, schedule_id, version, schedule.model_dump_json()):
                return schedule
        return None

    async def delete(self, schedule_id: str) -> bool:
        return await self.store.doc_delete(KIND, schedule_id)


Fire = Callable[[Schedule, datetime], Awaitable[str | None]]


class ScheduleRunner:
    """Runs the schedules in the one process that holds the leader lease.

    Every process runs `_lead` (a loop): it takes or renews the lease; the leader keeps one
    APScheduler job per active schedule, in step with the store (schedules made or changed by
    any process); a process that loses the lease drops its jobs. A leader that dies stops
    renewing, and another takes over within the lease time."""

    def __init__(
        self, settings: Settings, book: ScheduleBook, scheduler: AsyncIOScheduler, holder: str, fire: Fire
    ) -> None:
        self.settings = settings
        self.book = book
        self.scheduler = scheduler
        self.holder = holder
        self.fire = fire
        self.leader = False
        self._task: asyncio.Task[None] | None = None
        self._jobs: dict[str, tuple[str, str]] = {}  # schedule id -> (when, tz) of its job
        self._pending: set[asyncio.Task[Any]] = set()
        scheduler.add_listener(self._missed, EVENT_JOB_MISSED)

    def start(self) -> None:
        self._task = asyncio.create_task(self._lead(), name="schedule-leader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._drop_jobs()
        if self.leader:
            with contextlib.suppress(Exception):
                await self.book.store.release_lease(LEADER, self.holder)
        self.leader = False

    async def _lead(self) -> None:
        ttl = self.settings.scheduler_leader_ttl_s
        while True:
            try:
                got = await self.book.store.acquire_lease(LEADER, self.holder, ttl)
                if got and not self.leader:
                    log.info("scheduler: this process is the leader now")
                    self.leader = True
                elif not got and self.leader:
                    log.warning("scheduler: lost the leader lease; standing by")
                    self.leader = False
                    self._drop_jobs()
                if self.leader:
                    await self.sync()
            except Exception:
                log.warning("scheduler: leader loop failed; retrying", exc_info=True)
            await asyncio.sleep(min(ttl / 3, self.settings.scheduler_sync_s))

    def _drop_jobs(self) -> None:
        for schedule_id in list(self._jobs):
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(f"schedule:{schedule_id}")
        self._jobs.clear()

    async def sync(self) -> None:
        """Make the leader's jobs match the stored schedules."""
        if not self.leader:
            return
        wanted = {s.id: s for s in await self.book.all() if not s.paused}
        for schedule_id in list(self._jobs):
            if schedule_id not in wanted:
                with contextlib.suppress(Exception):
                    self.scheduler.remove_job(f"schedule:{schedule_id}")
                del self._jobs[schedule_id]
        for schedule in wanted.values():
            shape = (schedule.when, schedule.tz)
            if self._jobs.get(schedule.id) == shape:
                continue
            try:
                trigger = schedule.trigger()
            except ScheduleError as exc:
                log.warning("schedule %s: %s", schedule.id, exc)
                continue
            # The first run due after the last one started: APScheduler runs it at once if it is
            # already due (within the grace time) or reports it missed, and goes on from there.
            after = schedule.last_fire or schedule.created_at
            first = trigger.get_next_fire_time(after, after)
            self.scheduler.add_job(
                self._run,
                trigger=trigger,
                args=[schedule.id],
                id=f"schedule:{schedule.id}",
                replace_existing=True,
                next_run_time=first,
                misfire_grace_time=int(self.settings.schedule_misfire_grace_s),
                coalesce=True,
                max_instances=1,
            )
            self._jobs[schedule.id] = shape
        for schedule in wanted.values():
            if schedule.waiting is not None:  # its previous run may have ended: start the next
                await self.advance(schedule.id)

    async def _run(self, schedule_id: str) -> None:
        if not self.leader:
            return
        try:
            await self.advance(schedule_id)
        except Exception:
            log.exception("schedule %s: starting its due run failed", schedule_id)

    async def advance(self, schedule_id: str) -> None:
        """Start the runs of this schedule that are due, oldest first, one at a time: while its
        last run is still going, the next due run waits (the latest of them, if several)."""
        for _ in range(8):  # each pass starts one run; more than a few due at once is not expected
            schedule = await self.book.get(schedule_id)
            if schedule is None or schedule.paused:
                return
            due = [schedule.waiting] if schedule.waiting else []
            due += self._dues(schedule)
            if not due:
                return
            if await self._busy(schedule):
                await self._wait(schedule, due)
                return
            if await self.fire(schedule, due[0]) is None:
                return

    async def _busy(self, schedule: Schedule) -> bool:
        if not schedule.last_session:
            return False
        previous = await self.book.store.get(schedule.last_session)
        return previous is not None and previous.state in ACTIVE

    async def _wait(self, schedule: Schedule, due: list[datetime]) -> None:
        latest = due[-1]
        if schedule.waiting == latest:
            return
        merged = due[:-1]
        note = (
            f"The runs due at {', '.join(f'{d:%H:%M:%S}' for d in merged)} were merged into this one: "
            "the previous run was still going."
        )

        def wait(s: Schedule) -> bool | None:
            if s.last_session != schedule.last_session or (s.waiting and s.waiting >= latest):
                return False  # changed meanwhile: the next pass sees it
            s.waiting = latest
            if merged:
                s.missed = [*s.missed[-4:], note]
            return None

        if await self.book.update(schedule.id, wait) is not None:
            log.info(
                "schedule %s: the run due at %s waits for %s to end",
                schedule.id,
                latest,
                schedule.last_session,
            )

    def _dues(self, schedule: Schedule) -> list[datetime]:
        """The times this schedule was due, at or before now and within the grace, after its
        last run and the run waiting (oldest first)."""
        trigger = schedule.trigger()
        now = utcnow()
        grace = timedelta(seconds=self.settings.schedule_misfire_grace_s + 1)
        tick = timedelta(microseconds=1)
        after = max(d for d in (schedule.last_fire, schedule.waiting, schedule.created_at) if d is not None)
        since = max(after + tick, now - grace)
        dues: list[datetime] = []
        candidate = trigger.get_next_fire_time(None, since)  # the first due time at or after `since`
        while candidate is not None and candidate <= now and len(dues) < 100:
            dues.append(candidate)
            candidate = trigger.get_next_fire_time(None, candidate + tick)
        return dues

    def _missed(self, event: JobExecutionEvent) -> None:
        if not event.job_id.startswith("schedule:"):
            return
        schedule_id = event.job_id.split(":", 1)[1]
        when = event.scheduled_run_time
        note = (
            f"The run due at {when:%Y-%m-%d %H:%M %Z} was missed while the bot was down and skipped "
            f"(later than the {self.settings.schedule_misfire_grace_s:g} s grace time)."
        )

        def add(s: Schedule) -> None:
            s.missed = [*s.missed[-4:], note]

        task = asyncio.get_running_loop().create_task(self.book.update(schedule_id, add))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
