"""Several real `autogpt-bot run` processes serving one Slack team over HTTP on one Redis.

Each process is ``python -m adapters.cli run`` in a temporary working folder (no ``.env`` is
read), with an environment cleaned of every setting of ours, Slack in HTTP mode on a port of its
own, the Web API pointed at a ``FakeSlackAPI`` and the LLM at a scripted server::

    async with FakeSlackAPI() as api:
        cluster = Cluster(3, cluster_env(api, llm_url, REDIS_URL, prefix, data_dir), workdir)
        await cluster.start()
        await cluster.sender(1).command("goal --continuous 3 write a poem")
        cluster.kill(0)        # SIGKILL: no goodbye, its leases just lapse
        await cluster.restart(0)  # the same process again, on the same ports
        await cluster.stop()   # SIGTERM to the others, SIGKILL after a grace period

With ``discord_env(fake_discord, ...)`` instead (and no Slack API) the processes serve Discord.
``SignedSender`` of each process (``cluster.sender(i)``) signs requests exactly as Slack does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from bot.settings import Settings
from tests.fakes.discord import TOKEN, FakeDiscord
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlackAPI, SignedSender

REPO: Final = Path(__file__).resolve().parents[2]
READY: Final = "autogpt-bot is running"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_environ() -> dict[str, str]:
    """os.environ without any setting of ours, so a developer's environment cannot leak in."""
    keys = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in keys}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env["NO_COLOR"] = "1"
    return env


def cluster_env(
    api: FakeSlackAPI,
    llm_url: str,
    redis_url: str,
    redis_prefix: str,
    data_dir: Path,
    lease_seconds: float = 2.0,
    **extra: str,
) -> dict[str, str]:
    """The environment every process of a cluster shares (each gets its own SLACK_HTTP_PORT)."""
    env = _bot_env(llm_url, redis_url, redis_prefix, data_dir, lease_seconds)
    env.update(
        SLACK_MODE="http",
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=APP_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=api.base_url,
    )
    env.update(extra)
    return env


def discord_env(
    api: FakeDiscord,
    llm_url: str,
    redis_url: str,
    redis_prefix: str,
    data_dir: Path,
    lease_seconds: float = 2.0,
    **extra: str,
) -> dict[str, str]:
    """`cluster_env` for Discord: the bot token, the fake's REST API and gateway; no Slack (so a
    `Cluster` made with it serves Discord only; at most one of its processes may hold the gateway)."""
    env = _bot_env(llm_url, redis_url, redis_prefix, data_dir, lease_seconds)
    env.update(DISCORD_BOT_TOKEN=TOKEN, DISCORD_API_URL=api.api_url, DISCORD_GATEWAY_URL=api.gateway_url)
    env.update(extra)
    return env


def _bot_env(
    llm_url: str, redis_url: str, redis_prefix: str, data_dir: Path, lease_seconds: float
) -> dict[str, str]:
    env = {k: v for k, v in clean_environ().items() if not k.upper().startswith(("SLACK_", "DISCORD_"))}
    env.update(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=llm_url,
        SMART_LLM="gpt-4o",
        FAST_LLM="gpt-4o-mini",
        REDIS_URL=redis_url,
        REDIS_PREFIX=redis_prefix,
        DATA_DIR=str(data_dir),
        MEMORY_BACKEND="no_memory",
        LEASE_SECONDS=str(lease_seconds),
        LLM_MAX_RETRIES="1",
        LLM_TIMEOUT="30",
        OPS_PORT="0",
    )
    return env


@dataclass
class BotProcess:
    index: int
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    ops_port: int = 0
    role: str = "all"

    def metrics(self) -> dict[str, float]:
        """This process's /metrics, as {name{labels}: value} (an empty dict when it is gone)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return {}
        found: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                found[name] = float(value)
        return found

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/slack/events"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def rss_kib(self) -> int:
        """Resident memory (VmRSS) in KiB, 0 when the process is gone."""
        try:
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0


def _niced(n: int) -> Callable[[], None] | None:
    if not n:
        return None
    return lambda: os.nice(n) and None


class Cluster:
    def __init__(
        self,
        size: int,
        env: dict[str, str],
        workdir: Path,
        api: FakeSlackAPI | None,
        roles: list[str] | None = None,
        nice: dict[str, int] | None = None,
    ) -> None:
        """`roles`: each process's ROLE (all, ingress, worker); all of them `all` by default.
        `nice`: a role's niceness (e.g. {"worker": 10}: the ingress gets the CPU first, as CPU
        shares would give it in pods of their own)."""
        self.nice = nice or {}
        self.size = size
        self.env = env
        self.workdir = workdir
        self.api = api
        self.roles = roles or ["all"] * size
        self.procs: list[BotProcess] = []

    def _spawn(self, index: int, port: int = 0, ops_port: int = 0) -> BotProcess:
        port = port or free_port()
        cwd = self.workdir / f"proc{index}"
        cwd.mkdir(parents=True, exist_ok=True)
        log = cwd / "output.log"
        env = dict(self.env, SLACK_HTTP_PORT=str(port), ROLE=self.roles[index])
        if env.get("OPS_PORT") == "0":  # a port of its own, known here: /metrics can be read
            env["OPS_PORT"] = str(ops_port or free_port())
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "adapters.cli", "run"],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C of the test does not reach it twice
                preexec_fn=_niced(self.nice.get(self.roles[index], 0)),
            )
        return BotProcess(index, proc, port, log, int(env.get("OPS_PORT") or 0), self.roles[index])

    async def start(self, within: float = 30.0) -> Cluster:
        self.procs = [self._spawn(i) for i in range(self.size)]
        await self._ready(self.procs, within)
        return self

    async def restart(self, index: int, within: float = 30.0) -> BotProcess:
        """Start process `index` again (after `kill`) on the same ports, as a restarted pod is
        reached at the same address. The old log is kept as output.N.log (N: the restart)."""
        old = self.procs[index]
        assert not old.alive, f"process {index} is still running"
        n = len(list(old.log.parent.glob("output.*.log"))) + 1
        old.log.rename(old.log.with_name(f"output.{n}.log"))
        p = self._spawn(index, old.port, old.ops_port)
        self.procs[index] = p
        await self._ready([p], within)
        return p

    async def _ready(self, procs: list[BotProcess], within: float) -> None:
        deadline = time.monotonic() + within
        for p in procs:
            while READY not in p.output():
                if not p.alive:
                    raise RuntimeError(f"process {p.index} exited {p.proc.returncode}:\n{p.output()[-3000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"process {p.index} did not start:\n{p.output()[-3000:]}")
                await asyncio.sleep(0.05)

    def sender(self, index: int) -> SignedSender:
        assert self.api is not None, "a Slack cluster (cluster_env) has senders"
        return SignedSender(self.procs[index % len(self.procs)].url, self.api)

    def kill(self, index: int) -> None:
        """`kill -9`: the process stops at once, holding whatever leases it held."""
        p = self.procs[index]
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
        p.proc.wait(10)

    def stop_sync(self, grace: float = 10.0) -> None:
        for p in self.procs:
            if p.alive:
                with contextlib.suppress(ProcessLookupError):
                    p.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in self.procs:
            try:
                p.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait(5)

    async def stop(self, grace: float = 10.0) -> None:
        await asyncio.to_thread(self.stop_sync, grace)

    def tracebacks(self) -> list[str]:
        """Output of every process that printed a traceback."""
        return [f"process {p.index}:\n{p.output()[-4000:]}" for p in self.procs if "Traceback" in p.output()]
