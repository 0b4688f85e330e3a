"""A local Docker Engine for tests: the part of the Engine API the sandbox's Docker backend uses,
over HTTP on 127.0.0.1 (``DOCKER_HOST=tcp://127.0.0.1:<port>``), so the Docker SDK runs unmodified.

It answers ``/_ping`` and ``/version``; images: inspect (``GET /images/{name}/json``) and pull
(``POST /images/create``, a stream of JSON lines, its errors either as the answer's status or as
an ``error`` line once the stream began); containers: create, inspect, start, wait, logs (the
multiplexed stream: an 8-byte header per frame saying stdout or stderr and the length; ``follow``
streams until the container ends), kill and delete. Paths may carry an API version prefix
(``/v1.45/...``) or not. Errors have the engine's shape (``{"message": ...}``) and wording, so
the SDK raises what it would (``ImageNotFound``, ``NotFound``, ``APIError``).

A container really runs: its command starts in bubblewrap (/usr read-only, the binds and tmpfs
of its HostConfig, its working directory, exactly its environment over the image's PATH and
LANG, no network when NetworkMode is none, a read-only root when ReadonlyRootfs, the nofile,
fsize and core ulimits through prlimit, and as its User when this process is root). Memory, CPU
and process limits are recorded, not enforced. ``POST /kill`` and a forced delete kill it.

Every request is recorded (``engine.calls``, ``engine.created``), and which containers were made
and removed is kept (``engine.made``, ``engine.removed``)::

    with FakeDockerEngine() as engine:
        monkeypatch.setenv("DOCKER_HOST", engine.docker_host)
        engine.images.clear()                      # the image must be pulled
        engine.fail("start", 500, "driver failed")  # the next start fails
        engine.fail("pull", 200, "network down")     # the next pull breaks off mid-stream
        engine.fail("oom")                          # the next container started is OOM-killed
        engine.created[-1]["HostConfig"]["Memory"]

``FakeDockerEngine`` is a ``ThreadServer`` (tests/fakes/server.py): its own thread and event loop,
so a blocking client in the test's thread or loop can use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import re
import signal
import struct
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.fakes.server import HOST, Failure, Failures, ThreadServer

ENGINE_VERSION = "28.2.2"
API_VERSION = "1.50"
IMAGE = "python:3.11-slim"
IMAGE_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime")
STDOUT, STDERR = 1, 2
PIPE_GRACE_S = 2.0

Handler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Call:
    """One request: its method, its path without the version prefix, its query, its JSON body."""

    method: str
    path: str
    route: str  # create, start, wait, logs, kill, delete, inspect, ping, version, image, pull
    query: dict[str, str]
    body: Any = None


@dataclass
class FakeContainer:
    id: str
    name: str
    config: dict[str, Any]  # the create request's body
    created: str
    status: str = "created"  # created, running, exited
    exit_code: int = 0
    oom_killed: bool = False
    removed: bool = False
    pid: int = 0
    process: asyncio.subprocess.Process | None = None
    supervisor: asyncio.Future[None] | None = None
    logs: list[tuple[int, bytes]] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def inspect(self) -> dict[str, Any]:
        config = {k: v for k, v in self.config.items() if k not in ("HostConfig", "NetworkingConfig")}
        config.setdefault("Tty", False)
        config["Env"] = [f"{k}={v}" for k, v in _environment(self.config).items()]
        return {
            "Id": self.id,
            "Created": self.created,
            "Path": (self.config.get("Cmd") or [""])[0],
            "Args": (self.config.get("Cmd") or [])[1:],
            "State": {
                "Status": self.status,
                "Running": self.status == "running",
                "Paused": False,
                "Restarting": False,
                "OOMKilled": self.oom_killed,
                "Dead": False,
                "Pid": self.pid if self.status == "running" else 0,
                "ExitCode": self.exit_code,
                "Error": "",
            },
            "Image": "sha256:" + hashlib.sha256(str(self.config.get("Image")).encode()).hexdigest(),
            "Name": "/" + self.name,
            "RestartCount": 0,
            "Driver": "overlay2",
            "Platform": "linux",
            "HostConfig": self.config.get("HostConfig") or {},
            "Config": config,
            "Mounts": [
                {"Type": m.get("Type"), "Source": m.get("Source"), "Destination": m.get("Target")}
                for m in (self.config.get("HostConfig") or {}).get("Mounts") or []
            ],
            "NetworkSettings": {"Networks": {}},
        }


class FakeDockerEngine(ThreadServer):
    def __init__(self, host: str = HOST, port: int = 0) -> None:
        super().__init__(host, port)
        self.calls: list[Call] = []
        self.images: set[str] = {IMAGE}  # what the engine has
        self.registry: set[str] = {IMAGE}  # what a pull can fetch
        self.containers: dict[str, FakeContainer] = {}  # not removed yet
        self.made: list[str] = []  # the ids of every container created, in order
        self.removed: list[str] = []  # ids, in the order they were removed
        self.failures = Failures()
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = [
            ("GET", re.compile(r"/_ping"), "ping", self._ping),
            ("HEAD", re.compile(r"/_ping"), "ping", self._ping),
            ("GET", re.compile(r"/version"), "version", self._version),
            ("GET", re.compile(r"/images/(?P<name>.+)/json"), "image", self._inspect_image),
            ("POST", re.compile(r"/images/create"), "pull", self._pull),
            ("POST", re.compile(r"/containers/create"), "create", self._create),
            ("GET", re.compile(r"/containers/(?P<id>[^/]+)/json"), "inspect", self._inspect),
            ("POST", re.compile(r"/containers/(?P<id>[^/]+)/start"), "start", self._start),
            ("POST", re.compile(r"/containers/(?P<id>[^/]+)/wait"), "wait", self._wait),
            ("GET", re.compile(r"/containers/(?P<id>[^/]+)/logs"), "logs", self._logs),
            ("POST", re.compile(r"/containers/(?P<id>[^/]+)/kill"), "kill", self._kill),
            ("DELETE", re.compile(r"/containers/(?P<id>[^/]+)"), "delete", self._delete),
        ]

    # ------------------------------------------------------------------ for tests

    @property
    def docker_host(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def fail(self, route: str, status: int = 500, message: str = "scripted failure", times: int = 1) -> None:
        """The next ``times`` requests to ``route`` fail with ``status`` and the engine's error
        body; for ``pull``, status 200 breaks the stream off with an ``error`` line; ``oom``: the
        next container started is killed at once as the kernel's OOM killer would."""
        self.failures.add(Failure(route, status=status, message=message, times=times))

    def routes(self, route: str) -> list[Call]:
        return [c for c in self.calls if c.route == route]

    @property
    def created(self) -> list[dict[str, Any]]:
        """The bodies of the container create requests, in order."""
        return [c.body for c in self.routes("create")]

    # ------------------------------------------------------------------ serving

    def add_routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/{path:.*}", self._dispatch)

    async def _before_stop(self) -> None:
        for container in list(self.containers.values()):
            _kill(container)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = re.sub(r"^/v[0-9.]+(?=/)", "", request.path)
        for method, pattern, route, handler in self._routes:
            if request.method == method and (match := pattern.fullmatch(path)):
                body = None
                if request.can_read_body:
                    raw = await request.read()
                    with contextlib.suppress(ValueError):
                        body = json.loads(raw) if raw else None
                self.calls.append(Call(request.method, path, route, dict(request.query), body))
                if (failure := self.failures.take(route, body, request.method)) is not None and (
                    route != "pull" or failure.status != 200
                ):
                    return _error(failure.status, failure.message)
                if failure is not None:  # a pull that breaks off
                    return await self._pull(request, {"broken": failure.message})
                return await handler(request, match.groupdict())
        self.calls.append(Call(request.method, path, "unknown", dict(request.query)))
        return _error(404, "page not found")

    async def _ping(self, request: web.Request, _: dict[str, str]) -> web.Response:
        headers = {"API-Version": API_VERSION, "Ostype": "linux", "Docker-Experimental": "false"}
        return web.Response(text="OK", headers=headers)

    async def _version(self, request: web.Request, _: dict[str, str]) -> web.Response:
        return web.json_response(
            {
                "Platform": {"Name": "Docker Engine - Community"},
                "Version": ENGINE_VERSION,
                "ApiVersion": API_VERSION,
                "MinAPIVersion": "1.24",
                "Os": "linux",
                "Arch": "amd64",
                "KernelVersion": os.uname().release,
                "GoVersion": "go1.24.3",
            }
        )

    # -- images

    async def _inspect_image(self, request: web.Request, match: dict[str, str]) -> web.Response:
        ref = _reference(match["name"])
        if ref not in self.images:
            return _error(404, f"No such image: {ref}")
        digest = "sha256:" + hashlib.sha256(ref.encode()).hexdigest()
        return web.json_response({"Id": digest, "RepoTags": [ref], "Config": {"Env": _env_list(IMAGE_ENV)}})

    async def _pull(self, request: web.Request, match: dict[str, str]) -> web.StreamResponse:
        repo, tag = request.query.get("fromImage", ""), request.query.get("tag") or "latest"
        ref = _reference(f"{repo}:{tag}")
        if "broken" not in match and ref not in self.registry:
            return _error(
                404,
                f"pull access denied for {repo}, repository does not exist or may require "
                "'docker login': denied: requested access to the resource is denied",
            )
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        lines: list[dict[str, Any]] = [{"status": f"Pulling from library/{repo}", "id": tag}]
        if "broken" in match:
            lines.append({"errorDetail": {"message": match["broken"]}, "error": match["broken"]})
        else:
            digest = hashlib.sha256(ref.encode()).hexdigest()
            lines += [
                {"status": "Pulling fs layer", "progressDetail": {}, "id": digest[:12]},
                {"status": "Pull complete", "progressDetail": {}, "id": digest[:12]},
                {"status": f"Digest: sha256:{digest}"},
                {"status": f"Status: Downloaded newer image for {ref}"},
            ]
            self.images.add(ref)
        for line in lines:
            await response.write(json.dumps(line).encode() + b"\r\n")
        await response.write_eof()
        return response

    # -- containers

    def _find(self, key: str) -> FakeContainer | None:
        if key in self.containers:
            return self.containers[key]
        for container in self.containers.values():
            if container.name == key or container.id.startswith(key):
                return container
        return None

    async def _create(self, request: web.Request, _: dict[str, str]) -> web.Response:
        config = await request.json()
        name = request.query.get("name") or f"fake_{uuid.uuid4().hex[:8]}"
        image = _reference(str(config.get("Image") or ""))
        if image not in self.images:
            return _error(404, f"No such image: {image}")
        if any(c.name == name for c in self.containers.values()):
            return _error(409, f'Conflict. The container name "/{name}" is already in use')
        if (missing := _missing_source(config)) is not None:
            return _error(
                400, f'invalid mount config for type "bind": bind source path does not exist: {missing}'
            )
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        now = datetime.datetime.now(datetime.UTC).isoformat()
        self.containers[cid] = FakeContainer(id=cid, name=name, config=config, created=now)
        self.made.append(cid)
        return web.json_response({"Id": cid, "Warnings": []}, status=201)

    async def _inspect(self, request: web.Request, match: dict[str, str]) -> web.Response:
        if (container := self._find(match["id"])) is None:
            return _error(404, f"No such container: {match['id']}")
        return web.json_response(container.inspect())

    async def _start(self, request: web.Request, match: dict[str, str]) -> web.Response:
        if (container := self._find(match["id"])) is None:
            return _error(404, f"No such container: {match['id']}")
        if container.status != "created":
            return web.Response(status=304)
        container.process = await asyncio.create_subprocess_exec(
            *_command(container.config),
            env={"PATH": "/usr/bin:/bin"},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        container.pid, container.status = container.process.pid, "running"
        container.supervisor = asyncio.ensure_future(self._supervise(container))
        if self.failures.take("oom") is not None:
            container.oom_killed = True
            _kill(container)
        return web.Response(status=204)

    async def _supervise(self, container: FakeContainer) -> None:
        process = container.process
        assert process is not None and process.stdout is not None and process.stderr is not None

        async def pump(stream: asyncio.StreamReader, kind: int) -> None:
            while chunk := await stream.read(65536):
                async with container.changed:
                    container.logs.append((kind, chunk))
                    container.changed.notify_all()

        pumps = asyncio.gather(pump(process.stdout, STDOUT), pump(process.stderr, STDERR))
        code = await process.wait()
        with contextlib.suppress(TimeoutError):  # what is left in the pipes (unless something escaped)
            await asyncio.wait_for(pumps, PIPE_GRACE_S)
        async with container.changed:
            container.exit_code = 128 - code if code < 0 else code  # as the engine says a signal
            container.status = "exited"
            container.ended.set()
            container.changed.notify_all()

    async def _wait(self, request: web.Request, match: dict[str, str]) -> web.Response:
        if (container := self._find(match["id"])) is None:
            return _error(404, f"No such container: {match['id']}")
        if container.status == "created":
            return _error(409, "the fake engine waits only for started containers")
        await container.ended.wait()
        return web.json_response({"StatusCode": container.exit_code, "Error": None})

    async def _logs(self, request: web.Request, match: dict[str, str]) -> web.StreamResponse:
        if (container := self._find(match["id"])) is None:
            return _error(404, f"No such container: {match['id']}")
        wanted = {
            kind for kind, key in ((STDOUT, "stdout"), (STDERR, "stderr")) if _true(request.query.get(key))
        }
        if not wanted:
            return _error(400, "you must choose at least one stream")
        follow = _true(request.query.get("follow"))
        response = web.StreamResponse(headers={"Content-Type": "application/vnd.docker.multiplexed-stream"})
        await response.prepare(request)
        sent = 0
        while True:
            async with container.changed:
                await container.changed.wait_for(
                    lambda sent=sent: (
                        not follow
                        or sent < len(container.logs)
                        or container.ended.is_set()
                        or container.removed
                    )
                )
                entries = container.logs[sent:]
                over = container.ended.is_set() or container.removed or not follow
            sent += len(entries)
            for kind, data in entries:
                if kind in wanted:
                    await response.write(struct.pack(">BxxxL", kind, len(data)) + data)
            if over and sent >= len(container.logs):
                break
        await response.write_eof()
        return response

    async def _kill(self, request: web.Request, match: dict[str, str]) -> web.Response:
        if (container := self._find(match["id"])) is None:
            return _error(404, f"No such container: {match['id']}")
        if container.status != "running":
            return _error(
                409, f"cannot kill container: {match['id']}: container {container.id} is not running"
            )
        _kill(container)
        await container.ended.wait()
        return web.Response(status=204)

    async def _delete(self, request: web.Request, match: dict[str, str]) -> web.Response:
        if (container := self._find(match["id"])) is None:
            return _error(404, f"No such container: {match['id']}")
        if container.status == "running":
            if not _true(request.query.get("force")):
                return _error(
                    409,
                    f"cannot remove container {container.name}: container is running: stop the "
                    "container before removing or force remove",
                )
            _kill(container)
            await container.ended.wait()
        del self.containers[container.id]
        self.removed.append(container.id)
        async with container.changed:
            container.removed = True
            container.changed.notify_all()
        return web.Response(status=204)


# ---------------------------------------------------------------------------- running a command


def _command(config: dict[str, Any]) -> list[str]:
    """bubblewrap (behind prlimit) running a create request's command the way the engine would."""
    host = config.get("HostConfig") or {}
    limits = {u["Name"]: u["Hard"] for u in host.get("Ulimits") or []}
    prlimit = [
        "prlimit",
        *(f"--{name}={limits[name]}" for name in ("nofile", "fsize", "core") if name in limits),
    ]
    args = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if host.get("NetworkMode") == "none" or config.get("NetworkDisabled"):
        args.append("--unshare-net")
    # no --new-session: the whole container stays in the process group a kill reaches (bubblewrap's
    # --die-with-parent alone misses a command killed while bubblewrap is still setting it up)
    args += ["--die-with-parent", "--hostname", str(config.get("Hostname") or "container")]
    args += ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_DIRS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for target, options in (host.get("Tmpfs") or {}).items():
        size = re.search(r"(?:^|,)size=(\d+)", options or "")
        args += [*(["--size", size.group(1)] if size else []), "--tmpfs", target]
    for mount in host.get("Mounts") or []:
        args += ["--ro-bind" if mount.get("ReadOnly") else "--bind", mount["Source"], mount["Target"]]
    for bind in host.get("Binds") or []:
        source, target, *mode = bind.split(":")
        args += ["--ro-bind" if mode == ["ro"] else "--bind", source, target]
    args += ["--chdir", str(config.get("WorkingDir") or "/")]
    if host.get("ReadonlyRootfs"):
        args += ["--remount-ro", "/"]
    args.append("--clearenv")
    for key, value in _environment(config).items():
        args += ["--setenv", key, value]
    user = str(config.get("User") or "")
    drop: list[str] = []
    if os.geteuid() == 0 and user not in ("", "0", "0:0", "root"):
        uid, _, gid = user.partition(":")
        drop = ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={gid or uid}", "--clear-groups", "--"]
    return [*prlimit, "--", *args, "--", *drop, *(config.get("Entrypoint") or []), *(config.get("Cmd") or [])]


def _missing_source(config: dict[str, Any]) -> str | None:
    """The source of a bind mount that does not exist, if any (the engine refuses to create)."""
    for mount in (config.get("HostConfig") or {}).get("Mounts") or []:
        if mount.get("Type") == "bind" and not os.path.exists(mount.get("Source") or ""):
            return str(mount.get("Source"))
    return None


def _environment(config: dict[str, Any]) -> dict[str, str]:
    """The image's environment, overridden by the create request's, as the engine merges them."""
    env = {**IMAGE_ENV, "HOSTNAME": str(config.get("Hostname") or "container")}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _kill(container: FakeContainer) -> None:
    if container.process is not None and container.process.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(container.process.pid, signal.SIGKILL)


# ---------------------------------------------------------------------------- the wire


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def _reference(name: str) -> str:
    """An image name with its tag (``latest`` when none is given)."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in last else f"{name}:latest"


def _env_list(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]
