"""What every adapter calls: the shared grammar's commands, applied for an actor in a place.

Replies are platform-neutral `Outcome`s (the adapter decides that a refusal is ephemeral).
Nothing here raises to an adapter for bad input: a malformed command, an unknown session or a
dead store all come back as a clear message.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from bot import grammar, inbox, policy, profiles, usage
from bot.adapter import PlatformError
from bot.decisions import Decision, Refusal, may_decide
from bot.decisions import decide as decide_on
from bot.engine import Engine, today
from bot.grammar import (
    AllowCommand,
    ApproveCommand,
    FeedbackCommand,
    FileCommand,
    FilesCommand,
    ForkCommand,
    GoalCommand,
    GoalsCommand,
    HelpCommand,
    ListCommand,
    PauseCommand,
    ProfileCommand,
    ResumeCommand,
    RetryCommand,
    ScheduleChangeCommand,
    ScheduleCommand,
    SchedulesCommand,
    StatusCommand,
    StopCommand,
    TemplateCommand,
    TemplatesCommand,
    UsageCommand,
    UsageError,
)
from bot.inbox import Incoming
from bot.llm.client import add_usage
from bot.logs import bind, logged
from bot.models import (
    ACTIVE,
    FINAL_STEPS,
    Actor,
    ChannelProfile,
    Outcome,
    Phase,
    Place,
    Session,
    SessionState,
    Shared,
    Template,
    Usage,
    channel_key,
    utcnow,
)
from bot.parts import Parts, UsesParts
from bot.presenter import wording
from bot.presenter.build import header_view, profile_view, session_list_view
from bot.presenter.views import NoticeView, SessionListView, Shown
from bot.presenter.wording import describe, session_line
from bot.runner import Runner
from bot.schedules import Schedule, ScheduleBook, ScheduleError, firing_id
from bot.store.base import SessionExists, StoreError
from bot.text import scrub
from bot.tools.base import ToolError
from bot.tools.files import copy_workspace, without_server_paths, workspace_of

log = logging.getLogger(__name__)

PLACE_TTL_S = 90 * 86400  # a thread keeps pointing at its session this long
# Sessions being started at once in this process (creating one and opening its thread): a burst
# of goals waits its turn instead of flooding the event loop, where every other request's
# acknowledgement would queue behind it.
STARTS_AT_ONCE = 4
STORE_DOWN = (
    "The session store is not reachable right now ({}). Nothing was changed; please try again shortly."
)

P = ParamSpec("P")
A = TypeVar("A", bound=Outcome | None)


def answers(fn: Callable[P, Awaitable[A]]) -> Callable[P, Awaitable[A]]:
    """A public call whose answer goes to a user: it passes through the redaction filter, like
    everything else that leaves the bot (a session's reason may quote a provider's error)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> A:
        outcome = await fn(*args, **kwargs)
        service = args[0]
        assert isinstance(service, Service)
        return service.redactor.model(outcome) if outcome is not None else outcome  # type: ignore[return-value]

    return wrapper


