"""`autogpt-bot console`: one session in the terminal, decided line by line like AutoGPT's CLI."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import getpass
import os
import re
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings

from adapters.console.exits import (  # noqa: F401 - where the console's callers find them
    EXIT_CODES,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_FINISHED,
    EXIT_INTERRUPTED,
    EXIT_LIMIT,
    EXIT_STOPPED,
    EXIT_WAITING,
)
from adapters.console.platform import ConsoleAdapter
from bot.core import Core
from bot.decisions import Decision
from bot.grammar import GoalCommand
from bot.models import Actor, Place, Session, SessionState, StepStatus, utcnow
from bot.presenter.build import step_view, summary_view, tasks_view
from bot.presenter.wording import STATES
from bot.settings import Settings, env_file_used
from bot.store.base import OpenError, SessionStore, StoreError

COMMAND_WAIT_S = 2.0  # on Ctrl-C, how long a command that is running may take to have its result recorded

PROMPT = (
    "Enter 'y' to authorise command, 'y -N' to run N continuous commands,{always} 'r' to ask again, "
    "'n' to exit program, or enter feedback for {name}..."
)
ALWAYS = " 'a' to always allow {tool} in this session,"
NO_LLM = (
    "No LLM is configured. Set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (an OpenAI-compatible "
    "server such as Ollama or vLLM), or USE_AZURE with AZURE_OPENAI_ENDPOINT, in .env or the "
    "environment ({where}); .env.template lists every setting."
)

Reader = Callable[[], Awaitable[str | None]]


def env_file_note(cwd: Path | None = None) -> str:
    """Which `.env` was read, in words: "read /path/.env", or "no .env file in <cwd>"."""
    used = env_file_used(cwd)
    if used is not None:
        return f"read {used}"
    return f"no .env file in {(cwd or Path.cwd()).resolve()}"


@dataclass
class ConsoleArgs:
    goals: list[str] = field(default_factory=list)
    name: str | None = None
    role: str | None = None
    continuous: bool = False
    continuous_limit: int | None = None
    llm_mode: str = "default"
    resume: str | None = None
    speak: bool = False
    budget_usd: float | None = None  # this session's budget (--ai-settings' api_budget)


# --------------------------------------------------------------------------- --ai-settings FILE


class AISettingsError(Exception):
    """An --ai-settings file that cannot be used; the message is one line."""


class AISettingsFile(BaseModel):
    """AutoGPT's ai_settings.yaml."""

    model_config = ConfigDict(extra="forbid")

    ai_name: str | None = None
    ai_role: str | None = None
    ai_goals: list[str] = Field(default_factory=list, max_length=5)
    api_budget: float = Field(0.0, ge=0)  # 0: no budget of its own (SESSION_BUDGET_USD applies)


