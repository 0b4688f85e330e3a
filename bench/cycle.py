"""What a cycle costs the machine that runs the bot: whole-process CPU, every part included.

    python bench/cycle.py [--cycles 200] [--sessions 20] [--session-cycles 10]
                          [--stores sqlite,redis] [--memory local|no_memory]

The scripted OpenAI-compatible server (tests/fakes/llm_server.py --bench) runs in its own process
and answers at once, so its CPU is not the bot's. This process is the bot: the real core (store,
engine, runner, LLM client, memory with its embeddings, tools) and a chat platform that renders
every view through the console's renderer into a buffer, as a chat adapter would. Nothing is
subtracted: CPU is `resource.getrusage(RUSAGE_SELF)` (user + system, every thread) between the
first and the last LLM request of the run.

Two runs per store:
- one long continuous session of `--cycles` cycles: CPU per cycle over the whole session, for
  cycles 1-10 and for the last ten separately (is the cost flat in the session's length?),
  chat calls per cycle, and what the store received per cycle (Redis: its `total_net_input_bytes`;
  SQLite: the bytes this process wrote, `wchar` of /proc/self/io, which includes the agent's own
  small files);
- `--sessions` concurrent continuous sessions of `--session-cycles` cycles each: CPU per cycle.
Also: start-up (a fresh `autogpt-bot console` process, from its start to its first LLM request)
and this process's peak RSS. Redis's own CPU is reported apart (`used_cpu_sys + used_cpu_user`).

AutoGPT v0.4.7 on a similar workload: 13.7 ms of CPU per cycle (6.6 ms for cycles 1-5, 18.8 ms
for cycles 36-49), 1.34 s to its first LLM call, 241 MiB peak RSS. Last line: `BENCH {json}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import itertools
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import redis  # noqa: E402

from adapters.console.platform import ConsoleRenderer  # noqa: E402
from bot.adapter import ChatAdapter  # noqa: E402
from bot.core import Core  # noqa: E402
from bot.grammar import GoalCommand  # noqa: E402
from bot.models import Actor, MessageRef, Place  # noqa: E402
from bot.settings import Settings  # noqa: E402

AUTOGPT = {"cpu_ms_per_cycle": 13.7, "first_call_s": 1.34, "peak_rss_mib": 241}
TARGET_MS = 2.7


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def written_bytes() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    return 0


class Rendered(ChatAdapter):
    """Renders every view as the console does, into a buffer; notes the CPU at each step."""

    name: ClassVar[str] = "bench"

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.renderer = ConsoleRenderer(self.buffer, color=False)
        self.count = 0
        self.marks: dict[str, list[float]] = {}  # session -> CPU seconds at each step posted

    async def open_session(self, place: Place, view: Any) -> Place:
        self.renderer.render(view)
        return place.model_copy(update={"thread": view.session_id})

    async def post(self, place: Place, view: Any) -> MessageRef:
        self.count += 1
        self.renderer.render(view)
        if getattr(view, "kind", None) == "step":
            self.marks.setdefault(view.session_id, []).append(cpu_s())
        if self.buffer.tell() > 1_000_000:
            self.buffer.seek(0)
            self.buffer.truncate()
        return MessageRef(platform=self.name, channel=place.channel, id=str(self.count), thread=place.thread)

    async def update(self, ref: MessageRef, view: Any) -> None:
        self.renderer.render(view)

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def scripted_llm(first_request_file: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.llm_server",
            "--port",
            str(port),
            "--bench",
            "--first-request-file",
            str(first_request_file),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the scripted LLM did not start") from None
                time.sleep(0.05)
        first_request_file.unlink(missing_ok=True)  # the readiness probe is not a request
        yield base_url
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def settings_for(args: argparse.Namespace, store: str, base_url: str, data: Path) -> Settings:
    values: dict[str, Any] = {
        "openai_api_key": "sk-bench",
        "openai_base_url": base_url,
        "data_dir": data,
        "memory_backend": args.memory,
        "max_cycles": 100_000,
        "session_budget_usd": 1e9,
        "user_daily_budget_usd": 1e9,
        "max_sessions_per_user": args.sessions + 5,
        "running_notice_s": 0.0,
    }
    if store == "redis":
        values.update(redis_url=args.redis_url, redis_prefix=f"bench-cycle-{time.time_ns()}:")
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def redis_info(url: str) -> tuple[int, float]:
    info = redis.Redis.from_url(url).info()
    return int(info.get("total_net_input_bytes", 0)), float(info["used_cpu_sys"]) + float(
        info["used_cpu_user"]
    )


async def run_sessions(settings: Settings, count: int, cycles: int) -> dict[str, Any]:
    core = await Core.start(settings)
    chat = Rendered()
    core.add_platform(chat)
    actor = Actor(platform=chat.name, user_id="bench", name="bench")
    try:
        url = settings.redis_url.get_secret_value() if settings.redis_url else None
        redis_before = redis_info(url) if url else (0, 0.0)
        wrote_before = written_bytes()
        started = cpu_s()
        ids = []
        for n in range(count):
            command = GoalCommand(
                goals=[f"keep notes number {n}", "keep a log"], continuous=True, continuous_limit=cycles
            )
            outcome = await core.service.start(actor, Place(platform=chat.name, channel="C"), command)
            if not outcome.ok or outcome.session_id is None:
                raise SystemExit(outcome.message)
            ids.append(outcome.session_id)
        await core.runner.idle(600)
        ended = cpu_s()
        redis_after = redis_info(url) if url else (0, 0.0)
        wrote = written_bytes() - wrote_before
        done = sum(len(chat.marks.get(i, [])) for i in ids)
        calls = commits = 0
        for i in ids:
            stored = await core.store.get(i)
            calls += stored.usage.calls if stored is not None else 0
            commits += stored.version if stored is not None else 0  # each commit adds one
    finally:
        await core.close()
    per_cycle = (ended - started) / max(1, done) * 1000
    marks = chat.marks.get(ids[0], [])
    gaps = [(b - a) * 1000 for a, b in itertools.pairwise(marks)]
    return {
        "sessions": count,
        "cycles": done,
        "cpu_ms_per_cycle": round(per_cycle, 2),
        "cpu_ms_cycles_1_10": round(statistics.mean(gaps[:10]), 2) if len(gaps) >= 10 else None,
        "cpu_ms_last_10": round(statistics.mean(gaps[-10:]), 2) if len(gaps) >= 20 else None,
        "llm_calls_per_cycle": round(calls / max(1, done), 2),  # chat and embedding calls
        "store_commits_per_cycle": round(commits / max(1, done), 2),  # compare-and-set writes
        "store_bytes_per_cycle": round(
            (redis_after[0] - redis_before[0]) / max(1, done) if settings.redis_url else wrote / max(1, done)
        ),
        "redis_cpu_ms_per_cycle": round((redis_after[1] - redis_before[1]) / max(1, done) * 1000, 2)
        if settings.redis_url
        else None,
    }


def start_up(base_url: str, first: Path, store: str, args: argparse.Namespace, data: Path) -> float:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "REDIS_", "SLACK_", "DISCORD_"))
    }
    env.update(
        OPENAI_API_KEY="sk-bench", OPENAI_BASE_URL=base_url, DATA_DIR=str(data), MEMORY_BACKEND=args.memory
    )
    if store == "redis":
        env.update(REDIS_URL=args.redis_url, REDIS_PREFIX=f"bench-start-{time.time_ns()}:")
    first.unlink(missing_ok=True)
    began = time.time()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adapters.cli",
            "console",
            "--continuous",
            "--continuous-limit",
            "1",
            "a goal",
        ],
        cwd=data,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    with contextlib.suppress(OSError, ValueError):
        return float(first.read_text().strip()) - began
    return float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=200, help="cycles of the long session")
    parser.add_argument("--sessions", type=int, default=20, help="concurrent sessions")
    parser.add_argument("--session-cycles", type=int, default=10, help="cycles of each concurrent session")
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--memory", choices=("local", "no_memory"), default="local")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-cycle-") as tmp:
        first = Path(tmp) / "first-request"
        with scripted_llm(first) as base_url:
            for store in args.stores.split(","):
                data = Path(tmp) / store
                long = asyncio.run(
                    run_sessions(settings_for(args, store, base_url, data / "long"), 1, args.cycles)
                )
                many = asyncio.run(
                    run_sessions(
                        settings_for(args, store, base_url, data / "many"), args.sessions, args.session_cycles
                    )
                )
                (data / "start").mkdir(parents=True, exist_ok=True)
                startup = start_up(base_url, first, store, args, data / "start")
                results[store] = {"long": long, "concurrent": many, "first_call_s": round(startup, 2)}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = {"memory": args.memory, "results": results, "peak_rss_mib": round(peak, 1), "autogpt": AUTOGPT}
    print(
        f"Whole-process CPU per cycle (memory: {args.memory}), nothing subtracted; AutoGPT v0.4.7: "
        f"{AUTOGPT['cpu_ms_per_cycle']} ms, {AUTOGPT['first_call_s']} s to its first call, "
        f"{AUTOGPT['peak_rss_mib']} MiB."
    )
    for store, r in results.items():
        lo, co = r["long"], r["concurrent"]
        print(
            f"{store}: one session of {lo['cycles']} cycles: {lo['cpu_ms_per_cycle']} ms/cycle "
            f"(cycles 1-10: {lo['cpu_ms_cycles_1_10']}, last 10: {lo['cpu_ms_last_10']}), "
            f"{lo['llm_calls_per_cycle']} LLM calls/cycle, {lo['store_commits_per_cycle']} commits/cycle, "
            f"{lo['store_bytes_per_cycle']} store bytes/cycle"
            + (
                f", Redis's own CPU {lo['redis_cpu_ms_per_cycle']} ms/cycle"
                if lo["redis_cpu_ms_per_cycle"]
                else ""
            )
        )
        print(
            f"{store}: {co['sessions']} sessions at once: {co['cpu_ms_per_cycle']} ms/cycle; "
            f"start-up to the first LLM call {r['first_call_s']} s"
        )
    print(f"peak RSS of this process: {report['peak_rss_mib']} MiB; target {TARGET_MS} ms/cycle, flat")
    print("BENCH " + json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