class Service(UsesParts):
    def __init__(self, parts: Parts, engine: Engine, runner: Runner, schedules: ScheduleBook) -> None:
        super().__init__(parts)
        self._starting: asyncio.Semaphore | None = None
        self.engine = engine
        self.runner = runner
        self.schedules = schedules
        self._handlers: dict[type, Callable[[Actor, Place, Any], Awaitable[Outcome]]] = {
            GoalCommand: self._goal,
            StatusCommand: self._status,
            ListCommand: self._list,
            StopCommand: self._stop,
            ApproveCommand: self._approve,
            AllowCommand: self._allow,
            FeedbackCommand: self._feedback,
            FilesCommand: self._files,
            FileCommand: self._file,
            HelpCommand: self._help,
            PauseCommand: self._pause,
            ResumeCommand: self._resume,
            ScheduleCommand: self._schedule,
            SchedulesCommand: self._schedules,
            ScheduleChangeCommand: self._schedule_change,
            UsageCommand: self._usage,
            ProfileCommand: self._profile,
            TemplateCommand: self._template,
            TemplatesCommand: self._templates,
            GoalsCommand: self._goals,
            RetryCommand: self._retry,
            ForkCommand: self._fork,
        }

    @answers
    @logged
    async def handle_text(
        self, actor: Actor, place: Place, text: str, files: list[Incoming] | None = None
    ) -> Outcome:
        """Parse and run one command typed by a user (`files`: attached to it)."""
        try:
            command = grammar.parse(scrub(text), max_goal_chars=self.settings.max_goal_chars)
        except UsageError as exc:
            return Outcome(ok=False, message=f"{exc.message}\n\n{exc.usage}")
        return await self.handle(actor, place, command, files)

    @answers
    @logged
    async def handle(
        self, actor: Actor, place: Place, command: Any, files: list[Incoming] | None = None
    ) -> Outcome:
        """Run one command. `files` attached to it go to the session it starts (a goal), or to
        the session of the thread it was typed in."""
        handler = self._handlers.get(type(command))
        if handler is None:
            return Outcome(ok=False, message=grammar.USAGE)
        try:
            if isinstance(command, GoalCommand):
                return await self.start(actor, place, command, files=files)
            outcome = await handler(actor, place, command)
            if files and place.thread is not None:
                received = await self.receive(actor, place, files)
                if received is not None:
                    outcome = outcome.model_copy(update={"message": f"{outcome.message}\n{received.message}"})
            return outcome
        except StoreError as exc:
            log.warning("store error while handling %s: %s", type(command).__name__, exc)
            return Outcome(ok=False, message=STORE_DOWN.format(exc))

    # ------------------------------------------------------------------ commands

    @answers
    @logged
    async def start(
        self,
        actor: Actor,
        place: Place,
        command: GoalCommand,
        llm_mode: str = "default",
        autostart: bool = True,
        files: list[Incoming] | None = None,
        extra: dict[str, Any] | None = None,
        title: str | None = None,
    ) -> Outcome:
        """Start a session for `actor`: checks who may, how many and how much, then opens its thread.
        `files`: attached to the goal; saved in its workspace before it starts, for the agent.
        `extra`: more of the session's fields (a fork's steps); `title`: what started it.
        At most STARTS_AT_ONCE at a time in this process."""
        if self._starting is None:
            self._starting = asyncio.Semaphore(STARTS_AT_ONCE)
        async with self._starting:
            return await self._start(actor, place, command, llm_mode, autostart, files, extra, title)

    async def _start(
        self,
        actor: Actor,
        place: Place,
        command: GoalCommand,
        llm_mode: str,
        autostart: bool,
        files: list[Incoming] | None,
        extra: dict[str, Any] | None,
        title: str | None,
    ) -> Outcome:
        s = self.settings
        if not s.may_start(actor.user_id):
            return Outcome(ok=False, message="You are not on the list of users allowed to start sessions.")
        if not s.llm_configured():
            return Outcome(ok=False, message="No LLM is configured: set OPENAI_API_KEY (or OPENAI_BASE_URL).")
        if (size := sum(len(g) for g in command.goals)) > s.max_goal_chars:  # whatever way it came
            return Outcome(
                ok=False,
                message=f"Your goals are {size:,} characters long; the limit is {s.max_goal_chars:,}.",
            )
        if command.ai_role and len(command.ai_role) > s.max_goal_chars:
            return Outcome(
                ok=False,
                message=f"The role is {len(command.ai_role):,} characters long; "
                f"the limit is {s.max_goal_chars:,}.",
            )
        user_key = f"{actor.platform}:{actor.user_id}"
        open_now = [x for x in await self.store.sessions_of(user_key) if x.state in ACTIVE]
        if len(open_now) >= s.max_sessions_per_user:
            ids = ", ".join(x.id for x in open_now)
            return Outcome(
                ok=False,
                message=f"You already have {len(open_now)} open sessions ({ids}); the limit is "
                f"{s.max_sessions_per_user}. Stop one first.",
            )
        spent = await self.store.get_spend(user_key, today())
        if spent >= s.user_daily_budget_usd:
            return Outcome(
                ok=False,
                message=f"You have spent ${spent:.2f} today, your daily budget of "
                f"${s.user_daily_budget_usd:.2f}.",
            )
        profile = await self.store.get_profile(channel_key(place))  # the channel's defaults
        limit = command.continuous_limit or (
            profiles.continuous_limit(profile, s) if command.continuous else None
        )
        fields: dict[str, Any] = {
            "owner": actor.user_id,
            "owner_name": actor.name,
            "place": place,
            "goals": scrub(list(command.goals)),
            "llm_mode": llm_mode,
            "continuous": command.continuous,
            "continuous_limit": limit,
            "speak": command.speak,
            "budget_usd": command.budget_usd,
        }
        if command.ai_name:
            fields["ai_name"] = scrub(command.ai_name)
        if command.ai_role:
            fields["ai_role"] = scrub(command.ai_role)
        session = await self._create({**profiles.apply(fields, profile), **(extra or {})})
        try:
            opened = await self._open_thread(session, actor.label, title)
        except Exception as exc:
            log.warning("session %s: opening its thread failed: %s", session.id, exc)
            await self.store.delete(session.id)
            return Outcome(ok=False, message=f"Could not post the session to the chat: {exc}")
        bind(session=session.id)  # for the rest of this call (see bot/logs.py)
        log.info("session %s: started by %s", session.id, actor.label)
        self.metrics.sessions_started.inc()
        note = ""
        if files:
            received = await self.receive(actor, opened, files, session_id=session.id)
            note = f" {received.message}" if received is not None else ""
        if autostart:
            self.runner.kick(session.id)
        return Outcome(
            ok=True,
            message=f"Started session {session.id} ({session.mode}).{note}",
            session_id=session.id,
            place=opened,
        )

    async def _open_thread(self, session: Session, owner: str, title: str | None = None) -> Place:
        """Post the session's root message and remember the thread it lives in."""
        place = session.place
        platform = self.engine.platforms.get(place.platform)
        if platform is None:
            return place
        header = self.redactor.model(header_view(session, owner, title))
        thread = await platform.open_session(place, header)
        if thread != place:
            await self.store.update(session.id, lambda x: setattr(x, "place", thread))
        await self.store.bind_place(thread.key, session.id, PLACE_TTL_S)
        return thread

    async def _create(self, fields: dict[str, Any]) -> Session:
        for _ in range(10):
            session = Session(id=grammar.new_session_id(), **fields)
            try:
                await self.store.create(session)
                return session
            except SessionExists:
                continue
        raise StoreError("could not find a free session id")

    async def _goal(self, actor: Actor, place: Place, command: GoalCommand) -> Outcome:
        return await self.start(actor, place, command)

    async def _find(self, session_id: str) -> Session | None:
        return await self.store.get(session_id) or await self.archive.get(session_id)

    def may_see(self, session: Session, actor: Actor, place: Place) -> bool:
        """A session is shown to its owner, an admin, and anyone asking from its own channel
        (they can read its thread anyway). To anyone else it does not exist: the same answer as
        for an unknown id, so ids cannot be probed."""
        return may_decide(session, actor, self.settings) or (
            place.platform == session.place.platform and place.channel == session.place.channel
        )

    async def _visible(self, actor: Actor, place: Place, session_id: str) -> Session | None:
        session = await self._find(session_id)
        return session if session is not None and self.may_see(session, actor, place) else None

    async def _status(self, actor: Actor, place: Place, command: StatusCommand) -> Outcome:
        if command.session_id is None:
            return await self._list(actor, place, ListCommand())
        session = await self._visible(actor, place, command.session_id)
        if session is None:
            return _unknown(command.session_id)
        return Outcome(ok=True, message=describe(session), session_id=session.id)

    async def _list(self, actor: Actor, place: Place, command: ListCommand) -> Outcome:
        sessions = await self.store.sessions_of(f"{actor.platform}:{actor.user_id}")
        if not sessions:
            return Outcome(ok=True, message="You have no sessions. Start one with: goal <your goal>")
        lines = [session_line(s) for s in sessions[:20]]
        return Outcome(ok=True, message="Your sessions:\n" + "\n".join(lines))

    async def _typed_decision(
        self, actor: Actor, place: Place, session_id: str, decision: Decision
    ) -> Outcome:
        """A decision typed as a command (not a button in the session's thread): a session the
        actor may not see is answered like an unknown one."""
        if await self._visible(actor, place, session_id) is None:
            return _unknown(session_id)
        return await self.decide(session_id, actor, decision)

    async def _stop(self, actor: Actor, place: Place, command: StopCommand) -> Outcome:
        return await self._typed_decision(actor, place, command.session_id, Decision(action="stop"))

    async def _approve(self, actor: Actor, place: Place, command: ApproveCommand) -> Outcome:
        decision = Decision(action="approve", count=command.count)
        return await self._typed_decision(actor, place, command.session_id, decision)

    async def _allow(self, actor: Actor, place: Place, command: AllowCommand) -> Outcome:
        decision = Decision(action="allow_tool", text=command.tool)
        return await self._typed_decision(actor, place, command.session_id, decision)

    async def _feedback(self, actor: Actor, place: Place, command: FeedbackCommand) -> Outcome:
        decision = Decision(action="feedback", text=command.text)
        return await self._typed_decision(actor, place, command.session_id, decision)

    async def _pause(self, actor: Actor, place: Place, command: PauseCommand) -> Outcome:
        return await self._typed_decision(actor, place, command.session_id, Decision(action="pause"))

    async def _resume(self, actor: Actor, place: Place, command: ResumeCommand) -> Outcome:
        limit = (command.continuous_limit or self.settings.continuous_limit) if command.continuous else None
        decision = Decision(action="resume", continuous_limit=limit)
        return await self._typed_decision(actor, place, command.session_id, decision)

    # ------------------------------------------------------------------ steering

    async def _goals(self, actor: Actor, place: Place, command: GoalsCommand) -> Outcome:
        if command.action == "show":
            session = await self._visible(actor, place, command.session_id)
            if session is None:
                return _unknown(command.session_id)
            return Outcome(ok=True, message=wording.goals_text(session), session_id=session.id)
        decision = Decision(action="goals", change=command.action, index=command.index, text=command.text)
        return await self._typed_decision(actor, place, command.session_id, decision)

    async def _retry(self, actor: Actor, place: Place, command: RetryCommand) -> Outcome:
        return await self._typed_decision(actor, place, command.session_id, Decision(action="retry"))

    async def _fork(self, actor: Actor, place: Place, command: ForkCommand) -> Outcome:
        """A new session of `actor`'s, in a thread of its own where the command was typed, from a
        copy of a session (live or archived) at a step: its goals, name and role, the steps up
        to that one with their results, the task list when forked at its last step (else it plans
        again from what was done), and (for its owner or an admin: they alone may fetch them)
        its workspace's files. Not copied: the spend, the grants ("always allow"), the memory of
        the results."""
        source = await self._visible(actor, place, command.session_id)
        if source is None:
            return _unknown(command.session_id)
        ran = [x for x in source.steps if x.status in FINAL_STEPS]
        at = command.step if command.step is not None else (ran[-1].no if ran else 0)
        if at > len(source.steps):
            return Outcome(
                ok=False,
                message=f"Session {source.id} has {len(source.steps)} steps; fork it at one of them "
                f"(or at 0, for its goals only).",
            )
        if at > 0 and (cut := source.steps[at - 1]).status not in FINAL_STEPS:
            return Outcome(
                ok=False,
                message=f"Step {at} of session {source.id} has not run ({cut.status.value}): fork it at "
                f"step {at - 1}, or decide on step {at} first.",
            )
        steps = [x.model_copy(deep=True, update={"message": None}) for x in source.steps[:at]]
        extra: dict[str, Any] = {"steps": steps, "forked_from": source.id, "forked_at": at}
        if at > 0 and at == ran[-1].no:  # at its last step: its task list still holds
            extra.update(
                tasks=list(source.tasks),
                done_tasks=list(source.done_tasks),
                tasks_owed=source.tasks_owed if (source.tasks_owed or 0) <= at else None,
                state=SessionState.RUNNING,
                phase=Phase.THINK,
            )
        ai_name, ai_role = own_name_and_role(source)
        goal = GoalCommand(
            goals=list(source.goals),
            continuous=command.continuous,
            continuous_limit=command.continuous_limit,
            ai_name=ai_name,
            ai_role=ai_role,
        )
        title = f"Forked from session {source.id} at step {at}" if at else f"Forked from session {source.id}"
        outcome = await self.start(
            actor,
            place.model_copy(update={"thread": None}),
            goal,
            llm_mode=source.llm_mode,
            autostart=False,
            extra=extra,
            title=title,
        )
        if not outcome.ok or outcome.session_id is None:
            return outcome
        note = ""
        try:
            if not may_decide(source, actor, self.settings):
                note = " Its workspace's files stay with its owner: the new session starts without them."
            elif copied := await asyncio.to_thread(
                copy_workspace, self.settings.data_dir, source.id, outcome.session_id
            ):
                note = f" {copied} file{'s' if copied != 1 else ''} of its workspace copied."
        except OSError as exc:
            log.warning("fork %s -> %s: copying the workspace failed: %s", source.id, outcome.session_id, exc)
            note = " Its workspace's files could not be copied; the new session starts without them."
        self.runner.kick(outcome.session_id)
        await self.engine.post(
            source,
            NoticeView(
                session_id=source.id,
                text=f"{actor.label} forked this session at step {at} into session {outcome.session_id}.",
            ),
        )
        return outcome.model_copy(
            update={
                "message": f"Session {outcome.session_id} forked from {source.id} at step {at} "
                f"({'continuous' if command.continuous else 'step by step'}).{note}"
            }
        )

    # ------------------------------------------------------------------ schedules

    async def _schedule(self, actor: Actor, place: Place, command: ScheduleCommand) -> Outcome:
        s = self.settings
        if not s.may_start(actor.user_id):
            return Outcome(ok=False, message="You are not on the list of users allowed to start sessions.")
        user_key = f"{actor.platform}:{actor.user_id}"
        mine = await self.schedules.of(user_key)
        if len(mine) >= s.max_schedules_per_user:
            return Outcome(
                ok=False,
                message=f"You have {len(mine)} schedules; the limit is {s.max_schedules_per_user}. "
                "Remove one with: unschedule ID",
            )
        goals, name = list(command.goals), command.ai_name
        if command.template is not None:
            template = await self.store.get_template(template_key(place, command.template))
            if template is None:
                return _no_template(command.template)
            goals, name = list(template.goals), name or template.ai_name
        schedule = Schedule(
            id="pending",
            owner=actor.user_id,
            owner_name=actor.name,
            place=place.model_copy(update={"thread": None}),
            when=command.when,
            tz=command.tz or s.scheduler_timezone,
            goals=goals,
            name=name,
            template=command.template,
        )
        try:
            schedule = await self.schedules.create(schedule)
        except ScheduleError as exc:
            return Outcome(ok=False, message=str(exc))
        next_run = schedule.next_run()
        when = f"{next_run:%Y-%m-%d %H:%M %Z}" if next_run else "never"
        runs = f" Each run takes the goals of template {schedule.template}." if schedule.template else ""
        return Outcome(
            ok=True,
            message=f"Schedule {schedule.id} made: {schedule.when} ({schedule.tz}); next run {when}. "
            f"Each run is a continuous session in its own thread here.{runs}",
        )

    async def _schedules(self, actor: Actor, place: Place, command: SchedulesCommand) -> Outcome:
        mine = await self.schedules.of(f"{actor.platform}:{actor.user_id}")
        if not mine:
            return Outcome(
                ok=True, message='You have no schedules. Make one with: schedule "every day at 09:00" <goal>'
            )
        lines = []
        for sch in mine:
            next_run = sch.next_run()
            state = (
                "paused"
                if sch.paused
                else f"next {next_run:%Y-%m-%d %H:%M %Z}"
                if next_run
                else "no next run"
            )
            what = f"template {sch.template}" if sch.template else sch.goals[0][:50]
            lines.append(f"{sch.id}  {sch.when} ({sch.tz})  {state}  runs: {sch.runs}  {what}")
        return Outcome(ok=True, message="Your schedules:\n" + "\n".join(lines))

    async def _schedule_change(self, actor: Actor, place: Place, command: ScheduleChangeCommand) -> Outcome:
        schedule = await self.schedules.get(command.schedule_id)
        if schedule is None:
            return Outcome(ok=False, message=f"No schedule {command.schedule_id}.")
        allowed = (
            actor.is_admin
            or self.settings.is_admin(actor.user_id)
            or (actor.platform == schedule.place.platform and actor.user_id == schedule.owner)
        )
        if not allowed:
            return Outcome(
                ok=False,
                message=f"Only {schedule.owner_name or schedule.owner} or an admin can "
                f"change schedule {schedule.id}.",
            )
        if command.action == "unschedule":
            await self.schedules.delete(schedule.id)
            return Outcome(ok=True, message=f"Schedule {schedule.id} removed.")
        paused = command.action == "pause"
        await self.schedules.update(schedule.id, lambda x: setattr(x, "paused", paused))
        return Outcome(ok=True, message=f"Schedule {schedule.id} {'paused' if paused else 'resumed'}.")

    async def fire(self, schedule: Schedule, due: datetime) -> str | None:
        """Start the run of `schedule` due at `due`: a fresh continuous session in a new thread of
        the schedule's channel. The session id comes from (schedule, due), so a run starts once
        however many processes try. Returns the session id, or None when there was nothing to do."""
        s = self.settings
        notes = list(schedule.missed)
        spent = await self.store.get_spend(schedule.user_key, today())
        if spent >= s.user_daily_budget_usd:
            note = f"The run due at {due:%Y-%m-%d %H:%M %Z} was skipped: the daily budget is spent."

            def skip(x: Schedule) -> bool | None:
                if x.last_fire is not None and x.last_fire >= due:
                    return False
                x.last_fire = due
                x.waiting = None if x.waiting is not None and x.waiting <= due else x.waiting
                x.missed = [*x.missed[-4:], note]
                return None

            await self.schedules.update(schedule.id, skip)
            return None
        goals, name, role = schedule.goals, schedule.name, None
        if schedule.template is not None:
            template = await self.store.get_template(template_key(schedule.place, schedule.template))
            if template is None:
                notes.append(
                    f"Template {schedule.template} is gone: this run has the goals it had when the "
                    "schedule was made."
                )
            else:
                goals, name, role = template.goals, name or template.ai_name, template.ai_role
        profile = await self.store.get_profile(channel_key(schedule.place))
        fields: dict[str, Any] = {"ai_name": name, "ai_role": role, "budget_usd": None}
        fields = {k: v for k, v in profiles.apply(fields, profile).items() if v is not None}
        session = Session(
            id=firing_id(schedule.id, due),
            owner=schedule.owner,
            owner_name=schedule.owner_name,
            place=schedule.place,
            goals=goals,
            continuous=True,
            continuous_limit=profiles.continuous_limit(profile, s),
            schedule_id=schedule.id,
            **fields,
        )
        fired = session.id
        try:
            await self.store.create(session)
            created = True
        except SessionExists:  # another process started this run (and may have died since)
            created = False

        def record(x: Schedule) -> bool | None:
            if x.last_fire is not None and x.last_fire >= due:
                return False  # recorded already
            x.last_fire = due
            x.last_session = fired
            x.waiting = None if x.waiting is not None and x.waiting <= due else x.waiting
            x.runs += 1
            x.missed = []
            return None

        await self.schedules.update(schedule.id, record)
        if not created:
            return fired
        try:
            await self._open_thread(session, schedule.owner_name or schedule.owner, schedule.title)
        except Exception as exc:  # the run goes on; its messages go to the channel
            log.warning("schedule %s: opening the thread of %s failed: %s", schedule.id, fired, exc)
        if notes and (current := await self.store.get(fired)) is not None:  # read once: its thread is set
            for note in notes:
                await self.engine.post(current, NoticeView(session_id=fired, level="warning", text=note))
        log.info("schedule %s: run %s started (due %s)", schedule.id, fired, due)
        self.runner.kick(fired)
        return fired

    # ------------------------------------------------------------------ files in and out

    async def _owned(self, actor: Actor, place: Place, session_id: str) -> Session | Outcome:
        """A session whose files `actor` may have (its owner, an admin); an unknown answer else."""
        session = await self._visible(actor, place, session_id)
        if session is None:
            return _unknown(session_id)
        if not may_decide(session, actor, self.settings):
            return Outcome(
                ok=False, message=f"Only the owner of session {session_id} or an admin can get its files."
            )
        return session

    async def _files(self, actor: Actor, place: Place, command: FilesCommand) -> Outcome:
        session = await self._owned(actor, place, command.session_id)
        if isinstance(session, Outcome):
            return session
        found = await asyncio.to_thread(inbox.listing, workspace_of(self.settings.data_dir, session.id))
        return Outcome(ok=True, message=inbox.listing_text(session.id, found), session_id=session.id)

    async def _file(self, actor: Actor, place: Place, command: FileCommand) -> Outcome:
        session = await self._owned(actor, place, command.session_id)
        if isinstance(session, Outcome):
            return session
        workspace = workspace_of(self.settings.data_dir, session.id)
        try:
            name, data = await asyncio.to_thread(
                inbox.one_file, workspace, command.name, self.settings.max_file_bytes
            )
        except ToolError as exc:
            return Outcome(ok=False, message=without_server_paths(str(exc), workspace), session_id=session.id)
        except OSError as exc:
            return Outcome(ok=False, message=f"{command.name} could not be read: {exc.strerror}")
        platform = self.platforms.get(session.place.platform)
        if platform is None:
            return Outcome(
                ok=False, message=f"Session {session.id} lives on {session.place.platform}, not here."
            )
        try:
            await platform.upload(
                session.place, name, self.redactor.bytes(data), f"{name} from session {session.id}"
            )
        except PlatformError as exc:
            return Outcome(ok=False, message=f"Could not upload {name}: {exc}", session_id=session.id)
        return Outcome(
            ok=True,
            message=f"Uploaded {name} into the thread of session {session.id}.",
            session_id=session.id,
        )

    @answers
    @logged
    async def receive(
        self, actor: Actor, place: Place, files: list[Incoming], session_id: str | None = None
    ) -> Outcome | None:
        """Files posted in a session's thread (or attached to its goal, `session_id`): from its
        owner or an admin they are saved in its workspace and given to the agent in its next
        cycle; anywhere else, or from anyone else, they are left alone (None)."""
        if not files:
            return None
        try:
            session_id = session_id or await self.store.session_at(place.key)
            session = await self.store.get(session_id) if session_id else None
        except StoreError as exc:
            return Outcome(ok=False, message=STORE_DOWN.format(exc))
        if session is None or not may_decide(session, actor, self.settings):
            return None
        if session.state.terminal:
            return Outcome(
                ok=False,
                message=f"Session {session.id} has ended ({session.state.value}); "
                "files posted to it are not taken.",
                session_id=session.id,
            )
        room = inbox.MAX_INBOX - len(session.inbox)
        workspace = workspace_of(self.settings.data_dir, session.id)
        await asyncio.to_thread(workspace.mkdir, parents=True, exist_ok=True)
        lines: list[str] = []
        taken: list[Shared] = []
        usage = Usage()
        transcriber = self._transcriber(session)
        for incoming in files:
            if len(taken) >= room:
                lines.append(
                    f"{inbox.clean_name(incoming.name)} was not taken: "
                    f"{inbox.MAX_INBOX} files already wait for the agent."
                )
                continue
            saved = await inbox.save(self.settings, workspace, incoming, actor.label, transcriber)
            if saved.usage is not None:
                usage = add_usage(usage, saved.usage)
            if saved.shared is not None:
                taken.append(saved.shared)
                what = f"Saved {saved.shared.name} ({inbox.readable(saved.shared.size)})"
                if saved.shared.transcript is not None:
                    what += f"; it says: {saved.shared.transcript[:300]}"
                lines.append(what)
            if saved.problem:
                lines.append(saved.problem)

        def record(s: Session) -> bool | None:
            s.inbox.extend(taken)
            s.usage = add_usage(s.usage, usage)
            return None

        try:
            await self.store.update(session.id, record)
            if usage.cost_usd:
                await self.store.add_spend(session.user_key, today(), usage.cost_usd)
        except StoreError as exc:
            return Outcome(ok=False, message=STORE_DOWN.format(exc))
        if taken:
            lines.append("The agent sees them in its next cycle.")
        text = "\n".join(lines)
        await self.engine.post(
            session, NoticeView(session_id=session.id, level="info" if taken else "warning", text=text)
        )
        return Outcome(ok=bool(taken), message=text, session_id=session.id)

    def _transcriber(self, session: Session) -> Callable[[bytes, str], Awaitable[tuple[str, Usage]]] | None:
        """How an audio file is transcribed for `session` (None: AUDIO_TO_TEXT_PROVIDER is not usable)."""
        from bot.media import speech

        if speech.transcription_off(self.settings) is not None:
            return None

        async def transcribe(data: bytes, name: str) -> tuple[str, Usage]:
            try:
                heard = await speech.transcribe(self.settings, data, name, self.llm.media)
            except speech.MediaError as exc:
                raise ToolError(str(exc)) from None
            cost = self.settings.unit_price(heard.model, "minute") * heard.minutes
            return heard.text, Usage(calls=1, cost_usd=cost).priced_as(heard.model)

        return transcribe

    # ------------------------------------------------------------------ usage, profiles, templates

    def _is_admin(self, actor: Actor) -> bool:
        return actor.is_admin or self.settings.is_admin(actor.user_id)

    async def _usage(self, actor: Actor, place: Place, command: UsageCommand) -> Outcome:
        """A usage report: admins see anyone's on their platform, others their own."""
        admin = self._is_admin(actor)
        user = command.user
        if user is not None and user != actor.user_id and not admin:
            return Outcome(ok=False, message="Only admins can see another user's usage; `usage` shows yours.")
        if not admin:
            user = actor.user_id
        mine = user == actor.user_id
        query = usage.UsageQuery(
            days=command.days,
            platform=actor.platform,
            user=user,
            user_label=actor.label if mine else None,
            channel=place.channel if command.here else command.channel,
            mine=mine,
        )
        view = await usage.report(self.store, self.archive, query)
        return Shown(ok=True, message=wording.usage_text(view), view=view)

    def _may_change_profile(self, actor: Actor) -> bool:
        return self._is_admin(actor) or actor.manages_channel

    async def _profile(self, actor: Actor, place: Place, command: ProfileCommand) -> Outcome:
        key = channel_key(place)
        fresh = ChannelProfile(key=key, platform=place.platform, channel=place.channel, team=place.team)
        may_change = self._may_change_profile(actor)
        if command.action == "show":
            profile = await self.store.get_profile(key) or fresh
            view = profile_view(profile, self.settings, may_change)
            return Shown(ok=True, message=wording.profile_text(view), view=view)
        if not may_change:
            return Outcome(
                ok=False,
                message="Only channel admins and bot admins can change this channel's profile; "
                "`profile` shows it.",
            )
        field = command.field or ""
        value: Any = None
        if command.action == "set":
            try:
                value = profiles.parse_value(
                    field, self.redactor.text(scrub(command.value or "")), self.settings
                )
            except profiles.ProfileError as exc:
                return Outcome(ok=False, message=f"{exc}\n{grammar.help_text('profile')}")

        def change(p: ChannelProfile) -> None:
            setattr(p, field, value)
            p.updated_by, p.updated_at = actor.label, utcnow()

        profile = await self.store.change_profile(fresh, change) or fresh
        label = profiles.LABELS[field]
        note = (
            f"{label.capitalize()} set to {profiles.shown(field, value)} for sessions started here."
            if value is not None
            else f"{label.capitalize()} unset: sessions started here take the setting."
        )
        log.info("profile of %s: %s %s by %s", key, command.action, field, actor.label)
        view = profile_view(profile, self.settings, may_change, note)
        return Shown(ok=True, message=wording.profile_text(view), view=view)

    async def _template(self, actor: Actor, place: Place, command: TemplateCommand) -> Outcome:
        key = template_key(place, command.name)
        if command.action == "run":
            template = await self.store.get_template(key)
            if template is None:
                return _no_template(command.name)
            goal = GoalCommand(
                goals=template.goals,
                ai_name=template.ai_name,
                ai_role=template.ai_role,
                continuous=command.continuous,
                continuous_limit=command.continuous_limit,
            )
            return await self.start(actor, place.model_copy(update={"thread": None}), goal)
        if command.action == "delete":
            template = await self.store.get_template(key)
            if template is None:
                return _no_template(command.name)
            if not (self._is_admin(actor) or template.owner == actor.user_id):
                return Outcome(
                    ok=False,
                    message=f"Only {template.owner_name or template.owner} or an admin can delete "
                    f"template {command.name}.",
                )
            await self.store.delete_template(key)
            return Outcome(ok=True, message=f"Template {command.name} deleted.")
        return await self._save_template(actor, place, command, key)

    async def _save_template(self, actor: Actor, place: Place, command: TemplateCommand, key: str) -> Outcome:
        session_id = command.session_id
        if session_id is None and place.thread is not None:
            session_id = await self.store.session_at(place.key)
        if session_id is None:
            return Outcome(
                ok=False,
                message=f"Which session? template save {command.name} ID (or type it in the session's "
                "thread).",
            )
        session = await self._visible(actor, place, session_id)
        if session is None:
            return _unknown(session_id)
        if not may_decide(session, actor, self.settings):
            return Outcome(
                ok=False, message=f"Only the owner of session {session.id} or an admin can save its goals."
            )
        if not session.state.terminal:
            return Outcome(
                ok=False,
                message=f"Session {session.id} is still {wording.STATES[session.state]}: save its goals "
                "as a template once it has ended.",
            )
        ai_name, ai_role = own_name_and_role(session)
        template = Template(
            key=key,
            name=command.name,
            platform=place.platform,
            team=place.team,
            goals=list(session.goals),
            ai_name=ai_name,
            ai_role=ai_role,
            source=session.id,
            owner=actor.user_id,
            owner_name=actor.name,
        )
        replaced: list[Template] = []

        def replace(old: Template) -> bool:
            replaced.append(old)
            return self._is_admin(actor) or old.owner == actor.user_id

        if await self.store.save_template(template, replace) is None:
            old = replaced[-1]
            return Outcome(
                ok=False,
                message=f"Template {command.name} was saved by {old.owner_name or old.owner}; only they or "
                "an admin can replace it. Choose another name.",
            )
        again = " (replaced)" if replaced else ""
        goals = f"{len(template.goals)} goal{'s' if len(template.goals) != 1 else ''}"
        return Outcome(
            ok=True,
            message=f"Template {command.name} saved{again}: {goals} of session {session.id}. "
            f"Start it with: template run {command.name}",
            session_id=session.id,
        )

    async def _templates(self, actor: Actor, place: Place, command: TemplatesCommand) -> Outcome:
        mine = [
            t
            for t in await self.store.list_templates()
            if t.platform == place.platform and t.team == place.team
        ]
        if not mine:
            return Outcome(
                ok=True,
                message="No templates yet. Save one from a session that has ended: template save NAME ID",
            )
        lines = [
            f"{t.name}  {len(t.goals)} goal{'s' if len(t.goals) != 1 else ''}  by {t.owner_name or t.owner}  "
            f"{t.goals[0][:60]}"
            for t in sorted(mine, key=lambda t: t.name)
        ]
        return Outcome(ok=True, message="Templates (template run NAME):\n" + "\n".join(lines))

    async def _help(self, actor: Actor, place: Place, command: HelpCommand) -> Outcome:
        if command.topic == "policy":
            return Outcome(ok=True, message=policy.describe(self.settings, self.tools))
        return Outcome(ok=True, message=grammar.help_text(command.topic))

    # ------------------------------------------------------------------ buttons

    @answers
    @logged
    async def decide(self, session_id: str, actor: Actor, decision: Decision) -> Outcome:
        """A click or a typed decision. The session continues in the background."""
        if decision.text is not None:
            decision = decision.model_copy(update={"text": scrub(decision.text)})
        try:
            outcome = await self.engine.decide(session_id, actor, decision)
        except StoreError as exc:
            return Outcome(ok=False, message=STORE_DOWN.format(exc))
        if outcome.ok and decision.action not in ("stop", "pause", "goals"):
            self.runner.kick(session_id)
        return outcome

    @answers
    async def check(self, session_id: str, actor: Actor, decision: Decision) -> Outcome:
        """Whether `decision` would be taken now, without taking it (read-only): an adapter asks
        before it opens a form for it. ok=False says why not, as the decision would."""
        try:
            session = await self.store.get(session_id)
        except StoreError as exc:
            return Outcome(ok=False, message=STORE_DOWN.format(exc))
        if session is None:
            return Outcome(ok=False, message=f"No session {session_id} waiting for a decision.")
        result = decide_on(session, actor, decision, self.settings, utcnow())
        if isinstance(result, Refusal):
            return Outcome(ok=False, message=result.message, session_id=session_id)
        return Outcome(ok=True, message="", session_id=session_id)

    @answers
    async def reply_in_thread(self, actor: Actor, place: Place, text: str) -> Outcome | None:
        """A message typed in a session's thread. From the owner (or an admin) while a step waits,
        it is feedback on that step; anything else is conversation and is left alone (None)."""
        session_id = await self.store.session_at(place.key)
        if session_id is None or not text.strip():
            return None
        session = await self.store.get(session_id)
        if session is None or not may_decide(session, actor, self.settings):
            return None
        pending = session.pending_step
        if pending is None:
            return None
        return await self.decide(
            session_id, actor, Decision(action="feedback", step_no=pending.no, text=text)
        )

    async def sessions_of(
        self, actor: Actor, team: str | None = None, notice: str | None = None
    ) -> SessionListView:
        """A user's sessions (of one team, when given) and schedules, for a home page. A store
        that cannot be reached is said in the notice."""
        user_key = f"{actor.platform}:{actor.user_id}"
        try:
            sessions = [
                s
                for s in await self.store.sessions_of(user_key)
                if team is None or s.place.team in (None, team)
            ]
            schedules = await self.schedules.of(user_key)
            query = usage.UsageQuery(
                days=30, platform=actor.platform, user=actor.user_id, user_label=actor.label, mine=True
            )
            spent = await usage.report(self.store, self.archive, query)
            shown = [
                profile_view(p, self.settings, self._may_change_profile(actor))
                for p in await self.store.list_profiles()
                if p.platform == actor.platform and (team is None or p.team in (None, team))
            ]
        except StoreError as exc:
            sessions, schedules, spent, shown = [], [], None, []
            notice = f"The session store is not reachable right now ({exc}); try again shortly."
        listing = session_list_view(sessions, schedules, notice)
        return self.redactor.model(listing.model_copy(update={"usage": spent, "profiles": shown}))

    async def run_until_waiting(self, session_id: str) -> Session | None:
        """Drive a session (in the background, as every session runs) and wait until it needs a
        human or has ended: how the console takes its turns. Returns the session as it is then;
        one still planning or running is being driven by another process."""
        self.runner.kick(session_id)
        await self.runner.finished(session_id)
        return await self.session_of(session_id)

    async def session_of(self, session_id: str) -> Session | None:
        """A session as stored, for an adapter that shows a detail of it (None when unknown or
        when the store cannot be reached)."""
        try:
            return await self.store.get(session_id)
        except StoreError as exc:
            log.warning("store error looking up %s: %s", session_id, exc)
            return None

    async def session_in(self, place: Place) -> Session | None:
        """The session living in a place (thread), if any."""
        session_id = await self.store.session_at(place.key)
        return await self.store.get(session_id) if session_id else None


def _unknown(session_id: str) -> Outcome:
    return Outcome(ok=False, message=f"No session {session_id}.")


def own_name_and_role(session: Session) -> tuple[str | None, str | None]:
    """A session's agent name and role where they are its own (None: the defaults), for what is
    started from it (a template, a fork) to take."""
    fields = Session.model_fields
    name = session.ai_name if session.ai_name != fields["ai_name"].default else None
    role = session.ai_role if session.ai_role != fields["ai_role"].default else None
    return name, role


def template_key(place: Place, name: str) -> str:
    """Templates are named per platform and team (a workspace, a server)."""
    return ":".join((place.platform, place.team or "", name))


def _no_template(name: str) -> Outcome:
    return Outcome(ok=False, message=f"No template {name}. `templates` lists them.")
