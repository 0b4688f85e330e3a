"""What every sandbox backend takes and gives back.

A backend runs one command (`RunRequest`: an argument vector, the session's workspace, the
environment, the limits) and says how it ended (`RunResult`): its exit code, what it wrote on
stdout and stderr (each kept up to `Limits.output_bytes`), how long it took and, when a limit
stopped it, which one. The command sees the workspace at `Sandbox.workdir` and runs Python with
`Sandbox.python`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from bot.settings import Settings

log = logging.getLogger(__name__)

Stop = Literal["time", "cpu", "memory", "processes", "file size", "output"]
OPEN_FILES = 256  # RLIMIT_NOFILE of a sandboxed command
KILL_WAIT_S = 10.0  # how long a killed command may take to be gone
NOBODY = 65534  # the user a command runs as when the bot runs as root


class Limits(BaseModel):
    timeout_s: float = Field(gt=0)  # wall clock
    memory_mb: int = Field(gt=0)  # address space (bubblewrap) or memory (Docker)
    max_processes: int = Field(gt=0)
    cpus: float = Field(gt=0)  # Docker only: a share of the host's CPUs
    file_bytes: int = Field(gt=0)  # the largest file it may write
    output_bytes: int = Field(gt=0)  # stdout (and stderr) kept up to this; more stops the command
    open_files: int = OPEN_FILES

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(
            timeout_s=settings.sandbox_timeout_s,
            memory_mb=settings.sandbox_memory_mb,
            max_processes=settings.sandbox_max_processes,
            cpus=settings.sandbox_cpus,
            file_bytes=settings.max_file_bytes,
            output_bytes=settings.max_file_bytes // 2,  # each of stdout and stderr
        )


class RunRequest(BaseModel):
    argv: list[str] = Field(min_length=1)
    workspace: Path  # on this machine; the command sees it at `Sandbox.workdir`
    env: dict[str, str]  # all the command's environment: nothing else is passed
    limits: Limits
    network: bool = False
    session_id: str = ""


class RunResult(BaseModel):
    backend: str
    exit_code: int | None  # None: it did not exit on its own (a limit or a signal ended it)
    signal: int | None = None  # the signal that ended it, when one did
    stdout: bytes = b""
    stderr: bytes = b""
    stopped_by: Stop | None = None  # a limit that certainly stopped it
    hit: Stop | None = None  # a limit it probably ran into (read from what it said)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.stopped_by is None


class SandboxError(Exception):
    """The sandbox itself failed (not the command): the message says why, for the agent."""


class Sandbox(ABC):
    name: ClassVar[str]
    label: ClassVar[str]  # in words, for the agent and the log
    workdir: str = "/workspace"
    python: str = "python3"

    @abstractmethod
    async def run(self, request: RunRequest) -> RunResult: ...


# ---------------------------------------------------------------------------- local processes


async def run_process(
    argv: list[str],
    request: RunRequest,
    backend: str,
    *,
    cwd: str | Path,
    env: dict[str, str],
    pass_fds: tuple[int, ...] = (),
) -> RunResult:
    """Start `argv` and wait for it within the wall-clock limit, reading its output up to the
    output limit; past either, its process group is killed. For the backends that run a process
    on this machine (bubblewrap, none); the process limits are set by `argv` (prlimit)."""
    limits = request.limits
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # its own process group, killed as one
        pass_fds=pass_fds,
    )
    assert proc.stdout is not None and proc.stderr is not None
    over = asyncio.Event()  # set when a stream passed the output limit
    captures = [_Capture(limits.output_bytes, over), _Capture(limits.output_bytes, over)]
    readers = [
        asyncio.ensure_future(captures[0].read(proc.stdout)),
        asyncio.ensure_future(captures[1].read(proc.stderr)),
    ]
    overflow = asyncio.ensure_future(over.wait())
    ended = asyncio.ensure_future(_ended(proc, readers))
    stopped: Stop | None = None
    try:
        done, _ = await asyncio.wait(
            {ended, overflow}, timeout=limits.timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        if ended not in done:
            stopped = "output" if overflow in done else "time"
    finally:
        if proc.returncode is None:
            _kill(proc)
        try:  # once killed, the streams close at once (unless something escaped its group: none)
            await asyncio.wait_for(asyncio.shield(ended), KILL_WAIT_S)
        except TimeoutError:
            log.warning("a command's output streams stayed open after it was killed")
            transport = getattr(proc, "_transport", None)
            if transport is not None:
                transport.close()
        for task in (*readers, overflow, ended):
            task.cancel()
    outputs = [bytes(c.data) for c in captures]
    code = proc.returncode
    sig = -code if code is not None and code < 0 else (code - 128 if code and code > 128 else None)
    if stopped is not None:
        code = None
    elif code is not None and code < 0:  # ended by a signal
        code = None
    return diagnose(
        RunResult(
            backend=backend,
            exit_code=code,
            signal=sig if sig and sig < 65 else None,
            stdout=outputs[0],
            stderr=outputs[1],
            stopped_by=stopped,
            duration_s=time.monotonic() - started,
        )
    )


class _Capture:
    """A stream read to its end, kept up to `cap` bytes (the rest is read and dropped, so the
    process never blocks on a full pipe and its end is seen)."""

    def __init__(self, cap: int, over: asyncio.Event) -> None:
        self.cap, self.over, self.data = cap, over, bytearray()

    async def read(self, stream: asyncio.StreamReader) -> None:
        while chunk := await stream.read(65536):
            room = self.cap - len(self.data)
            if room > 0:
                self.data += chunk[:room]
            if len(chunk) > room:
                self.over.set()


async def _ended(proc: asyncio.subprocess.Process, readers: list[asyncio.Future[None]]) -> None:
    await asyncio.gather(*readers)
    await proc.wait()


def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def prlimit_args(limits: Limits, *, processes: bool = True) -> list[str]:
    """util-linux's prlimit in front of a command: its rlimits, inherited by all it starts. The
    CPU limit is a second past the wall clock's, so a busy loop is stopped by either."""
    cpu = int(limits.timeout_s) + 1
    args = [
        "prlimit",
        f"--cpu={cpu}:{cpu + 1}",
        f"--as={limits.memory_mb * 1024 * 1024}",
        f"--fsize={limits.file_bytes}",
        f"--nofile={limits.open_files}",
        "--core=0",
    ]
    if processes:
        args.append(f"--nproc={limits.max_processes}")
    return [*args, "--"]


