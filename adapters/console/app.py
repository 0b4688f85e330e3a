"""`autogpt-bot console`: one session in the terminal, decided line by line like AutoGPT's CLI."""

from __future__ import annotations

import asyncio
import getpass
import re
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from pydantic_settings import BaseSettings

from adapters.console.platform import ConsoleAdapter
from bot.core import Core
from bot.decisions import Decision
from bot.grammar import GoalCommand
from bot.models import Actor, Place, Session, SessionState
from bot.presenter.build import step_view, summary_view, tasks_view
from bot.settings import Settings
from bot.store.base import StoreError

EXIT_FINISHED = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_STOPPED = 3
EXIT_LIMIT = 4
EXIT_WAITING = 5

PROMPT = (
    "Enter 'y' to authorise command, 'y -N' to run N continuous commands,{always} 'n' to exit program, "
    "or enter feedback for {name}..."
)
ALWAYS = " 'a' to always allow {tool} in this session,"
NO_LLM = (
    "No LLM is configured. Set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (an OpenAI-compatible "
    "server such as Ollama or vLLM), or USE_AZURE with AZURE_OPENAI_ENDPOINT, in .env or the "
    "environment; .env.template lists every setting."
)

Reader = Callable[[], Awaitable[str | None]]


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


def stdin_reader(stream: TextIO | None = None) -> Reader:
    stream = stream or sys.stdin

    async def read() -> str | None:
        line = await asyncio.to_thread(stream.readline)
        return None if line == "" else line.rstrip("\r\n")

    return read


APPROVE_N = re.compile(r"^y\s*-\s*(\d+)$", re.IGNORECASE)


def parse_decision(line: str) -> tuple[str, int, str | None] | None:
    """AutoGPT's keys: y, y -N, n (or exit), and a (always allow the command here); any other
    text is feedback; empty is invalid."""
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


async def open_core(settings: Settings) -> Core | int:
    """The started core; or, when it cannot start, the exit code (having said why in one line)."""
    if not settings.llm_configured():
        print(NO_LLM, file=sys.stderr)
        return EXIT_CONFIG
    try:
        return await Core.start(settings)
    except StoreError as exc:
        print(f"Cannot open the session store: {exc}", file=sys.stderr)
        return EXIT_ERROR


async def run_console(
    settings: Settings,
    args: ConsoleArgs,
    read: Reader | None = None,
    out: TextIO | None = None,
    redact: Sequence[BaseSettings] = (),
) -> int:
    """One session in the terminal. `redact`: other settings whose secrets must never show (the
    chat adapters' tokens, when they are in the same `.env`)."""
    out = out or sys.stdout
    read = read or stdin_reader()
    core = await open_core(settings)
    if isinstance(core, int):
        return core
    for config in redact:
        core.redactor.extend(config)
    console = ConsoleAdapter(out, workspaces=settings.data_dir / "workspaces")
    core.add_platform(console)
    actor = Actor(platform=console.name, user_id=getpass.getuser(), is_admin=True)
    try:
        if args.resume:
            session = await core.service.session_of(args.resume)
            if session is None:
                print(f"No session {args.resume} to resume.", file=sys.stderr)
                return EXIT_ERROR
            print(f"Resuming session {session.id} ({session.state.value}).", file=out)
            await show_where(core, console, session)
            session_id = session.id
        else:
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
            )
            place = Place(platform=console.name, channel="terminal")
            outcome = await core.service.start(actor, place, command, args.llm_mode, autostart=False)
            if not outcome.ok or outcome.session_id is None:
                print(outcome.message, file=sys.stderr)
                return EXIT_ERROR
            session_id = outcome.session_id
        return await loop(core, session_id, actor, read, out)
    except StoreError as exc:
        print(
            f"The session store failed: {exc}. The session is kept as far as it was saved.", file=sys.stderr
        )
        return EXIT_ERROR
    finally:
        await console.stop()
        await core.close()


async def show_where(core: Core, console: ConsoleAdapter, session: Session) -> None:
    """On --resume: the goals, the task list, and the step waiting for a decision."""
    for i, goal in enumerate(session.goals, 1):
        print(f"  {i}. {goal}", file=console.out)
    console.render(tasks_view(session))
    if session.pending_step is not None:
        console.render(step_view(session, session.pending_step, core.settings))
    elif session.state == SessionState.PAUSED:
        console.render(summary_view(session))


async def loop(core: Core, session_id: str, actor: Actor, read: Reader, out: TextIO) -> int:
    while True:
        session = await core.service.run_until_waiting(session_id)
        if session is None or session.state in (SessionState.PLANNING, SessionState.RUNNING):
            print(f"Session {session_id} is being run by another process, or is gone.", file=sys.stderr)
            return EXIT_ERROR
        state = session.state
        if state == SessionState.FINISHED:
            return EXIT_FINISHED
        if state == SessionState.FAILED:
            return EXIT_ERROR
        if state == SessionState.STOPPED:
            return EXIT_STOPPED
        if state == SessionState.PAUSED and session.pause_kind == "limit":
            print(f"Continue it with: autogpt-bot console --resume {session_id}", file=out)
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
            print(
                f"\nNo more input. Session {session_id} is saved; continue it with: "
                f"autogpt-bot console --resume {session_id}",
                file=out,
            )
            return EXIT_WAITING
        if not sys.stdin.isatty():  # piped input: show it, so the transcript reads like a terminal
            out.write(line + "\n")
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
