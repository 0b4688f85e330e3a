"""Code execution with AutoGPT's names and arguments: `execute_python_code(code)` (the code is
saved as a file in the workspace and run), `execute_python_file(filename, args)` and
`execute_shell(command_line)`. Off unless EXECUTE_LOCAL_COMMANDS, as in AutoGPT, and offered only
when a sandbox works here (bot/sandbox: Docker or bubblewrap, or SANDBOX=none chosen explicitly).

Each command runs in the session's workspace with a clean environment (bot/tools/env.py) and the
sandbox's limits. The agent reads its exit code, stdout and stderr (shortened when long) and
which limit stopped it; the whole transcript is kept in the workspace and attached in chat.
Background processes end with the command.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from bot import sandbox
from bot.sandbox.base import Limits, RunRequest, RunResult, SandboxError, Stop
from bot.settings import Settings
from bot.tools.base import OutFile, ToolContext, ToolError, ToolOutput, ToolRegistry
from bot.tools.env import tool_env
from bot.tools.files import STEP_FILES, check_room, readable, relative, safe_path, workspace_bytes

REPORT_OVERHEAD = 600  # characters of a report that are not output


class CodeArgs(BaseModel):
    code: str = Field(min_length=1)


class PythonFileArgs(BaseModel):
    filename: str = Field(min_length=1)
    args: list[str] = Field(default_factory=list)

    @field_validator("args", mode="before")
    @classmethod
    def _words(cls, v: Any) -> Any:
        if v is None:
            return []
        if isinstance(v, str):  # "a b 'c d'" as a command line would split it
            try:
                return shlex.split(v)
            except ValueError as exc:
                raise ValueError(f"cannot split the arguments: {exc}") from None
        if isinstance(v, list):
            return [str(a) for a in v]
        return v


class ShellArgs(BaseModel):
    command_line: str = Field(min_length=1)


def off(settings: Settings) -> str | None:
    """Why the execution tools are off here (None: they are offered)."""
    if not settings.execute_local_commands:
        return "EXECUTE_LOCAL_COMMANDS is off"
    chosen = sandbox.select(settings)
    return None if chosen.sandbox is not None else chosen.reason


def register(registry: ToolRegistry) -> None:
    @registry.tool(
        "execute_python_code",
        "Run Python code: saved as a file in the workspace and run there, sandboxed",
        CodeArgs,
        outside_effects=True,
        off=off,
        section="Code execution",
    )
    async def execute_python_code(ctx: ToolContext, args: CodeArgs) -> ToolOutput:
        name = f"{STEP_FILES}/step-{ctx.step_no}-code.py"
        path = ctx.workspace / name
        await asyncio.to_thread(check_room, ctx, path, len(args.code.encode("utf-8")))
        await asyncio.to_thread(_save, path, args.code.encode("utf-8"))
        box = _sandbox(ctx.settings)
        return await _run(ctx, [box.python, name], f"python {name}", code_in=name)

    @registry.tool(
        "execute_python_file",
        "Run a Python file of the workspace with arguments, sandboxed",
        PythonFileArgs,
        outside_effects=True,
        off=off,
        section="Code execution",
    )
    async def execute_python_file(ctx: ToolContext, args: PythonFileArgs) -> ToolOutput:
        path = safe_path(ctx.workspace, args.filename)
        if not path.is_file():
            raise ToolError(f"No such file: {args.filename}")
        name = relative(path, ctx.workspace)
        box = _sandbox(ctx.settings)
        return await _run(ctx, [box.python, name, *args.args], shlex.join(["python", name, *args.args]))

    @registry.tool(
        "execute_shell",
        "Execute Shell Command, non-interactive commands only (sh -c, sandboxed)",
        ShellArgs,
        outside_effects=True,
        off=off,
        section="Code execution",
    )
    async def execute_shell(ctx: ToolContext, args: ShellArgs) -> ToolOutput:
        return await _run(ctx, ["/bin/sh", "-c", args.command_line], args.command_line)


def _sandbox(settings: Settings) -> sandbox.Sandbox:
    selection = sandbox.select(settings)
    if selection.sandbox is None:
        raise ToolError(f"Code execution is not available here: {selection.reason}.")
    return selection.sandbox


async def _run(ctx: ToolContext, argv: list[str], shown: str, code_in: str | None = None) -> ToolOutput:
    settings = ctx.settings
    box = _sandbox(settings)
    await asyncio.to_thread(ctx.workspace.mkdir, parents=True, exist_ok=True)
    request = RunRequest(
        argv=argv,
        workspace=ctx.workspace,
        env=tool_env(settings, Path(box.workdir)),
        limits=Limits.of(settings),
        network=settings.sandbox_network,
        session_id=ctx.session.id,
    )
    try:
        result = await box.run(request)
    except SandboxError as exc:
        raise ToolError(f"The sandbox failed, the command did not run: {exc}") from None
    transcript = _transcript(shown, result, box.label)
    name = f"{STEP_FILES}/step-{ctx.step_no}-output.txt"
    kept: str | None = name
    try:
        await asyncio.to_thread(check_room, ctx, ctx.workspace / name, len(transcript))
        await asyncio.to_thread(_save, ctx.workspace / name, transcript)
    except (ToolError, OSError):
        kept = None
    text = report(result, settings, box.label, kept, code_in)
    used = await asyncio.to_thread(workspace_bytes, ctx.workspace)
    quota = settings.workspace_quota_mb * 1024 * 1024
    if used > quota:
        text += (
            f"\nThe workspace now holds {readable(used)}, more than its quota of {readable(quota)} "
            "(WORKSPACE_QUOTA_MB): delete files you no longer need; nothing more can be written until then."
        )
    files = [OutFile(name=name, content=transcript, comment=f"Full output of: {_short(shown)}")]
    return ToolOutput(text=text, ok=result.ok, files=files if kept else [])


def report(
    result: RunResult, settings: Settings, where: str, kept: str | None, code_in: str | None = None
) -> str:
    """What the agent reads: how the command ended, which limit stopped it, its output."""
    if result.exit_code is not None:
        ending = f"exit code {result.exit_code}"
    elif result.signal:
        ending = f"killed by signal {result.signal} ({_signame(result.signal)})"
    else:
        ending = "stopped"
    lines = [f"Ran in {where} for {result.duration_s:.2f} s: {ending}."]
    if code_in:
        lines.append(f"The code is saved as {code_in} (run it again with execute_python_file).")
    if result.stopped_by:
        lines.append("Stopped: " + _limit_words(result.stopped_by, settings) + ".")
    if result.hit:
        lines.append("It probably ran into a limit: " + _limit_words(result.hit, settings) + ".")
    budget = max(400, settings.max_result_chars - REPORT_OVERHEAD)
    out = result.stdout.decode("utf-8", "replace")
    err = result.stderr.decode("utf-8", "replace")
    out_room = max(budget // 2, budget - len(err))
    err_room = max(budget // 2, budget - len(out))
    where_all = f"the full output is in {kept}" if kept else "the full output could not be kept"
    for label, text, room in (("STDOUT", out, out_room), ("STDERR", err, err_room)):
        if not text:
            continue
        if len(text) > room:
            text = text[:room] + f"\n[... shortened: {len(text):,} characters in all; {where_all}]"
        lines.append(f"{label}:\n{text.rstrip()}")
    if not out and not err:
        lines.append("It printed nothing.")
    return "\n".join(lines)


def _limit_words(stop: Stop, settings: Settings) -> str:
    return {
        "time": f"it ran longer than {settings.sandbox_timeout_s:g} s (SANDBOX_TIMEOUT_S) and was killed",
        "cpu": f"it used more than {int(settings.sandbox_timeout_s) + 1} s of CPU time",
        "memory": f"it needed more than {settings.sandbox_memory_mb} MB of memory (SANDBOX_MEMORY_MB)",
        "processes": f"it tried to run more than {settings.sandbox_max_processes} processes or threads "
        "(SANDBOX_MAX_PROCESSES)",
        "file size": f"it tried to write a file larger than {readable(settings.max_file_bytes)} "
        "(MAX_FILE_BYTES)",
        "output": f"it printed more than {readable(settings.max_file_bytes)}; what came first is kept",
    }[stop]


def _signame(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown"


def _transcript(shown: str, result: RunResult, where: str) -> bytes:
    ending = f"exit code {result.exit_code}" if result.exit_code is not None else "no exit code"
    if result.signal:
        ending += f", signal {result.signal} ({_signame(result.signal)})"
    if result.stopped_by:
        ending += f", stopped by the {result.stopped_by} limit"
    head = f"$ {shown}\n# ran in {where}: {ending}, {result.duration_s:.2f} s\n".encode()
    return b"".join([head, b"\n--- stdout ---\n", result.stdout, b"\n--- stderr ---\n", result.stderr, b"\n"])


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