# what a program says when a limit refuses it something, by the limit
_HINTS: list[tuple[Stop, re.Pattern[bytes]]] = [
    ("memory", re.compile(rb"MemoryError|Cannot allocate memory|std::bad_alloc|out of memory", re.I)),
    ("processes", re.compile(rb"Resource temporarily unavailable|fork: retry|can't fork|Cannot fork", re.I)),
    ("file size", re.compile(rb"File too large|File size limit exceeded", re.I)),
    ("cpu", re.compile(rb"CPU time limit exceeded", re.I)),
]


def diagnose(result: RunResult) -> RunResult:
    """Which limit stopped a command (a signal says so for certain: SIGXCPU, SIGXFSZ) or which
    it probably ran into (read from its stderr), so the agent is told."""
    if result.stopped_by is None and result.signal == signal.SIGXCPU:
        result.stopped_by = "cpu"
    if result.stopped_by is None and result.signal == signal.SIGXFSZ:
        result.stopped_by = "file size"
    tail = result.stderr[-4096:] + result.stdout[-1024:]
    hit = next((stop for stop, pattern in _HINTS if pattern.search(tail)), None)
    result.hit = hit if hit != result.stopped_by else None
    return result


def hand_over(workspace: Path, uid: int) -> None:
    """Make a workspace and everything in it `uid`'s (a command of a bot running as root runs as
    `nobody`). Symbolic links are changed themselves, never followed."""
    paths = [str(workspace)]
    for root, dirs, files in os.walk(workspace):
        paths += [os.path.join(root, name) for name in (*dirs, *files)]
    for path in paths:
        try:
            st = os.lstat(path)
            if st.st_uid != uid or st.st_gid != uid:
                os.lchown(path, uid, uid)
        except OSError:
            continue
