"""Where the agent's code runs: `select(settings)` picks the backend SANDBOX names.

- `docker`: a container per command from SANDBOX_IMAGE (bot/sandbox/docker.py);
- `bwrap`: bubblewrap on this machine (bot/sandbox/bwrap.py);
- `auto` (the default): Docker when an engine answers, else bubblewrap when it works here, else
  none at all: the execution tools are then not offered, and the log and `check-config` say why;
- `none`: the bot's own machine and user (bot/sandbox/direct.py), only when chosen explicitly.

The choice is made once per process (probing an engine or bubblewrap costs a few milliseconds
to a few seconds) and kept.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.base import Limits, RunRequest, RunResult, Sandbox, SandboxError
from bot.settings import Settings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Selection:
    """The backend commands run in, or None with `reason` saying why there is none."""

    sandbox: Sandbox | None
    reason: str
    warning: str | None = None  # said at start-up (SANDBOX=none)

    @property
    def name(self) -> str:
        return self.sandbox.name if self.sandbox is not None else "off"


_chosen: dict[tuple[object, ...], Selection] = {}
_lock = threading.Lock()


def select(settings: Settings) -> Selection:
    key = (
        settings.sandbox,
        settings.sandbox_image,
        settings.sandbox_docker_data_dir,
        os.environ.get("DOCKER_HOST"),
    )
    with _lock:
        if key not in _chosen:
            _chosen[key] = _select(settings)
        return _chosen[key]


def forget() -> None:
    """Choose again next time (tests that change what the machine offers)."""
    with _lock:
        _chosen.clear()


def _select(settings: Settings) -> Selection:
    wanted = settings.sandbox
    if wanted == "none":
        from bot.sandbox.direct import DirectSandbox

        return Selection(
            DirectSandbox(),
            "SANDBOX=none: commands run directly on this machine, as the bot's user",
            warning=(
                "SANDBOX=none: the agent's commands run on this machine as the bot's user, with "
                "nothing between them and what the bot can reach. Use SANDBOX=auto where you can."
            ),
        )
    reasons: list[str] = []
    if wanted in ("auto", "docker"):
        try:
            from bot.sandbox.docker import DockerSandbox

            docker = DockerSandbox.connect(settings)
            return Selection(docker, f"Docker ({docker.describe()}), image {settings.sandbox_image}")
        except SandboxError as exc:
            reasons.append(f"Docker: {exc}")
            if wanted == "docker":
                return Selection(None, f"SANDBOX=docker, but {exc}")
    try:
        bwrap = probe_bwrap()
        return Selection(bwrap, "bubblewrap" + (" (no Docker engine answers)" if reasons else ""))
    except SandboxError as exc:
        reasons.append(f"bubblewrap: {exc}")
    return Selection(None, "no sandbox works here (" + "; ".join(reasons) + ")")


def probe_bwrap() -> Sandbox:
    """A BwrapSandbox, once `true` has run in it here (user namespaces may be off, bubblewrap
    missing, or a container's seccomp profile may refuse it)."""
    import asyncio

    from bot.sandbox.bwrap import BwrapSandbox

    sandbox = BwrapSandbox()
    with tempfile.TemporaryDirectory(prefix="autogpt-probe-") as tmp:
        request = RunRequest(
            argv=["true"],
            workspace=Path(tmp),
            env={"LANG": "C.UTF-8"},
            limits=Limits(
                timeout_s=PROBE_TIMEOUT_S,
                memory_mb=256,
                max_processes=64,
                cpus=1,
                file_bytes=1 << 20,
                output_bytes=1 << 16,
            ),
        )
        try:  # in a thread of its own: select() may be called where an event loop runs
            with ThreadPoolExecutor(1) as pool:
                result = pool.submit(asyncio.run, sandbox.run(request)).result()
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxError(f"bubblewrap could not start ({exc})") from None
    if result.exit_code != 0:
        said = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SandboxError(
            f"bubblewrap does not work here ({said[-1] if said else f'exit code {result.exit_code}'})"
        )
    return sandbox


__all__ = ["Limits", "RunRequest", "RunResult", "Sandbox", "SandboxError", "Selection", "forget", "select"]
