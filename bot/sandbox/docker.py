"""The Docker backend: one container per command, from SANDBOX_IMAGE, removed when it ends.

The container sees its workspace read-write at /workspace and nothing else of the host: no other
mount, the root filesystem read-only with a small private /tmp, no network (unless
SANDBOX_NETWORK), no capabilities, no privilege gain (no-new-privileges), and not root (the bot's
own uid:gid, or `nobody` when the bot is root: the workspace is handed to `nobody` first, as
bubblewrap does). Its environment is the command's alone. The engine enforces the limits:
memory (without swap), CPUs, processes, open files, file size, no core dumps, and a capped
json-file log, so a flood of output cannot fill the engine's disk. The wall clock and the
output limit are ours: past either, the container is killed.

The risk: whoever can use the Docker socket is root on the engine's machine (one `docker run -v
/:/host` away). Giving the bot the socket gives that to anything that takes over the bot: its
commands themselves never get the socket, but a flaw in the bot would. A rootless engine
(dockerd-rootless) or an engine in a dedicated VM reduces what that is worth.

When the bot itself runs in a container that reaches the host's engine, workspace paths must be
given as the engine's machine sees them: SANDBOX_DOCKER_DATA_DIR says where DATA_DIR is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeVar

import docker
import requests
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import LogConfig, Mount, Ulimit

from bot.sandbox.base import (
    KILL_WAIT_S,
    NOBODY,
    RunRequest,
    RunResult,
    Sandbox,
    SandboxError,
    Stop,
    diagnose,
    hand_over,
)
from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5  # connect(): how long an engine may take to answer
API_TIMEOUT_S = 60  # any other call but the long ones (wait, logs, pull)
DEFAULT_HOST = "unix:///var/run/docker.sock"
LABEL = "autogpt-bot.session"  # every container carries its session's id (find leftovers by it)
LOG_MIN_BYTES = 1 << 20
# Waiting for a container and following its two output streams block a thread each for as long
# as the command runs: they get threads of their own, so they never starve the default executor
# (asyncio.to_thread) the rest of the bot uses. Three per running command.
WAIT_THREADS = 96
_WAITS = ThreadPoolExecutor(max_workers=WAIT_THREADS, thread_name_prefix="docker-wait")
_PATH = re.compile(r"(?<![\w.:/])(?:/[\w.@+-]+){2,}/?")  # absolute paths, kept out of messages


class DockerSandbox(Sandbox):
    name: ClassVar[str] = "docker"
    label: ClassVar[str] = "a Docker container"

    def __init__(
        self, client: docker.DockerClient, settings: Settings, *, address: str, version: str
    ) -> None:
        self.client, self.address, self.version = client, address, version
        self.image = settings.sandbox_image
        self.data_dir = settings.data_dir.resolve()
        self.engine_data_dir = settings.sandbox_docker_data_dir
        self.as_root = os.geteuid() == 0
        self.user = f"{NOBODY}:{NOBODY}" if self.as_root else f"{os.getuid()}:{os.getgid()}"
        self._pull_lock = threading.Lock()  # one pull at a time, whichever event loop asks

    @classmethod
    def connect(cls, settings: Settings) -> DockerSandbox:
        """A sandbox on the engine DOCKER_HOST names (else the current Docker context, else the
        local socket), once it has answered; `SandboxError` with a short reason when none does."""
        address = engine_address()
        client: docker.DockerClient | None = None
        try:
            client = docker.from_env(timeout=CONNECT_TIMEOUT_S, max_pool_size=WAIT_THREADS)
            client.ping()
            version = str(client.version().get("Version") or "?")
        except (DockerException, requests.RequestException, OSError) as exc:
            if client is not None:
                client.close()
            raise SandboxError(f"no Docker engine answers at {address} ({_unreachable(exc)})") from None
        client.api.timeout = API_TIMEOUT_S
        return cls(client, settings, address=address, version=version)

    def describe(self) -> str:
        return f"engine {self.version} at {self.address}"

    def close(self) -> None:
        """Close the connections to the engine (tests; the bot keeps one sandbox for good)."""
        self.client.close()

    async def run(self, request: RunRequest) -> RunResult:
        workspace = request.workspace.resolve()
        source = self.engine_path(workspace)
        if self.as_root:
            await asyncio.to_thread(hand_over, workspace, NOBODY)
        # named before it exists, so that it is removed even when we are cancelled while the
        # engine creates it (and its id never came back)
        name = f"autogpt-bot-{_safe(request.session_id)}-{uuid.uuid4().hex[:12]}"
        creating: asyncio.Future[Container] | None = None
        try:
            await asyncio.to_thread(self.ensure_image)
            options = self.options(request, source, name)
            creating = _in_thread(self.client.containers.create, self.image, request.argv, **options)
            container = await asyncio.shield(creating)
            return await self._supervise(container, request)
        except (DockerException, requests.RequestException) as exc:
            raise SandboxError(_failed(exc)) from None
        finally:
            if creating is not None and not creating.done():  # cancelled meanwhile: let it finish
                await asyncio.wait([creating], timeout=API_TIMEOUT_S)
            await asyncio.to_thread(self._remove, name)

    # ------------------------------------------------------------------------ the container

    def engine_path(self, workspace: Path) -> str:
        """Where the engine finds `workspace`: the same path, or re-rooted from DATA_DIR to
        SANDBOX_DOCKER_DATA_DIR when the bot runs in a container of its own."""
        if self.engine_data_dir is None:
            return str(workspace)
        try:
            inside = workspace.relative_to(self.data_dir)
        except ValueError:
            raise SandboxError("the workspace is not under DATA_DIR, so the engine cannot find it") from None
        return str(PurePosixPath(self.engine_data_dir, *inside.parts))

    def options(self, request: RunRequest, source: str, name: str) -> dict[str, Any]:
        """How the container is made (docker.containers.create's arguments)."""
        limits = request.limits
        memory = limits.memory_mb * 1024 * 1024
        return {
            "name": name,
            "labels": {LABEL: request.session_id},
            "user": self.user,
            # the image's PATH, not this machine's (where its programs are)
            "environment": {**{k: v for k, v in request.env.items() if k != "PATH"}, "HOME": self.workdir},
            "working_dir": self.workdir,
            "hostname": "sandbox",
            "mounts": [Mount(target=self.workdir, source=source, type="bind", read_only=False)],
            "read_only": True,
            "tmpfs": {"/tmp": f"rw,nosuid,nodev,size={limits.file_bytes}"},
            "network_disabled": not request.network,
            "network_mode": "bridge" if request.network else "none",
            "mem_limit": memory,
            "memswap_limit": memory,  # equal: no swap
            "nano_cpus": int(limits.cpus * 1e9),
            "pids_limit": limits.max_processes,
            "ulimits": [
                Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
                Ulimit(name="fsize", soft=limits.file_bytes, hard=limits.file_bytes),
                Ulimit(name="core", soft=0, hard=0),
            ],
            "cap_drop": ["ALL"],
            "security_opt": ["no-new-privileges"],
            # we read the output as it comes; the log only has to hold it until then, and its
            # JSON lines take more room than the bytes they carry
            "log_config": LogConfig(
                type="json-file",
                config={"max-size": str(max(4 * limits.output_bytes, LOG_MIN_BYTES)), "max-file": "1"},
            ),
        }

    def ensure_image(self) -> None:
        """Pull SANDBOX_IMAGE when the engine does not have it (blocking)."""
        with self._pull_lock:
            try:
                self.client.images.get(self.image)
                return
            except ImageNotFound:
                pass
            log.info("pulling the sandbox image %s", self.image)
            try:  # errors come as the answer's status, or as a line of the stream once it began
                for line in self.client.api.pull(self.image, stream=True, decode=True):
                    if isinstance(line, dict) and line.get("error"):
                        raise SandboxError(f"could not pull the image {self.image}: {_clean(line['error'])}")
                self.client.images.get(self.image)
            except (DockerException, requests.RequestException) as exc:
                raise SandboxError(f"could not pull the image {self.image}: {_failed(exc)}") from None

    async def _supervise(self, container: Container, request: RunRequest) -> RunResult:
        """Start the container and wait for it within the wall clock, following stdout and
        stderr up to the output limit; past either it is killed. Then read how it ended."""
        limits = request.limits
        started = time.monotonic()
        await asyncio.to_thread(container.start)
        waiter = _in_thread(container.wait, timeout=limits.timeout_s + KILL_WAIT_S + API_TIMEOUT_S)
        outputs = [_Output(limits.output_bytes), _Output(limits.output_bytes)]
        readers = [
            _in_thread(outputs[0].follow, container, "stdout"),
            _in_thread(outputs[1].follow, container, "stderr"),
        ]
        pending: set[asyncio.Future[Any]] = {waiter, *readers}
        stopped: Stop | None = None
        while not waiter.done() and stopped is None:
            left = max(started + limits.timeout_s - time.monotonic(), 0)
            done, pending = await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                stopped = "time"
            elif any(out.over for out in outputs) and not waiter.done():
                stopped = "output"
        duration = time.monotonic() - started
        if stopped:
            with contextlib.suppress(APIError):  # it may have ended meanwhile
                await asyncio.to_thread(container.kill)
        if pending:  # its streams end with it
            await asyncio.wait(pending, timeout=KILL_WAIT_S)
        for future in (waiter, *readers):
            if future.done() and (error := future.exception()) is not None and stopped is None:
                raise error
        await asyncio.to_thread(container.reload)
        state = container.attrs.get("State") or {}
        code = int(state.get("ExitCode") or 0)
        if state.get("OOMKilled") and code != 0 and stopped is None:
            stopped = "memory"
        signal = code - 128 if 128 < code < 128 + 65 else None
        result = diagnose(
            RunResult(
                backend=self.name,
                exit_code=None if stopped else code,
                signal=signal,
                stdout=bytes(outputs[0].data),
                stderr=bytes(outputs[1].data),
                stopped_by=stopped,
                duration_s=duration,
            )
        )
        if state.get("OOMKilled") and result.stopped_by is None:  # a process of it was, not it
            result.hit = "memory"
        return result

    def _remove(self, name: str) -> None:
        """Remove the container whatever state it is in; never raises (blocking)."""
        try:
            self.client.api.remove_container(name, force=True)
        except NotFound:
            pass
        except (DockerException, requests.RequestException) as exc:
            log.warning("could not remove the sandbox container %s: %s", name, _failed(exc))


class _Output:
    """One output stream of a container, followed to its end and kept up to `cap` bytes; past
    the cap, `over` is set and reading stops (the container is then killed)."""

    def __init__(self, cap: int) -> None:
        self.cap, self.data, self.over = cap, bytearray(), False

    def follow(self, container: Container, which: str) -> None:
        stream = container.logs(stdout=which == "stdout", stderr=which == "stderr", stream=True, follow=True)
        try:
            for chunk in stream:
                room = self.cap - len(self.data)
                self.data += chunk[:room]
                if len(chunk) > room:
                    self.over = True
                    return
        finally:
            stream.close()  # shuts the connection down (a follow may still be streaming)...
            response = getattr(stream, "_response", None)  # ...but leaves its socket open
            if response is not None:
                response.close()


def _in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
    """`fn` in a thread of _WAITS. Whatever it raises is retrieved even when nobody awaits it
    any more (after a cancellation), so it is not reported as lost."""
    future = asyncio.get_running_loop().run_in_executor(_WAITS, lambda: fn(*args, **kwargs))
    future.add_done_callback(lambda f: f.cancelled() or f.exception())
    return future


def engine_address() -> str:
    """The engine the Docker SDK talks to, as the Docker CLI would say it."""
    host = os.environ.get("DOCKER_HOST")
    if not host:
        with contextlib.suppress(Exception):
            from docker.context.api import ContextAPI

            host = ContextAPI.kwargs_from_context().get("base_url")
    return host or DEFAULT_HOST


def _unreachable(exc: BaseException) -> str:
    """Why an engine did not answer, in a few words."""
    text = str(exc)
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("No such file or directory", "no such socket"),
        ("Permission denied", "permission denied: the bot's user may not use the socket"),
        ("timed out", f"no answer within {CONNECT_TIMEOUT_S} s"),
        ("Name or service not known", "unknown host"),
    ):
        if needle in text:
            return reason
    return _clean(text, 160) or type(exc).__name__


def _failed(exc: BaseException) -> str:
    """An engine's error as a short message for the agent: what the engine said, without URLs,
    tracebacks or paths."""
    if isinstance(exc, APIError):
        said = exc.explanation if isinstance(exc.explanation, str) and exc.explanation else str(exc)
        if "bind source path does not exist" in said:
            return (
                "the Docker engine does not find the workspace where it was told to look: "
                "SANDBOX_DOCKER_DATA_DIR must say where DATA_DIR is on the engine's machine"
            )
        return f"the Docker engine said: {_clean(said)}"
    if isinstance(exc, requests.RequestException):
        return f"the Docker engine stopped answering ({_unreachable(exc)})"
    return f"Docker failed: {_clean(str(exc)) or type(exc).__name__}"


def _clean(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    line = _PATH.sub("<path>", line)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _safe(session_id: str) -> str:
    """A session id as part of a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*)."""
    return re.sub(r"[^a-zA-Z0-9_.-]", "-", session_id)[:40] or "x"
