"""The agent cycle: planning (task creation + prioritisation), thinking (the execution agent
proposes a command), a human decision, executing, and updating the task list.

Nothing about a session is kept in process memory between steps: every step loads the session
from the store, does its work, and writes the result back with one compare-and-set whose
mutation re-checks the state, so a Stop click, a second process or a second click that got there
first wins and the late writer's change is dropped. A lease in the store makes sure only one
process drives a session at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from bot import decisions, inbox, policy, profiles
from bot.adapter import PlatformError
from bot.decisions import Decision, Refusal, Transition
from bot.llm import prompts, tokens
from bot.llm.client import LLMError, LLMReplyError, add_usage, cost
from bot.llm.schemas import ExecutionReply, TaskListReply
from bot.logs import bind, logged
from bot.models import (
    Actor,
    MessageRef,
    Outcome,
    Phase,
    Session,
    SessionState,
    Step,
    StepStatus,
    Usage,
    utcnow,
)
from bot.parts import Parts, UsesParts
from bot.presenter import wording
from bot.presenter.build import result_view, step_view, summary_view, tasks_view
from bot.presenter.views import NoticeView, ProgressView, View
from bot.tools import FINISH, OutFile, ToolContext, ToolError, ToolOutput
from bot.tools.files import STEP_FILES, error_text, keep_bytes, keep_whole, without_server_paths, workspace_of

log = logging.getLogger(__name__)

MAX_TASKS = 20
RESULT_VIEW_LIMIT = 1_000_000
TOOL_TIMEOUT_S = 300.0
RECORD_GRACE_S = 2.0  # on shutdown, how long a command that is ending may take to be recorded
RENEW_STOP_S = 2.0  # how long an ending drive waits for its lease renewer to stop
OWED_WAIT_S = 1.0  # a finished task-list update waits this long at most for the drive's next commit
PROGRESS_WAIT_S = 5.0  # a drive ends once its last progress (the clearing) was passed on, or after this
MAX_VISION_IMAGES = 4  # images shown to the model in one cycle (SMART_LLM_VISION)
INTERRUPTED = (
    "Interrupted: the process running this command stopped before recording its result. "
    "It may or may not have taken effect; check before repeating it."
)


@dataclass
class Ran:
    """A command's outcome: text for the agent, what it spent, whether it went well (`failed`:
    the tool itself failed, not merely the program it ran), files for the chat."""

    text: str
    usage: Usage
    ok: bool = True
    failed: bool = False
    files: list[OutFile] = field(default_factory=list)

    @classmethod
    def error(cls, text: str, usage: Usage) -> Ran:
        return cls(text, usage, ok=False, failed=True)


def sum_usage(first: Usage, *more: Usage) -> Usage:
    for usage in more:
        first = add_usage(first, usage)
    return first


def today() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def merge_priorities(before: list[str], reply: list[str]) -> list[str]:
    """Take the prioritised order, but never lose a task ("Do not remove any tasks")."""
    if not reply:
        return before
    if len(reply) >= len(before):
        return reply[:MAX_TASKS]
    ordered = [t for t in reply if t in before]
    ordered += [t for t in before if t not in ordered]
    return ordered[:MAX_TASKS]


@dataclass(eq=False)
class Owed:
    """A change a drive owes the store, carried by the drive's next commit: `mutate` applies it
    (or leaves the session as it is when it no longer applies), `usage` is what its work cost,
    `then` runs once it is stored."""

    mutate: Callable[[Session], bool | None]
    usage: Usage | None = None
    then: Callable[[Session], Awaitable[None]] | None = None


class Engine(UsesParts):
    def __init__(self, parts: Parts) -> None:
        super().__init__(parts)
        self.holder = f"engine-{uuid.uuid4().hex[:12]}"
        # The session each step of a drive saved last, so the next step need not read it back;
        # only for sessions being driven right now (emptied when their drive ends).
        self._fresh: dict[str, Session] = {}
        self._driving: set[str] = set()
        # What each session's drive is doing right now (for live progress: process memory on
        # purpose, it describes this process's work), and the latest view not yet shown.
        self._doing: dict[str, list[tuple[str, str, datetime]]] = {}
        self._shown: dict[str, ProgressView] = {}
        self._showing: dict[str, asyncio.Task[None]] = {}
        self._after: dict[str, asyncio.Task[None]] = {}  # a result's owed work, running beside a drive
        self._commits: dict[str, asyncio.Lock] = {}  # one commit at a time per session being driven
        # Small changes a drive owes the store (a posted step's message, a finished task-list
        # update), carried by its next commit instead of a commit each: at most two a cycle.
        self._owed: dict[str, list[Owed]] = {}
        # The step this drive marked executing when it was proposed (approved at once): it runs
        # here; found executing by anyone else (after a crash), it was interrupted.
        self._claimed: dict[str, int] = {}
        self._posted: dict[str, tuple[int, MessageRef]] = {}  # that step's message, until stored
        self._flushing: set[asyncio.Task[Session | None]] = set()

    # ------------------------------------------------------------------ driving

    @logged
    async def drive(self, session_id: str) -> Session | None:
        """Advance a session until it needs a human or ends. Returns its last state, or None when
        another process holds it."""
        ttl = self.settings.lease_seconds
        if not await self.store.acquire_lease(session_id, self.holder, ttl):
            return None
        stop_renewing = asyncio.Event()
        renewer = asyncio.create_task(self._renew(session_id, ttl, stop_renewing))
        self._driving.add(session_id)
        self._commits[session_id] = asyncio.Lock()
        try:
            while True:
                session = self._fresh.get(session_id) or await self.store.get(session_id)
                if session is not None:
                    bind(user=session.owner, platform=session.place.platform)
                if session is not None and session.state == SessionState.AWAITING_APPROVAL:
                    await self._post_unposted(session)
                if session is None or session.state not in (SessionState.PLANNING, SessionState.RUNNING):
                    return session
                try:
                    await self._advance(session)
                except Exception as exc:  # a bug must not lose the session: pause it, keep the trace in logs
                    log.exception("session %s: unexpected error", session_id)
                    await self._halt(  # its text may hold a path or worse: the log has the details
                        session_id,
                        SessionState.PAUSED,
                        f"internal error ({type(exc).__name__}); the details are in the bot's log",
                    )
        finally:
            try:
                await self._settle_after(session_id)
                if self._owed.get(session_id):  # what is owed lands before the session is let go
                    await self._commit(session_id, lambda s: None)
            finally:
                self._owed.pop(session_id, None)
                self._claimed.pop(session_id, None)
                self._posted.pop(session_id, None)
                self._driving.discard(session_id)
                self._fresh.pop(session_id, None)
                self._commits.pop(session_id, None)
                if (sender := self._showing.get(session_id)) is not None:  # the last word: cleared
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(asyncio.shield(sender), PROGRESS_WAIT_S)
                # the renewer is told, and cancelled; the drive does not wait on it for long: a
                # cancellation that arrives inside a Redis call can be lost on the way (redis-py
                # turns it into a pool timeout), and a renewer that went on renewing the lease
                # held a drive, and its worker's slot, for good
                stop_renewing.set()
                renewer.cancel()
                await asyncio.wait({renewer}, timeout=RENEW_STOP_S)
                with contextlib.suppress(Exception):
                    await self.store.release_lease(session_id, self.holder)

    async def _settle_after(self, session_id: str) -> None:
        """Wait for what a result left owed (the task list's update) before the drive lets the
        session go; when the drive is being cancelled (shutting down), cancel it: it is owed in
        the store and redone at the next start. Never raises but the drive's own cancellation."""
        after = self._after.pop(session_id, None)
        if after is None:
            return
        me = asyncio.current_task()
        if me is not None and me.cancelling():
            after.cancel()
        try:
            await after
        except asyncio.CancelledError:
            if me is not None and me.cancelling():
                after.cancel()
                raise
        except Exception:
            log.exception("session %s: updating the task list failed", session_id)

    async def _post_unposted(self, session: Session) -> None:
        """A step saved by a process that died before posting it (waiting for a human, or
        approved in advance and about to run): post it now, so every cycle is posted."""
        last = session.last_step
        unposted = (StepStatus.PENDING, StepStatus.APPROVED, StepStatus.EXECUTING)
        if last is None or last.message is not None or last.status not in unposted:
            return
        if self._claimed.get(session.id) == last.no:  # posted by this drive, its message owed
            return
        if session.place.platform not in self.platforms:
            return
        ref = await self.post(session, step_view(session, last, self.settings), needed=True)
        if ref is not None:
            await self._commit(session.id, lambda s: _set_message(s, last.no, ref), current=session)

    async def _renew(self, session_id: str, ttl: float, stop: asyncio.Event) -> None:
        """Renew the drive's lease every third of its time until `stop` is set (checked after
        every wait and every call, so a lost cancellation still ends it)."""
        while not stop.is_set():
            await asyncio.sleep(ttl / 3)
            if stop.is_set():
                return
            try:
                await self.store.acquire_lease(session_id, self.holder, ttl)
            except Exception:
                if stop.is_set():
                    return
                log.warning("session %s: could not renew the lease", session_id, exc_info=True)

    async def _advance(self, session: Session) -> None:
        if session.state == SessionState.PLANNING:
            await self._plan(session)
        elif session.phase == Phase.THINK:
            await self._think(session)
        elif session.phase == Phase.EXECUTE:
            await self._execute(session)
        else:  # a session saved by a version that updated the task list before thinking
            last = session.last_step.no if session.last_step else None
            await self._commit(session.id, lambda s: _owe_tasks(s, last), current=session)

    # ------------------------------------------------------------------ live progress

    @contextlib.asynccontextmanager
    async def doing(self, session: Session, phase: str, command: str | None = None) -> AsyncIterator[None]:
        """Tell the session's chat what is happening while the block runs (a spinner, a status
        line, "typing"); several phases may run at once."""
        entry = (phase, wording.doing(phase, command), utcnow())
        items = self._doing.setdefault(session.id, [])
        items.append(entry)
        self._progress(session)
        try:
            yield
        finally:
            items.remove(entry)
            if not items:
                self._doing.pop(session.id, None)
            self._progress(session)

    def _progress(self, session: Session) -> None:
        """Hand the current progress to the platform without waiting for it: one sender per
        session passes on the latest view only, so a slow or rate-limited chat never holds up
        the agent, and a start and its end never arrive out of order."""
        platform = self.platforms.get(session.place.platform)
        if platform is None:
            return
        items = self._doing.get(session.id, [])
        self._shown[session.id] = ProgressView(
            session_id=session.id,
            doing=[text for _, text, _ in items],
            phases=[phase for phase, _, _ in items],
            since=items[0][2] if items else None,
        )
        sender = self._showing.get(session.id)
        if sender is None or sender.done():
            self._showing[session.id] = asyncio.create_task(self._send_progress(session, platform))

    async def _send_progress(self, session: Session, platform: Any) -> None:
        try:
            while (view := self._shown.pop(session.id, None)) is not None:
                try:
                    await platform.progress(session.place, view)
                except Exception as exc:  # progress is a courtesy: never a reason to stop
                    log.info("session %s: progress not shown: %s", session.id, exc)
        finally:
            if self._showing.get(session.id) is asyncio.current_task():
                del self._showing[session.id]

    # ------------------------------------------------------------------ store helpers

    async def _commit(
        self,
        session_id: str,
        mutate: Callable[[Session], bool | None],
        usage: Usage | None = None,
        current: Session | None = None,
    ) -> Session | None:
        """One atomic transition. The LLM usage of the work is recorded in the same write, or on
        its own if the transition no longer applies (the money was spent either way). A driven
        session's commit also carries what its drive owes (`_owed`)."""
        owed: list[Owed] = []

        def apply(s: Session) -> bool | None:
            if mutate(s) is False:
                return False
            spent = usage
            for item in owed:  # each applies if it still can; its cost is recorded either way
                item.mutate(s)
                if item.usage is not None:
                    spent = add_usage(spent or Usage(), item.usage)
            if spent is not None:
                s.usage = add_usage(s.usage, spent)
            s.updated_at = utcnow()
            return None

        lock = self._commits.get(session_id) if session_id in self._driving else None
        async with lock or contextlib.nullcontext():
            owed = self._owed.pop(session_id, []) if session_id in self._driving else []
            # a drive's commits (its own and the task list's update beside it) go one at a time,
            # each from the newest copy: they never lose a race to each other and re-read the
            # session; a stale copy (another process, a click) only costs a retry
            if session_id in self._driving:
                known = self._fresh.get(session_id)
                if known is not None and (current is None or known.version > current.version):
                    current = known
            try:
                saved = await self.store.update(session_id, apply, current=current)
            except BaseException:
                if owed:  # not written: still owed
                    self._owed.setdefault(session_id, [])[:0] = owed
                raise
            if saved is None:
                self._fresh.pop(session_id, None)  # refused: the stored session is not what we knew
                if owed:
                    self._owed.setdefault(session_id, [])[:0] = owed
                    owed = []
            if saved is not None and session_id in self._driving:
                known = self._fresh.get(session_id)
                if known is None or known.version <= saved.version:
                    self._fresh[session_id] = saved
        for item in owed:
            if item.usage is not None:
                usage = add_usage(usage or Usage(), item.usage)
        if saved is not None:
            for item in owed:
                if item.then is not None:
                    await item.then(saved)
        if usage is not None and usage.calls:
            if saved is None:
                await self.store.update(session_id, lambda s: setattr(s, "usage", add_usage(s.usage, usage)))
            owner = saved or await self.store.get(session_id)
            if owner is not None:
                await self.store.add_spend(owner.user_key, today(), usage.cost_usd)
        return saved

    async def _halt(
        self,
        session_id: str,
        state: SessionState,
        reason: str,
        usage: Usage | None = None,
        kind: Literal["limit", "error", "chat"] = "error",
    ) -> Session | None:
        """Pause, stop or fail a session, saying why in its thread."""

        def mutate(s: Session) -> bool | None:
            if s.state.terminal:
                return False
            s.state = state
            s.reason = reason
            if state == SessionState.PAUSED:
                s.pause_kind = kind
                if kind == "limit":
                    s.continuous = False
                    s.approvals_left = 0
                else:
                    s.error = reason
            if state.terminal:
                s.finished_at = utcnow()
                if (p := s.pending_step) is not None:
                    p.status = StepStatus.REJECTED
            return None

        saved = await self._commit(session_id, mutate, usage)
        if saved is not None:
            log.info("session %s: %s (%s)", session_id, state.value, reason)
            await self._ended(saved)
        return saved

    async def _ended(self, session: Session) -> None:
        """After a session paused or ended: say so (aloud too, with --speak), archive what is final."""
        await self.post(session, summary_view(session))
        if session.speak:
            await self.speak(session, wording.spoken_summary(session), "summary")
        if session.state.terminal:
            self.metrics.ended(session)
            try:
                await self.archive.save(session)
            except Exception:
                log.exception("session %s: archiving failed", session.id)

    # ------------------------------------------------------------------ budgets

    async def _limit(
        self, session: Session, model: str, messages: list[dict[str, Any]], think: bool
    ) -> str | None:
        """Why the next call may not be made, or None. The call's cost is estimated before it is
        made (its prompt, and a full reply), so a run stops before it overspends, not after."""
        s = self.settings
        max_cycles = session.cycle_limit(s.max_cycles)
        if think and session.cycles >= max_cycles:
            return f"cycle limit reached: {session.cycles} of {max_cycles} cycles used"
        if (
            think
            and session.continuous
            and session.continuous_limit
            and session.cycles >= session.continuous_limit
        ):
            return f"continuous limit reached: {session.cycles} of {session.continuous_limit} cycles used"
        spent = session.usage.cost_usd
        budget = session.budget(s.session_budget_usd)
        daily = await self.store.get_spend(session.user_key, today())
        estimate = cost(s, model, tokens.upper_bound(messages), s.max_reply_tokens)
        if spent + estimate > budget or daily + estimate > s.user_daily_budget_usd:
            estimate = cost(s, model, tokens.count_messages(messages), s.max_reply_tokens)  # exactly
        if spent + estimate > budget:
            return (
                f"session budget reached: ${spent:.4f} spent of ${budget:.4f}; "
                f"the next call could cost ${estimate:.4f}"
            )
        if daily + estimate > s.user_daily_budget_usd:
            return f"daily budget reached: ${daily:.4f} spent today of ${s.user_daily_budget_usd:.4f}"
        return None

    def _token_limit(self, model: str, session: Session) -> int:
        """FAST_TOKEN_LIMIT for a fast model (FAST_LLM, or the session's channel profile's), else
        SMART_TOKEN_LIMIT."""
        profile = session.profile
        fast = model == self.settings.fast_llm or (profile is not None and model == profile.fast_llm)
        return self.settings.fast_token_limit if fast else self.settings.smart_token_limit

    # ------------------------------------------------------------------ phases

    async def _tasks_call(
        self, session: Session, messages: list[dict[str, Any]], model: str
    ) -> tuple[list[str], Usage]:
        reply, usage = await self.llm.structured(model, messages, TaskListReply, "task_list", strict=True)
        return reply.tasks, usage

    async def _prioritise(
        self, session: Session, tasks: list[str], model: str, usage: Usage
    ) -> tuple[list[str], Usage]:
        if len(tasks) <= 1:
            return tasks, usage
        limit = self._token_limit(model, session)
        msgs = prompts.prioritisation_messages(session, tasks, limit, self.settings.max_reply_tokens)
        probe = session.model_copy(update={"usage": add_usage(session.usage, usage)})
        if await self._limit(probe, model, msgs, think=False):
            return tasks, usage  # the next think call will stop the run with the reason
        try:
            ordered, more = await self._tasks_call(session, msgs, model)
        except LLMError as exc:
            exc.usage = add_usage(usage, exc.usage)
            raise
        return merge_priorities(tasks, ordered), add_usage(usage, more)

    async def _plan(self, session: Session) -> None:
        model = profiles.model_for(self.llm, session, "fast")
        msgs = prompts.creation_messages(
            session, self._token_limit(model, session), self.settings.max_reply_tokens
        )
        if reason := await self._limit(session, model, msgs, think=False):
            await self._halt(session.id, SessionState.PAUSED, reason, kind="limit")
            return
        try:
            async with self.doing(session, "planning"):
                created, usage = await self._tasks_call(session, msgs, model)
                tasks = created[:MAX_TASKS] or list(session.goals)
                ordered, usage = await self._prioritise(session, tasks, model, usage)
        except LLMError as exc:
            await self._llm_failed(session, exc)
            return

        def mutate(s: Session) -> bool | None:
            if s.state != SessionState.PLANNING:
                return False
            s.tasks = ordered
            s.state = SessionState.RUNNING
            s.phase = Phase.THINK
            return None

        saved = await self._commit(session.id, mutate, usage, current=session)
        if saved is not None:
            await self.show_tasks(saved)

    async def _think(self, session: Session) -> None:
        """The execution agent's next proposal: the one LLM call between a result (or a decision)
        and the next step. The work a result leaves owed (remembering it, updating the task list)
        runs beside it, lands in the task list message when ready and in the next prompt."""
        owed, running = session.tasks_owed, self._after.get(session.id)
        if owed is not None and (running is None or running.done()):
            # not awaited here: in a continuous run the next command may run meanwhile; the
            # drive waits for it before it lets the session go (bot/engine.py `drive`)
            self._after[session.id] = asyncio.create_task(self._after_result(session, owed))
        await self._propose(session)

    async def _propose(self, session: Session) -> None:
        settings = profiles.session_settings(self.settings, session)  # its channel profile's
        tools = self.tools.available(settings)
        model = profiles.model_for(self.llm, session, "smart")
        limit = self._token_limit(model, session)
        query = session.tasks[0] if session.tasks else "; ".join(session.goals)
        embedding: list[Usage] = []
        # thinking, as the chat shows it: until the reply is in (what follows is quick, and may
        # show the task list, which must not say "thinking" when it is done)
        async with self.doing(session, "thinking"):
            memories = await self.memory.relevant(session, query, spend=embedding.append)
            self.metrics.embedded(self.settings.embedding_model, embedding)
            budget = session.budget(settings.session_budget_usd)
            budget_left = max(0.0, budget - session.usage.cost_usd)
            cycles_left = session.cycle_limit(settings.max_cycles) - session.cycles
            if session.continuous and session.continuous_limit:
                cycles_left = min(cycles_left, session.continuous_limit - session.cycles)
            budget_line = prompts.budget_block(session, budget_left, budget, cycles_left)
            seen = len(session.inbox)
            shared_text, shared = await self._shared_message(session, limit)
            changes = len(session.goal_changes)
            untold = [c for c in session.goal_changes if not c.told]
            steered = prompts.goal_changes_text(untold) if untold else None
            msgs = prompts.execution_messages(
                session, tools, limit, settings.max_reply_tokens, memories, budget_line, shared, steered
            )
            if reason := await self._limit(session, model, msgs, think=True):
                await self._halt(session.id, SessionState.PAUSED, reason, kind="limit")
                return
            try:
                reply, usage = await self.llm.structured(model, msgs, ExecutionReply, "execution_reply")
            except LLMError as exc:
                exc.usage = sum_usage(exc.usage, *embedding)
                await self._llm_failed(session, exc)
                return
        usage = sum_usage(usage, *embedding)

        step = Step(
            no=len(session.steps) + 1,
            thoughts=reply.thoughts.to_thoughts(),
            command=reply.command.to_call(),
            shared=shared_text,
            steered=steered,
        )
        tool = self.tools.get(step.command.name, settings)
        await self._keep_long_args(session, step)
        if tool is None:
            step.status = StepStatus.INVALID
            names = ", ".join(t.name for t in tools)
            what = (
                f"The command '{step.command.name}' is not allowed here (TOOL_POLICY)"
                if policy.denied(step.command.name, settings)
                else f"Unknown command '{step.command.name}'"
            )
            step.notes.append(
                f"{what}. Use only the commands listed: {names}. Respond only in the specified JSON format."
            )
        else:
            try:
                tool.validate(step.command.args)
            except ToolError as exc:
                step.status = StepStatus.INVALID
                step.notes.append(str(exc))
        repeating = decisions.repeating(session, step)
        if repeating:
            step.notes.append(
                "You have proposed the same command with the same arguments three times in a row. "
                "It is not getting you closer to your goals: do something different, or finish."
            )
        n_before = len(session.steps)
        outside = tool is not None and tool.outside_effects

        def mutate(s: Session) -> bool | None:
            if s.state != SessionState.RUNNING or s.phase != Phase.THINK or len(s.steps) != n_before:
                return False
            # a lost race runs this again: each time from a copy of the proposal
            decisions.propose(s, step.model_copy(deep=True), outside, repeating, settings, utcnow())
            del s.inbox[:seen]  # the agent has been told of these; files shared meanwhile stay
            for change in s.goal_changes[:changes]:  # so of these goal changes (not of later ones)
                change.told = True
            if (last := s.steps[-1]).status == StepStatus.APPROVED:
                last.status = StepStatus.EXECUTING  # approved at once: claimed to run in this drive
            return None

        saved = await self._commit(session.id, mutate, usage, current=session)
        if saved is None:
            return
        self.metrics.cycles.inc()
        last = saved.steps[-1]
        claimed = last.status == StepStatus.EXECUTING
        if claimed:
            self._claimed[session.id] = last.no
        shown = last.model_copy(update={"status": StepStatus.APPROVED}) if claimed else last
        ref = await self.post(saved, step_view(saved, shown, settings), needed=True)
        if ref is not None:
            if claimed:  # stored with the step's result (or whatever this drive commits next)
                self._posted[session.id] = (step.no, ref)
                self._owe(session.id, Owed(lambda s: _set_message(s, step.no, ref)))
            else:  # a human decides next, maybe through another process: it must be there now
                await self._commit(session.id, lambda s: _set_message(s, step.no, ref), current=saved)
        if saved.speak and step.thoughts.speak:
            await self.speak(saved, step.thoughts.speak, f"step-{step.no}")

    async def _shared_message(self, session: Session, limit: int) -> tuple[str | None, dict[str, Any] | None]:
        """What the agent is told of files shared since its last cycle: the text (kept in the
        step, for its history) and the message (with the images themselves when SMART_LLM_VISION)."""
        if not session.inbox:
            return None, None
        text = tokens.truncate(inbox.describe_shared(session.inbox), max(200, limit // 4), note="")
        images = [i for i in session.inbox if i.image] if self.settings.smart_llm_vision else []
        if not images:
            return text, {"role": "user", "content": text}
        workspace = workspace_of(self.settings.data_dir, session.id)
        parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
        for item in images[:MAX_VISION_IMAGES]:
            url = await asyncio.to_thread(inbox.data_url, workspace, item)
            if url is not None:
                parts.append({"type": "image_url", "image_url": {"url": url, "detail": "low"}})
        return text, {"role": "user", "content": parts}

    async def speak(self, session: Session, text: str, name: str) -> None:
        """--speak: `text` as audio (TEXT_TO_SPEECH_PROVIDER), saved in the workspace and posted in
        the session's thread, its cost charged to the session. A failure is said, never raised."""
        from bot.media import speech

        if (why := speech.speech_off(self.settings)) is not None:
            await self.post(
                session, NoticeView(session_id=session.id, level="warning", text=f"Not spoken: {why}.")
            )
            return
        try:
            async with self.doing(session, "speaking"):
                audio = await speech.synthesize(self.settings, text, self.llm.media)
        except speech.MediaError as exc:
            await self.post(
                session, NoticeView(session_id=session.id, level="warning", text=f"Not spoken: {exc}")
            )
            return
        usage = Usage(
            calls=1, cost_usd=self.settings.unit_price(audio.model, "1k_chars") * audio.chars / 1000
        ).priced_as(audio.model)
        filename = f"speech/{name}.{audio.ext}"
        workspace = workspace_of(self.settings.data_dir, session.id)
        try:
            await asyncio.to_thread(keep_bytes, workspace, filename, audio.data)
        except OSError as exc:
            log.warning("session %s: could not keep %s: %s", session.id, filename, exc)
        if usage.cost_usd:
            await self._commit(session.id, lambda s: None, usage)
        platform = self.platforms.get(session.place.platform)
        if platform is None:
            return
        try:
            await platform.upload(
                session.place, filename, audio.data, f"{session.ai_name} says: {text[:200]}"
            )
        except PlatformError as exc:
            log.warning("session %s: posting %s failed: %s", session.id, filename, exc)

    async def _execute(self, session: Session) -> None:
        await self._post_unposted(session)
        step = session.last_step
        if step is None or step.status not in (StepStatus.APPROVED, StepStatus.EXECUTING):
            await self._commit(session.id, lambda s: _set_phase(s, Phase.THINK))
            return
        if step.status == StepStatus.EXECUTING and self._claimed.get(session.id) == step.no:
            running = await self._still_running(session, step)
            if running is None:
                return
        elif step.status == StepStatus.EXECUTING:  # its process died while it ran: say so, never rerun it
            saved = await self._commit(
                session.id, lambda s: _record(s, step.no, INTERRUPTED, StepStatus.INTERRUPTED)
            )
            if saved is not None:
                await self.post(
                    saved,
                    NoticeView(
                        session_id=session.id,
                        level="warning",
                        text=f"Step {step.no} ({step.command.name}): {INTERRUPTED}",
                    ),
                )
                await self._refresh_step(saved, step.no)
            return
        else:
            running = await self._commit(session.id, lambda s: _start(s, step.no), current=session)
            if running is None:
                return
        self._claimed.pop(session.id, None)

        if step.command.name == FINISH:
            reason = str(step.command.args.get("reason") or "goals accomplished")

            def finish(s: Session) -> bool | None:
                recorded = _record(s, step.no, reason, StepStatus.DONE)
                if s.state.terminal:  # stopped meanwhile: keep the record, not the finish
                    return recorded
                s.state = SessionState.FINISHED
                s.reason = reason
                s.finished_at = utcnow()
                return None

            saved = await self._commit(session.id, finish)
            if saved is not None:
                await self._refresh_step(saved, step.no)
                if saved.state == SessionState.FINISHED:
                    await self._ended(saved)
            return

        work = asyncio.ensure_future(self._run_and_record(running, step))
        try:
            saved, ran = await asyncio.shield(work)
        except asyncio.CancelledError:
            # shutting down (Ctrl-C, SIGTERM): a command that is ending gets a moment to have its
            # result recorded, so it is not reported as interrupted when it did finish
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(work), RECORD_GRACE_S)
            if not work.done():
                work.cancel()
            raise
        if saved is None:
            return
        await self._refresh_step(saved, step.no)
        files = [f.model_copy(update={"content": self.redactor.bytes(f.content)}) for f in ran.files]
        await self.post(saved, result_view(saved, step, ran.text, ran.ok, files))

    async def _still_running(self, session: Session, step: Step) -> Session | None:
        """A step this drive claimed when it was proposed runs only if nobody stopped the session
        meanwhile (a cheap read of the stored version; the session itself only when it changed).
        Stopped: the step is recorded as not run, and nothing runs."""
        if await self.store.stored_version(session.id) == session.version:
            return session
        stored = await self.store.get(session.id)
        last = stored.last_step if stored is not None else None
        if stored is None or last is None or last.no != step.no or last.status != StepStatus.EXECUTING:
            return None
        if stored.state == SessionState.RUNNING:
            return stored

        def not_run(s: Session) -> bool | None:
            last = s.last_step
            if last is None or last.no != step.no or last.status != StepStatus.EXECUTING:
                return False
            last.status = StepStatus.REJECTED
            last.decision = "not run: the session was stopped"
            return None

        self._claimed.pop(session.id, None)
        saved = await self._commit(session.id, not_run)
        if saved is not None:
            await self._refresh_step(saved, step.no)
        return None

    def _owe(self, session_id: str, item: Owed) -> None:
        """A change for the drive's next commit to carry (nothing is driving: stored now)."""
        if session_id in self._driving:
            self._owed.setdefault(session_id, []).append(item)
        else:
            asyncio.get_running_loop().create_task(self._commit(session_id, item.mutate, item.usage))

    async def _run_and_record(self, running: Session, step: Step) -> tuple[Session | None, Ran]:
        """Run the approved command and record its result at once, before anything else."""
        ran = await self._run_tool_telling(running, step)
        if ran.failed:
            self.metrics.tool_error(step.command.name)
        stored = await self._keep_long_result(running, step, ran.text)
        saved = await self._commit(
            running.id, lambda s: _record(s, step.no, stored, StepStatus.DONE), ran.usage, current=running
        )
        return saved, ran

    async def _run_tool_telling(self, session: Session, step: Step) -> Ran:
        """Run the step's command; once it has run for RUNNING_NOTICE_S, its message says it is
        running. Most commands end well before: their message goes from decided to done in one
        edit (a chat API call less per cycle, against the platforms' rate limits)."""
        notice = self.settings.running_notice_s
        async with self.doing(session, "running", step.command.name):
            tool = asyncio.ensure_future(self._run_tool(session, step))
            try:
                if notice == 0 or not (await asyncio.wait({tool}, timeout=notice))[0]:
                    await self._refresh_step(session, step.no)
                return await tool
            finally:
                if not tool.done():  # the drive was cancelled (shutting down): so is the command
                    tool.cancel()

    async def _run_tool(self, session: Session, step: Step) -> Ran:
        """Run a command; whatever goes wrong becomes an "Error: ..." result for the agent."""
        tool = self.tools.get(step.command.name, self.settings)
        if tool is None:
            return Ran.error(f"Error: unknown command '{step.command.name}'", Usage())
        ctx = ToolContext(
            session=session,
            settings=self.settings,
            workspace=workspace_of(self.settings.data_dir, session.id),
            step_no=step.no,
            llm=self.llm,
            memory=self.memory,
        )
        ctx.workspace.mkdir(parents=True, exist_ok=True)
        try:
            args = tool.validate(await self._full_args(ctx.workspace, step))
            result = await asyncio.wait_for(tool.run(ctx, args), timeout=TOOL_TIMEOUT_S)
        except ToolError as exc:
            return Ran.error(f"Error: {without_server_paths(str(exc), ctx.workspace)}", ctx.usage)
        except TimeoutError:
            return Ran.error(f"Error: {tool.name} did not finish within {TOOL_TIMEOUT_S:g} s", ctx.usage)
        except Exception as exc:
            log.exception("session %s: tool %s failed", session.id, tool.name)
            return Ran.error(f"Error: {tool.name} failed: {error_text(exc, ctx.workspace)}", ctx.usage)
        if isinstance(result, ToolOutput):
            return Ran(result.text, ctx.usage, ok=result.ok, files=result.files)
        return Ran(str(result), ctx.usage)

    # ------------------------------------------------------------------ bounded steps

    async def _keep_long_args(self, session: Session, step: Step) -> None:
        """Arguments longer than MAX_ARGS_CHARS are kept whole in a workspace file (used from
        there when the command runs) and cut in the step, so no reply makes every later store
        write of the session huge."""
        limit = self.settings.max_args_chars
        text = json.dumps(step.command.args, ensure_ascii=False)
        if len(text) <= limit:
            return
        name = f"{STEP_FILES}/step-{step.no}-args.json"
        workspace = workspace_of(self.settings.data_dir, session.id)
        await asyncio.to_thread(keep_whole, workspace, name, text)
        step.args_file = name
        step.command.args = cut_args(step.command.args, limit)
        step.notes.append(
            f"The arguments are {len(text):,} characters long: shown cut here, used whole from {name}."
        )

    async def _full_args(self, workspace: Path, step: Step) -> dict[str, Any]:
        if step.args_file is None:
            return step.command.args
        try:
            text = await asyncio.to_thread((workspace / step.args_file).read_text, encoding="utf-8")
            args = json.loads(text)
        except (OSError, ValueError):
            raise ToolError(
                f"The whole arguments of this step ({step.args_file}) are gone; propose the command again."
            ) from None
        if not isinstance(args, dict):
            raise ToolError(f"The arguments kept in {step.args_file} are not an object.")
        return args

    async def _keep_long_result(self, session: Session, step: Step, output: str) -> str:
        """The result as kept in the session: up to MAX_RESULT_CHARS, and a longer one whole in a
        workspace file the agent can read."""
        limit = self.settings.max_result_chars
        if len(output) <= limit:
            return output
        name = f"{STEP_FILES}/step-{step.no}-result.txt"
        try:
            workspace = workspace_of(self.settings.data_dir, session.id)
            await asyncio.to_thread(keep_whole, workspace, name, self.redactor.text(output))
            where = f"all of it is in {name} (read_file)"
        except OSError as exc:
            log.warning("session %s: could not keep the result of step %s: %s", session.id, step.no, exc)
            where = "the rest is not kept"
        return output[:limit] + f"\n[... cut: the result has {len(output):,} characters; {where}]"

    async def _after_result(self, session: Session, step_no: int) -> None:
        """What a result leaves owed, off the critical path: remember it, and update the task
        list (creation, then prioritisation only when creation added something). Lands in one
        atomic transition that applies only while the list is still owed for that step."""
        step = next((x for x in session.steps if x.no == step_no), None)
        usage = Usage()
        if step is not None and step.result is not None and step.status == StepStatus.DONE:
            remembered: list[Usage] = []
            text = f"Command {step.command.name} returned: {step.result}"
            await self.memory.remember(session, text, spend=remembered.append)
            self.metrics.embedded(self.settings.embedding_model, remembered)
            usage = sum_usage(usage, *remembered)
        model = profiles.model_for(self.llm, session, "fast")
        limit = self._token_limit(model, session)
        msgs = prompts.creation_messages(session, limit, self.settings.max_reply_tokens)
        current = session.tasks[0] if session.tasks else None
        rest = session.tasks[1:]
        ordered = rest
        if await self._limit(session, model, msgs, think=False) is None:
            try:
                async with self.doing(session, "tasks"):
                    created, more = await self._tasks_call(session, msgs, model)
                    usage = add_usage(usage, more)
                    known = set(rest) | set(session.done_tasks) | ({current} if current else set())
                    new = [t for t in created if t not in known]
                    combined = (rest + new)[:MAX_TASKS]
                    ordered = combined  # nothing new: the last prioritised order still holds
                    if new:
                        ordered, usage = await self._prioritise(session, combined, model, usage)
            except LLMError as exc:  # the list stays as it was; the next result tries again
                log.warning("session %s: the task list was not updated: %s", session.id, exc.message)
                usage = add_usage(usage, exc.usage)
                ordered = rest

        def mutate(s: Session) -> bool | None:
            if s.tasks_owed is None or s.tasks_owed < step_no or s.state.terminal:
                return False  # taken in already, or the session ended
            if current is not None and s.tasks[:1] == [current]:
                s.done_tasks.append(current)
            s.tasks = ordered
            if s.tasks_owed == step_no:  # a later result still owes its own update
                s.tasks_owed = None
            return None

        if session.id in self._driving:
            # the drive commits again soon (the next proposal, or the step it runs): that write
            # carries the list; if it has not come within OWED_WAIT_S (a slow LLM), it goes alone
            item = Owed(mutate, usage, self.show_tasks)
            self._owe(session.id, item)
            asyncio.get_running_loop().call_later(OWED_WAIT_S, self._flush_later, session.id, item)
            return
        saved = await self._commit(session.id, mutate, usage)
        if saved is not None:
            await self.show_tasks(saved)

    def _flush_later(self, session_id: str, item: Owed) -> None:
        if item in self._owed.get(session_id, []):
            task = asyncio.get_running_loop().create_task(self._commit(session_id, lambda s: None))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)

    async def _llm_failed(self, session: Session, exc: LLMError) -> None:
        if isinstance(exc, LLMReplyError):
            reason = f"The step failed: {exc.message}"
        else:
            reason = f"Paused: {exc.message}"
        await self._halt(session.id, SessionState.PAUSED, reason, exc.usage)

    # ------------------------------------------------------------------ decisions

    @logged
    async def decide(self, session_id: str, actor: Actor, decision: Decision) -> Outcome:
        """A human decision (bot/decisions.py), applied in one compare-and-set: a click that
        lost a race to another is decided again on what the winner left."""
        now = utcnow()
        result: Transition | Refusal | None = None

        def transition(s: Session) -> Session | bool:
            nonlocal result
            result = decisions.decide(s, actor, decision, self.settings, now)
            return result.session if isinstance(result, Transition) else False

        saved = await self.store.update(session_id, transition)
        if saved is None or not isinstance(result, Transition):
            if result is None:  # not in the store
                archived = await self.archive.get(session_id)
                message = (
                    f"Session {session_id} has ended ({archived.state.value})."
                    if archived is not None
                    else f"No session {session_id}."
                )
                return Outcome(ok=False, message=message)
            return Outcome(ok=False, message=result.message, session_id=session_id)
        log.info("session %s: %s by %s", session_id, decision.action, actor.label)
        if result.decided is not None:
            self.metrics.decided(result.decided.proposed_at, now)
        if (changed := result.decided.no if result.decided is not None else result.refresh) is not None:
            await self._refresh_step(saved, changed)
        if result.notice is not None:
            await self.post(saved, NoticeView(session_id=session_id, text=result.notice))
        if result.tasks_changed:
            await self.show_tasks(saved)
        if saved.state == SessionState.AWAITING_APPROVAL:  # it paused because the chat refused the step
            await self._post_unposted(saved)
        if saved.state.terminal:
            await self._ended(saved)
        return Outcome(ok=True, message=result.message, session_id=session_id)

    async def recover(self) -> list[str]:
        """Sessions to drive after a start: those the engine was working on (planning or running)
        whose lease is free. A command that was running is reported as interrupted by `drive`."""
        found = []
        for session_id in await self.store.active_ids():
            session = await self.store.get(session_id)
            if (
                session is not None
                and session.state in (SessionState.PLANNING, SessionState.RUNNING)
                and session.place.platform in self.platforms  # a process can only talk where it is connected
            ):
                found.append(session_id)
        return found

    # ------------------------------------------------------------------ chat output

    async def post(self, session: Session, view: View, *, needed: bool = False) -> MessageRef | None:
        """Post a view in the session's thread. A message the session cannot go on without
        (`needed`: a step with its buttons) that the chat refuses for good pauses the session,
        with the error recorded, instead of losing it; any other is logged."""
        platform = self.platforms.get(session.place.platform)
        if platform is None:
            return None
        try:
            return await platform.post(session.place, self.redactor.model(view))
        except PlatformError as exc:
            if not needed:
                log.warning("session %s: posting failed: %s", session.id, exc)
                return None
            await self._halt(
                session.id, SessionState.PAUSED, f"Paused: the chat refused a message: {exc}", kind="chat"
            )
            return None

    async def update(self, session: Session, ref: MessageRef | None, view: View) -> None:
        platform = self.platforms.get(session.place.platform)
        if platform is None or ref is None:
            return
        try:
            await platform.update(ref, self.redactor.model(view))
        except PlatformError as exc:
            log.warning("session %s: updating a message failed: %s", session.id, exc)

    async def _refresh_step(self, session: Session, step_no: int) -> None:
        step = next((s for s in reversed(session.steps) if s.no == step_no), None)
        if step is None:
            return
        ref = step.message
        if ref is None and (posted := self._posted.get(session.id)) is not None and posted[0] == step_no:
            ref = posted[1]  # posted by this drive, its message not stored yet
        if ref is not None:
            await self.update(session, ref, step_view(session, step, self.settings))

    async def show_tasks(self, session: Session) -> None:
        """The task list lives in one message, edited as it changes."""
        view = tasks_view(session)
        if session.task_message is not None:
            await self.update(session, session.task_message, view)
            return
        ref = await self.post(session, view)
        if ref is not None:
            await self._commit(session.id, lambda s: setattr(s, "task_message", ref), current=session)


def _set_message(session: Session, step_no: int, ref: MessageRef) -> bool | None:
    for step in reversed(session.steps):  # the newest, mostly: older steps are not touched
        if step.no == step_no:
            step.message = ref
            return None
    return False


def _start(s: Session, step_no: int) -> bool | None:
    """An approved step starts running (a human approved it, or it waited for its turn)."""
    last = s.last_step
    if s.state != SessionState.RUNNING or s.phase != Phase.EXECUTE or last is None or last.no != step_no:
        return False
    if last.status != StepStatus.APPROVED:
        return False
    last.status = StepStatus.EXECUTING
    return None


def _set_phase(session: Session, phase: Phase) -> bool | None:
    if session.state != SessionState.RUNNING:
        return False
    session.phase = phase
    return None


def _record(session: Session, step_no: int, result: str, status: StepStatus) -> bool | None:
    """Record a command's result. It ran, so it is recorded even if the session was stopped meanwhile."""
    last = session.last_step
    if last is None or last.no != step_no or last.status != StepStatus.EXECUTING:
        return False
    last.status = status
    last.result = result
    if session.state == SessionState.RUNNING and session.phase == Phase.EXECUTE:
        _owe_tasks(session, step_no)
    return None


def _owe_tasks(session: Session, step_no: int | None) -> bool | None:
    """After a result: think next, with the task list's update (and the memory of the result)
    owed, done beside the next proposal."""
    if session.state != SessionState.RUNNING:
        return False
    session.phase = Phase.THINK
    session.tasks_owed = step_no
    return None


def cut_args(args: dict[str, Any], limit: int) -> dict[str, Any]:
    """Arguments cut to about `limit` characters of JSON in all, for the stored step and the
    chat: each value gets its share, a longer one is cut with its length said."""
    shown = list(args.items())[:20]
    share = max(100, limit // max(1, len(shown)) - 40)
    out: dict[str, Any] = {}
    for key, value in shown:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        key = key[:100]
        out[key] = text[:share] + f" [... {len(text):,} characters in all]" if len(text) > share else value
    return out
