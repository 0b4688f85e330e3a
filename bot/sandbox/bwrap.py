"""The bubblewrap backend: a command in new user, PID, network, IPC, UTS and cgroup namespaces.

It sees a read-only /usr (and the interpreter's installation when that lies elsewhere), a few
read-only files of /etc the dynamic loader and the C library read, its workspace read-write at
/workspace, a private /tmp, /proc and /dev, and nothing else of the machine: not the bot's data,
not its environment (bubblewrap itself starts with the command's clean environment, since
bubblewrap's own process is PID 1 inside and its environment is readable there), not the host's
network (without SANDBOX_NETWORK only a loopback of its own). The root is read-only.

Limits: prlimit sets CPU seconds, address space, file size, open files and processes; the
wall-clock limit kills the whole sandbox (bubblewrap's PID 1 takes every process with it).

RLIMIT_NPROC does not apply to root, so when the bot runs as root the command runs as `nobody`
(uid 65534): a private mount namespace (util-linux's unshare) binds the workspace and the
interpreter where `nobody` can reach them, setpriv drops to `nobody`, and bubblewrap starts
unprivileged from there. The workspace's files are handed to `nobody` first, so the command can
change them (the bot, as root, still can).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from bot.sandbox.base import (
    NOBODY,
    RunRequest,
    RunResult,
    Sandbox,
    SandboxError,
    hand_over,
    prlimit_args,
    run_process,
)

INSIDE_UID = 1000  # the command's user id inside (mapped to the bot's user, or nobody)
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
ETC = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "mime.types")
ETC_NETWORK = ("resolv.conf", "hosts", "nsswitch.conf", "host.conf", "gai.conf", "ssl", "ca-certificates")
STAGE = "/mnt"  # where, as root, the private mount namespace puts what nobody must reach
PASSWD = f"sandbox:x:{INSIDE_UID}:{INSIDE_UID}:sandbox:/workspace:/bin/sh\n".encode()
GROUP = f"sandbox:x:{INSIDE_UID}:\n".encode()
TOOLS = ("bwrap", "prlimit")
ROOT_TOOLS = ("unshare", "setpriv", "mount")


class BwrapSandbox(Sandbox):
    name: ClassVar[str] = "bwrap"
    label: ClassVar[str] = "the bubblewrap sandbox"

    def __init__(self, read_only: Sequence[str] = ()) -> None:
        self.as_root = os.geteuid() == 0
        # more of this machine the command may read, at the same paths (an MCP server's Python
        # environment, bot/mcp_servers.py)
        self.read_only = [os.path.realpath(p) for p in read_only]
        self.python = os.path.realpath(sys._base_executable)  # type: ignore[attr-defined]
        prefix = os.path.realpath(sys.base_prefix)
        # the interpreter's installation, when /usr does not hold it (pyenv, a build in /opt)
        self.prefix: str | None = None if prefix == "/usr" or prefix.startswith("/usr/") else prefix
        missing = [t for t in TOOLS + (ROOT_TOOLS if self.as_root else ()) if shutil.which(t) is None]
        if missing:
            raise SandboxError(f"bubblewrap needs {', '.join(missing)}, not found on PATH")
        self.path = ":".join(
            dict.fromkeys([os.path.dirname(self.python), "/usr/local/bin", "/usr/bin", "/bin"])
        )

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "PATH": self.path, "HOME": self.workdir, "TMPDIR": "/tmp"}

    async def run(self, request: RunRequest) -> RunResult:
        workspace = request.workspace.resolve()
        if self.as_root:
            await asyncio.to_thread(hand_over, workspace, NOBODY)
        env = self.env(request.env)
        fds: list[int] = []  # /etc/passwd and /etc/group, read by bubblewrap from a pipe each
        try:
            for data in (PASSWD, GROUP):
                r, w = os.pipe()
                fds.append(r)
                os.write(w, data)
                os.close(w)
            argv = self.argv(request, env, workspace, passwd_fd=fds[0], group_fd=fds[1])
            return await run_process(argv, request, self.name, cwd="/", env=env, pass_fds=tuple(fds))
        finally:
            for fd in fds:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def argv(
        self, request: RunRequest, env: dict[str, str], workspace: Path, *, passwd_fd: int, group_fd: int
    ) -> list[str]:
        ws_source, prefix_source, ro_sources = str(workspace), self.prefix, list(self.read_only)
        if self.as_root:
            ws_source = f"{STAGE}/w"
            prefix_source = f"{STAGE}/p" if self.prefix else None
            ro_sources = [f"{STAGE}/r{i}" for i in range(len(self.read_only))]
        args = [
            "bwrap",
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--uid", str(INSIDE_UID),
            "--gid", str(INSIDE_UID),
            "--hostname", "sandbox",
            "--die-with-parent",  # no --new-session: it has no terminal, and its group is killed as one
            "--cap-drop", "ALL",
            "--ro-bind", "/usr", "/usr",
        ]  # fmt: skip
        if request.network:
            args.append("--share-net")
        for name in SYSTEM_DIRS:
            path = Path("/", name)
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        for name in ETC + (ETC_NETWORK if request.network else ()):
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        args += ["--ro-bind-data", str(passwd_fd), "/etc/passwd"]
        args += ["--ro-bind-data", str(group_fd), "/etc/group"]
        if self.prefix and prefix_source:
            args += ["--ro-bind", prefix_source, self.prefix]
        args += [
            "--proc", "/proc",
            "--dev", "/dev",
            "--size", str(request.limits.file_bytes),
            "--tmpfs", "/tmp",
        ]  # fmt: skip
        # after the private /tmp: a read-only path under /tmp (a virtualenv there) stays visible
        for source, path in zip(ro_sources, self.read_only, strict=True):
            args += ["--ro-bind", source, path]
        args += [
            "--bind", ws_source, self.workdir,
            "--chdir", self.workdir,
            "--remount-ro", "/",
            "--clearenv",
        ]  # fmt: skip
        for key, value in env.items():
            args += ["--setenv", key, value]
        command = [*prlimit_args(request.limits), *args, "--", *request.argv]
        if not self.as_root:
            return command
        staged = [("w", str(workspace))] + ([("p", self.prefix)] if self.prefix else [])
        staged += [(f"r{i}", path) for i, path in enumerate(self.read_only)]
        stage = [path for _, path in staged]
        script = (
            f"mount -t tmpfs -o mode=0755,size=64k sandbox {STAGE} && mkdir {STAGE}/w {STAGE}/p"
            + "".join(f" {STAGE}/{name}" for name, _ in staged[1:] if name != "p")
            + "".join(f' && mount --bind "${{{i}}}" {STAGE}/{name}' for i, (name, _) in enumerate(staged, 1))
            + f" && shift {len(staged)}"
            + f' && exec setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- "$@"'
        )
        return ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh"] + (
            stage + command
        )