def load_ai_settings(path: Path) -> AISettingsFile:
    """Read and check an ai_settings.yaml; AISettingsError says what is wrong in one line."""
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dependency
        raise AISettingsError("--ai-settings needs PyYAML: pip install pyyaml") from None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AISettingsError(f"Cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise AISettingsError(f"{path} is not valid YAML{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise AISettingsError(f"{path} must be a mapping of ai_name, ai_role, ai_goals and api_budget")
    try:
        loaded = AISettingsFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(x) for x in first["loc"]) or "the file"
        message = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise AISettingsError(f"{path}: {key}: {message}") from None
    goals = [g.strip() for g in loaded.ai_goals]
    if any(not g for g in goals):
        raise AISettingsError(f"{path}: ai_goals: a goal cannot be empty")
    return loaded.model_copy(update={"ai_goals": goals})


def apply_ai_settings(args: ConsoleArgs, loaded: AISettingsFile) -> None:
    """The file's values, where the command line did not give one."""
    args.name = args.name or loaded.ai_name
    args.role = args.role or loaded.ai_role
    args.goals = args.goals or list(loaded.ai_goals)
    if loaded.api_budget > 0:
        args.budget_usd = loaded.api_budget


# --------------------------------------------------------------------------- input


def stdin_reader(stream: TextIO | None = None) -> Reader:
    """Lines from standard input, read in the event loop (never in a worker thread: Ctrl-C must end
    the program at once, not after the next Enter). A stream that cannot be watched (a regular file,
    a test's StringIO) is read directly: it never blocks."""
    stream = stream or sys.stdin
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd < 0:

        async def read_stream() -> str | None:
            line = stream.readline()
            return None if line == "" else line.rstrip("\r\n")

        return read_stream
    return FdReader(fd).read


class FdReader:
    """Reads lines from a file descriptor with the event loop's reader callbacks."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = ""
        self.eof = False
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def _line(self) -> str | None:
        if "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            return line.rstrip("\r")
        if self.eof:
            line, self.buffer = self.buffer, ""
            return line.rstrip("\r") if line else None
        return None

    async def read(self) -> str | None:
        while True:
            line = self._line()
            if line is not None or self.eof:
                if line is None:
                    self.eof = False  # a terminal's Ctrl-D: the next read may get more
                return line
            await self._fill()

    async def _fill(self) -> None:
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()

        def on_ready() -> None:
            if not ready.done():
                ready.set_result(None)

        try:
            loop.add_reader(self.fd, on_ready)
        except (PermissionError, ValueError, NotImplementedError):  # a regular file: never blocks
            on_ready()
        else:
            try:
                await ready
            finally:
                loop.remove_reader(self.fd)
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        if not data:
            self.buffer += self.decoder.decode(b"", final=True)
            self.eof = True
            return
        self.buffer += self.decoder.decode(data)


APPROVE_N = re.compile(r"^y\s*-\s*(\d+)$", re.IGNORECASE)


def parse_decision(line: str) -> tuple[str, int, str | None] | None:
    """AutoGPT's keys: y, y -N, n (or exit), a (always allow the command here) and r (set the
    step aside and ask the agent again); any other text is feedback; empty is invalid."""
    text = line.strip()
    if not text:
        return None
    low = text.lower()
    if low in ("y", "yes"):
        return ("approve", 1, None)
    if m := APPROVE_N.match(text):
        return ("approve", max(1, int(m.group(1))), None)
    if low in ("n", "no", "exit"):
        return ("stop", 1, None)
    if low in ("a", "always"):
        return ("allow_tool", 1, None)
    if low in ("r", "retry"):
        return ("retry", 1, None)
    return ("feedback", 1, text)


async def ask_goals(read: Reader, out: TextIO, args: ConsoleArgs) -> bool:
    """AutoGPT's start-up questions, for `run` without goals."""
    out.write("Name your AI (empty for AutoGPT): ")
    out.flush()
    name = await read()
    if name is None:
        return False
    args.name = name.strip() or args.name
    out.write(f"{args.name or 'AutoGPT'} is (empty for the default role): ")
    out.flush()
    role = await read()
    if role is None:
        return False
    args.role = role.strip() or args.role
    out.write("Enter up to 5 goals, one a line; an empty line ends.\n")
    while len(args.goals) < 5:
        out.write(f"Goal {len(args.goals) + 1}: ")
        out.flush()
        goal = await read()
        if goal is None or not goal.strip():
            break
        args.goals.append(goal.strip())
    return bool(args.goals)


# --------------------------------------------------------------------------- the core


async def open_core(settings: Settings, need_llm: bool = True) -> Core | int:
    """The started core; or, when it cannot start, the exit code (having said why in one line).
    `need_llm`: False for what only reads or changes stored sessions (list, stop)."""
    if need_llm and not settings.llm_configured():
        print(NO_LLM.format(where=env_file_note()), file=sys.stderr)
        return EXIT_CONFIG
    try:
        return await Core.start(settings)
    except OpenError as exc:  # the archive or the memory: it says which
        print(exc, file=sys.stderr)
        return EXIT_ERROR
    except StoreError as exc:
        print(f"Cannot open the session store: {exc}", file=sys.stderr)
        return EXIT_ERROR


def console_actor(name: str | None = None) -> Actor:
    return Actor(platform=ConsoleAdapter.name, user_id=getpass.getuser(), name=name, is_admin=True)


def state_words(session: Session) -> str:
    return STATES.get(session.state, session.state.value)


async def lease_left(store: SessionStore, session_id: str) -> float | None:
    """Seconds until the lease on a session lapses (None: nobody holds it, or the store cannot
    say)."""
    try:
        until = await store.lease_expiry(session_id)
    except StoreError:
        return None
    return None if until is None else max(0.0, until - time.time())


async def held_message(core: Core, session_id: str) -> str | None:
    """Why a session cannot be driven here: another process holds its lease. None when it is free."""
    left = await lease_left(core.store, session_id)
    if left is None:
        return None
    ttl = core.settings.lease_seconds
    seconds = max(1, round(left))
    if left < ttl * 2 / 3 - 1:  # a live holder renews it every third of its time
        return (
            f"Session {session_id} is still held by a process that stopped answering; it will be free "
            f"in {seconds} seconds. Run `autogpt-bot console --resume {session_id}` again then."
        )
    return (
        f"Session {session_id} is held by another process: one running it now, or one that stopped "
        f"answering a moment ago (then it will be free in {seconds} seconds; run "
        f"`autogpt-bot console --resume {session_id}` again then)."
    )


def age(when: datetime, now: datetime | None = None) -> str:
    seconds = max(0, int(((now or utcnow()) - when).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


async def list_sessions(settings: Settings, out: TextIO | None = None) -> int:
    """`autogpt-bot list`: this user's console sessions, newest first."""
    out = out or sys.stdout
    core = await open_core(settings, need_llm=False)
    if isinstance(core, int):
        return core
    try:
        actor = console_actor()
        sessions = await core.store.sessions_of(f"{actor.platform}:{actor.user_id}")
        if not sessions:
            print('You have no sessions. Start one with: autogpt-bot console "your goal"', file=out)
            return EXIT_FINISHED
        rows = [("ID", "STATE", "CYCLES", "SPENT", "AGE", "GOALS")]
        for s in sessions:
            goals = "; ".join(s.goals)
            goals = goals if len(goals) <= 70 else goals[:67] + "..."
            rows.append(
                (s.id, state_words(s), str(s.cycles), f"${s.usage.cost_usd:.4f}", age(s.created_at), goals)
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            cells = [r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].rjust(widths[2])]
            cells += [r[3].rjust(widths[3]), r[4].rjust(widths[4]), r[5]]
            print(core.redactor.text("  ".join(cells)), file=out)
        open_now = [s for s in sessions if not s.state.terminal]
        limit = settings.max_sessions_per_user
        print(f"{len(open_now)} open of at most {limit}; end one with: autogpt-bot stop ID", file=out)
        return EXIT_FINISHED
    except StoreError as exc:
        print(f"The session store failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        await core.close()


async def stop_session(settings: Settings, session_id: str, out: TextIO | None = None) -> int:
    """`autogpt-bot stop ID`: stop a session (its slot is free at once)."""
    out = out or sys.stdout
    core = await open_core(settings, need_llm=False)
    if isinstance(core, int):
        return core
    try:
        return await stop_in(core, session_id, console_actor(), out)
    finally:
        await core.close()


async def stop_in(core: Core, session_id: str, actor: Actor, out: TextIO) -> int:
    session = await core.service.session_of(session_id)
    if session is None:
        archived = await core.archive.get(session_id)
        if archived is None:
            print(f"No session {session_id}.", file=sys.stderr)
            return EXIT_ERROR
        session = archived
    if session.state.terminal:
        print(f"Session {session_id} has already {session.state.value}; nothing to stop.", file=out)
        return EXIT_FINISHED
    outcome = await core.service.decide(session_id, actor, Decision(action="stop"))
    if not outcome.ok:
        print(outcome.message, file=sys.stderr)
        return EXIT_ERROR
    stopped = await core.service.session_of(session_id) or session
    print(
        f"Session {session_id} stopped after {stopped.cycles} cycles (spent ${stopped.usage.cost_usd:.4f}).",
        file=out,
    )
    return EXIT_FINISHED


# --------------------------------------------------------------------------- one session


@dataclass
class Progress:
    """What the interrupt handler needs to know: the session this run works on."""

    session_id: str | None = None


async def run_console(
    settings: Settings,
    args: ConsoleArgs,
    read: Reader | None = None,
    out: TextIO | None = None,
    redact: Sequence[BaseSettings] = (),
) -> int:
    """One session in the terminal. `redact`: other settings whose secrets must never show (the
    chat adapters' tokens, when they are in the same `.env`). Ctrl-C ends it at once (exit 130),
    the session saved, saying how to continue it."""
    out = out or sys.stdout
    core = await open_core(settings)
    if isinstance(core, int):
        return core
    for config in redact:
        core.redactor.extend(config)
    console = ConsoleAdapter(out, workspaces=settings.data_dir / "workspaces")
    core.add_platform(console)
    progress = Progress()
    interrupted = False
    me = asyncio.current_task()
    loop_ = asyncio.get_running_loop()

    def on_interrupt() -> None:
        nonlocal interrupted
        if not interrupted and me is not None:
            interrupted = True
            me.cancel()

    handled = False
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        loop_.add_signal_handler(signal.SIGINT, on_interrupt)
        handled = True
    code = EXIT_ERROR
    try:
        code = await one_session(core, console, args, read or stdin_reader(), out, progress)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        code = EXIT_INTERRUPTED
    except StoreError as exc:
        print(
            f"The session store failed: {exc}. The session is kept as far as it was saved.", file=sys.stderr
        )
        code = EXIT_ERROR
    finally:
        if handled:
            loop_.remove_signal_handler(signal.SIGINT)
        try:
            if interrupted and progress.session_id is not None:
                await let_command_finish(core, progress.session_id)
        finally:
            await console.stop()
            await core.close()
    if interrupted:
        print(interrupted_message(progress.session_id), file=sys.stderr)
    return code


def interrupted_message(session_id: str | None) -> str:
    if session_id is None:
        return "\nInterrupted. No session was started."
    return (
        f"\nInterrupted. Session {session_id} is saved; continue it with: "
        f"autogpt-bot console --resume {session_id}"
    )


async def let_command_finish(core: Core, session_id: str, within: float = COMMAND_WAIT_S) -> None:
    """After Ctrl-C: a command that is running right now gets a moment to return and have its
    result recorded, so a command that ran is not reported as interrupted at the next resume."""
    deadline = time.monotonic() + within
    with contextlib.suppress(StoreError):
        while time.monotonic() < deadline:
            session = await core.store.get(session_id)
            last = session.last_step if session is not None else None
            if last is None or last.status != StepStatus.EXECUTING:
                return
            await asyncio.sleep(0.02)


async def one_session(
    core: Core, console: ConsoleAdapter, args: ConsoleArgs, read: Reader, out: TextIO, progress: Progress
) -> int:
    actor = console_actor()
    if args.resume:
        return await resume(core, console, args, actor, read, out, progress)
    if not args.goals and not await ask_goals(read, out, args):
        print("No goals given.", file=sys.stderr)
        return EXIT_CONFIG
    command = GoalCommand(
        goals=args.goals,
        continuous=args.continuous,
        continuous_limit=args.continuous_limit,
        ai_name=args.name,
        ai_role=args.role,
        speak=args.speak,
        budget_usd=args.budget_usd,
    )
    place = Place(platform=console.name, channel="terminal")
    outcome = await core.service.start(actor, place, command, args.llm_mode, autostart=False)
    if not outcome.ok or outcome.session_id is None:
        print(outcome.message, file=sys.stderr)
        return EXIT_ERROR
    session_id = progress.session_id = outcome.session_id
    return await loop(core, console, session_id, actor, read, out, fresh=True)


async def resume(
    core: Core,
    console: ConsoleAdapter,
    args: ConsoleArgs,
    actor: Actor,
    read: Reader,
    out: TextIO,
    progress: Progress,
) -> int:
    assert args.resume is not None
    session = await core.service.session_of(args.resume)
    if session is None:
        archived = await core.archive.get(args.resume)
        if archived is None:
            print(f"No session {args.resume} to resume.", file=sys.stderr)
            return EXIT_ERROR
        session = archived
    if session.state.terminal:
        reason = f" ({session.reason})" if session.reason else ""
        print(f"Session {session.id} has already {session.state.value}{reason}; nothing to resume.", file=out)
        return EXIT_FINISHED
    if session.state in (SessionState.PLANNING, SessionState.RUNNING) and (
        held := await held_message(core, session.id)
    ):
        print(held, file=sys.stderr)
        return EXIT_ERROR
    progress.session_id = session.id
    print(f"Resuming session {session.id} ({state_words(session)}).", file=out)
    await show_where(core, console, session)
    limit_paused = session.state == SessionState.PAUSED and session.pause_kind == "limit"
    if args.continuous or limit_paused:
        # an explicit choice to go on: one more allotment of cycles and budget (as `resume ID` in chat)
        limit = (args.continuous_limit or core.settings.continuous_limit) if args.continuous else None
        if not args.continuous:
            out.write(
                "Enter 'y' to continue it for one more allotment of cycles and budget, 'n' to stop it.\n"
                "Input: "
            )
            out.flush()
            line = await read()
            if line is None:
                return no_more_input(session.id, out)
            echo(line, out)
            decision = parse_decision(line)
            if decision is not None and decision[0] == "stop":
                return await stop_here(core, session.id, actor, out)
            if decision is None or decision[0] != "approve":
                print("Nothing changed.", file=out)
                return no_more_input(session.id, out, ended=False)
        outcome = await core.service.decide(
            session.id, actor, Decision(action="resume", continuous_limit=limit)
        )
        print(outcome.message, file=out)
        if not outcome.ok:
            return EXIT_ERROR
        resumed = await core.service.session_of(session.id)
        if resumed is not None:
            print(allotment(core.settings, resumed), file=out)
    return await loop(core, console, session.id, actor, read, out)


def allotment(settings: Settings, s: Session) -> str:
    """What a resumed session may still use, in one line."""
    cycles = s.cycle_limit(settings.max_cycles) - s.cycles
    budget = s.budget(settings.session_budget_usd) - s.usage.cost_usd
    how = (
        f"continuously for up to {s.continuous_limit - s.cycles} cycles"
        if s.continuous and s.continuous_limit
        else "continuously"
        if s.continuous
        else "step by step"
    )
    return f"It goes on {how}: {cycles} cycles and ${budget:.4f} of its budget left."


async def stop_here(core: Core, session_id: str, actor: Actor, out: TextIO) -> int:
    outcome = await core.service.decide(session_id, actor, Decision(action="stop"))
    if not outcome.ok:
        print(outcome.message, file=out)
        return EXIT_ERROR
    return EXIT_STOPPED


def echo(line: str, out: TextIO) -> None:
    if not sys.stdin.isatty():  # piped input: show it, so the transcript reads like a terminal
        out.write(line + "\n")


def no_more_input(session_id: str, out: TextIO, ended: bool = True) -> int:
    print(
        ("\nNo more input. " if ended else "")
        + f"Session {session_id} is saved; continue it with: autogpt-bot console --resume {session_id}",
        file=out,
    )
    return EXIT_WAITING


async def show_where(core: Core, console: ConsoleAdapter, session: Session) -> None:
    """On --resume: the goals, the task list, and the step waiting for a decision (or, when
    paused, why and what it has spent)."""
    for i, goal in enumerate(session.goals, 1):
        print(f"  {i}. {goal}", file=console.out)
    console.render(tasks_view(session))
    if session.pending_step is not None:
        console.render(step_view(session, session.pending_step, core.settings))
    elif session.state == SessionState.PAUSED:
        console.render(summary_view(session))


def failed_start(session: Session) -> bool:
    """A session that paused on an LLM error before it did anything: the LLM cannot be reached."""
    return (
        session.state == SessionState.PAUSED
        and session.pause_kind == "error"
        and not session.steps
        and session.usage.calls == 0
    )


async def loop(
    core: Core,
    console: ConsoleAdapter,
    session_id: str,
    actor: Actor,
    read: Reader,
    out: TextIO,
    fresh: bool = False,
) -> int:
    """Drive the session, asking for a decision each time it waits. `fresh`: it was started by
    this run (a start the LLM did not answer is stopped, not left open)."""
    while True:
        session = await core.service.run_until_waiting(session_id)
        if session is None or session.state in (SessionState.PLANNING, SessionState.RUNNING):
            held = await held_message(core, session_id) if session is not None else None
            print(
                held or f"Session {session_id} is being run by another process, or is gone.", file=sys.stderr
            )
            return EXIT_ERROR
        state = session.state
        if state == SessionState.FINISHED:
            return EXIT_FINISHED
        if state == SessionState.FAILED:
            return EXIT_ERROR
        if state == SessionState.STOPPED:
            return EXIT_STOPPED
        if fresh and failed_start(session):
            # said once, in the pause above; stopped quietly so it keeps no slot
            core.remove_platform(console)
            why = console_actor(name=f"{actor.user_id} (the LLM could not be reached at the start)")
            await core.service.decide(session_id, why, Decision(action="stop"))
            print(
                f"Session {session_id} could not start and was stopped (it keeps none of your "
                "session slots). Check the LLM settings (autogpt-bot check-config) and start again.",
                file=sys.stderr,
            )
            return EXIT_ERROR
        fresh = False
        if state == SessionState.PAUSED and session.pause_kind == "limit":
            print(
                f"Continue it with: autogpt-bot console --resume {session_id} "
                "(add --continuous --continuous-limit N to run N more cycles without asking)",
                file=out,
            )
            return EXIT_LIMIT
        if state == SessionState.PAUSED and session.pending_step is None:
            out.write("Enter 'y' to resume the session, 'n' to stop it.\nInput: ")
        else:
            pending = session.pending_step
            tool = pending.command.name if pending is not None else "finish"
            always = ALWAYS.format(tool=tool) if tool != "finish" else ""
            out.write(PROMPT.format(name=session.ai_name, always=always) + "\nInput: ")
        out.flush()
        line = await read()
        if line is None:
            return no_more_input(session_id, out)
        echo(line, out)
        decision = parse_decision(line)
        if decision is None:
            print("Invalid input format.", file=out)
            continue
        action, count, text = decision
        if state == SessionState.PAUSED and session.pending_step is None and action == "feedback":
            print("The session is paused: enter 'y' to resume it or 'n' to stop it.", file=out)
            continue
        outcome = await core.service.decide(
            session_id, actor, Decision(action=action, count=count, text=text)
        )
        if not outcome.ok:
            print(outcome.message, file=out)
