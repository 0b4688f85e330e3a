"""Engine benchmark: N sessions x M approved cycles against a scripted LLM, on each store.

    python bench/engine.py [--sessions 200] [--cycles 5] [--stores redis,sqlite] [--concurrency 20]
                           [--redis-url redis://127.0.0.1:6379/13] [--latency-sessions 50]
                           [--profile] [--strict]

The scripted OpenAI-compatible server (`tests/fakes/llm_server.py --bench`) runs in a separate
process and answers at once, so it does not compete with the engine for the GIL. A cycle is
`engine.decide(approve)` + `engine.drive`: execute the approved command, update the task list,
think, and post the next proposal; `drive` returns when the session waits for a human again.
Long-term memory is off (its embedding calls are not chat calls and would count as engine time).

Two passes per store:
- latency, sequential (one session at a time, so event-loop contention is not measured as engine
  time): engine ms per cycle = wall time of the cycle minus the time spent in LLM HTTP calls
  (`LLMClient._complete`, wrapped here and summed per asyncio task through a ContextVar);
- throughput, concurrent (N sessions, C at a time): cycles per second over the whole pass,
  session start and planning included. After it every session waits for approval; the bench
  then checks that none is held by the process: `core.runner.busy == 0`, no `Session` object is
  alive, no extra asyncio task, and VmRSS before vs after the N sessions were created.

Prints a table and a last line `BENCH {json}`. Target: median engine ms per cycle under 5 ms on
Redis. Exit status 1 when a session misbehaves or a session is found held in memory, 3 with
`--strict` when the target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import math
import os
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from bot.adapter import PlatformError
from bot.core import Core
from bot.decisions import Decision
from bot.grammar import GoalCommand
from bot.models import Actor, MessageRef, Place, Session, SessionState, StepStatus
from bot.presenter.views import SessionHeaderView, View
from bot.settings import Settings
from bot.store.base import StoreError

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `tests` is not installed; the chat recorder lives there
    sys.path.insert(0, str(ROOT))

from tests.fakes.chat import TestPlatform  # noqa: E402

TARGET_MS = 5.0
PLACE = Place(platform="test", channel="bench")
GOAL = "Keep a research log in log.txt and a summary in notes.txt"
STORE_METHODS = (
    "get",
    "cas",
    "create",
    "delete",
    "sessions_of",
    "bind_place",
    "acquire_lease",
    "release_lease",
    "add_spend",
    "get_spend",
)


class BenchError(Exception):
    """The engine did not do what a cycle should (a session paused, stopped or went missing)."""


# ---------------------------------------------------------------------------- measuring


@dataclass
class Waits:
    """What one cycle spent outside the engine's own code, summed over its asyncio task."""

    llm_s: float = 0.0
    llm_calls: int = 0
    store_s: float = 0.0
    store_calls: int = 0
    chat_calls: int = 0


WAITS: ContextVar[Waits | None] = ContextVar("bench_waits", default=None)


@dataclass
class Cycle:
    wall_s: float
    waits: Waits

    @property
    def engine_ms(self) -> float:
        return (self.wall_s - self.waits.llm_s) * 1000


def instrument(core: Core) -> None:
    """Wrap the LLM's one HTTP call and the store's calls to add their time to the task's Waits."""
    complete = core.llm._complete

    async def timed_complete(model: str, messages: list[dict[str, Any]], fmt: dict[str, Any]) -> Any:
        waits = WAITS.get()
        started = time.perf_counter()
        try:
            return await complete(model, messages, fmt)
        finally:
            if waits is not None:
                waits.llm_s += time.perf_counter() - started
                waits.llm_calls += 1

    core.llm._complete = timed_complete  # type: ignore[method-assign]
    for name in STORE_METHODS:  # the store's own calls; `update` is get + cas, not wrapped again
        if hasattr(core.store, name):
            setattr(core.store, name, _timed_store(getattr(core.store, name)))


def _timed_store(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        waits = WAITS.get()
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            if waits is not None:
                waits.store_s += time.perf_counter() - started
                waits.store_calls += 1

    return timed


class BenchPlatform(TestPlatform):
    """The test chat platform, counting instead of keeping: a message is found by its number,
    not by a scan, and no view is kept, so the process holds nothing per session (in production
    the chat history lives on the chat service)."""

    __test__ = False

    def __init__(self) -> None:
        super().__init__()
        self.posted = 0
        self.edited = 0
        self.progressed = 0

    async def progress(self, place: Place, view: Any) -> None:  # counted, not kept
        self.progressed += 1

    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        ref = await self.post(place, view)
        return place.model_copy(update={"thread": ref.id})

    async def post(self, place: Place, view: View) -> MessageRef:
        self.posted += 1
        if (waits := WAITS.get()) is not None:
            waits.chat_calls += 1
        return MessageRef(
            platform=self.name, channel=place.channel, id=f"m{self.posted}", thread=place.thread
        )

    async def update(self, ref: MessageRef, view: View) -> None:
        if not ref.id.startswith("m") or not 0 < int(ref.id[1:]) <= self.posted:
            raise PlatformError(f"no message {ref.id}")
        self.edited += 1
        if (waits := WAITS.get()) is not None:
            waits.chat_calls += 1


def rss_kb() -> int:
    """Resident memory of this process (VmRSS), in kB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


async def settle() -> None:
    """Let the event loop drop its last handles on finished tasks, then collect garbage."""
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()


def sessions_alive() -> int:
    return sum(1 for obj in gc.get_objects() if isinstance(obj, Session))


# ---------------------------------------------------------------------------- driving


def actor_of(user: str) -> Actor:
    return Actor(platform="test", user_id=user, name=user)


def expect_waiting(session: Session | None, session_id: str, cycles: int) -> None:
    if session is None:
        raise BenchError(f"session {session_id} disappeared")
    if session.state != SessionState.AWAITING_APPROVAL or session.cycles != cycles:
        raise BenchError(
            f"session {session_id}: expected to await approval after {cycles} proposals, but it is "
            f"{session.state.value} after {session.cycles} ({session.reason or session.error or 'no reason'})"
        )


async def open_session(core: Core, user: str) -> str:
    """Start a session and drive it to its first proposal (planning + first think)."""
    outcome = await core.service.start(actor_of(user), PLACE, GoalCommand(goals=[GOAL]), autostart=False)
    if not outcome.ok or outcome.session_id is None:
        raise BenchError(f"could not start a session: {outcome.message}")
    expect_waiting(await core.engine.drive(outcome.session_id), outcome.session_id, 1)
    return outcome.session_id


async def approved_cycle(core: Core, session_id: str, user: str, proposals_after: int) -> Cycle:
    """Approve the pending step and drive to the next proposal, timing it in this task."""
    waits = Waits()
    token = WAITS.set(waits)
    started = time.perf_counter()
    try:
        outcome = await core.engine.decide(session_id, actor_of(user), Decision(action="approve"))
        if not outcome.ok:
            raise BenchError(f"approve {session_id}: {outcome.message}")
        session = await core.engine.drive(session_id)
    finally:
        wall = time.perf_counter() - started
        WAITS.reset(token)
    expect_waiting(session, session_id, proposals_after)
    return Cycle(wall, waits)


async def run_session(core: Core, user: str, cycles: int) -> tuple[str, list[Cycle]]:
    session_id = await open_session(core, user)
    timings = [await approved_cycle(core, session_id, user, n + 2) for n in range(cycles)]
    return session_id, timings


async def run_concurrently(
    core: Core, users: list[str], cycles: int, concurrency: int
) -> list[tuple[str, list[Cycle]]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(user: str) -> tuple[str, list[Cycle]]:
        async with gate:
            return await run_session(core, user, cycles)

    tasks = [asyncio.create_task(one(u)) for u in users]
    try:
        return list(await asyncio.gather(*tasks))
    finally:  # on a failure or Ctrl-C, no session task may outlive the core it uses
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


# ---------------------------------------------------------------------------- one store


@dataclass
class Options:
    sessions: int
    cycles: int
    concurrency: int
    latency_sessions: int
    stores: list[str]
    redis_url: str
    profile: bool
    strict: bool


@dataclass
class StoreResult:
    name: str
    values: dict[str, Any] = field(default_factory=dict)
    profile: str = ""


def bench_settings(store: str, llm_url: str, data_dir: Path, redis_url: str, prefix: str) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        openai_api_key="bench",
        openai_base_url=llm_url,
        data_dir=data_dir,
        redis_url=redis_url if store == "redis" else None,
        redis_prefix=prefix,
        max_cycles=999_999,
        session_budget_usd=1e9,
        user_daily_budget_usd=1e9,
        max_sessions_per_user=1_000_000,
        llm_max_retries=0,
        memory_backend="no_memory",  # embedding calls are not LLM chat calls: keep them out
    )


async def bench_store(store: str, opts: Options, settings: Settings) -> StoreResult:
    result = StoreResult(store)
    core = await Core.start(settings)
    core.add_platform(BenchPlatform())
    instrument(core)
    tag = f"{store[0]}{uuid.uuid4().hex[:6]}"
    try:
        # warm-up (not measured): encodings, schemas, connection pools, the thread pool
        warm = [f"{tag}-warm{i}" for i in range(min(opts.concurrency, opts.sessions))]
        await run_concurrently(core, warm, min(opts.cycles, 2), opts.concurrency)

        # latency: one session at a time
        profiler = cProfile.Profile() if opts.profile else None
        latency: list[Cycle] = []
        if profiler is not None:
            profiler.enable()
        for i in range(opts.latency_sessions):
            latency += (await run_session(core, f"{tag}-lat{i}", opts.cycles))[1]
        if profiler is not None:
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"bot/", 30)
            result.profile = out.getvalue()

        # throughput, and nothing held per waiting session
        await settle()
        tasks_before, objects_before, rss_before = len(asyncio.all_tasks()), len(gc.get_objects()), rss_kb()
        users = [f"{tag}-u{i}" for i in range(opts.sessions)]
        started = time.perf_counter()
        runs = await run_concurrently(core, users, opts.cycles, opts.concurrency)
        elapsed = time.perf_counter() - started
        # keep only ids and floats, so the bench's own records do not count as session memory
        ids = [session_id for session_id, _ in runs]
        loaded = [c.wall_s for _, cycles in runs for c in cycles]
        del runs, users
        await settle()
        rss_after, objects_after = rss_kb(), len(gc.get_objects())
        alive_after, tasks_after = sessions_alive(), len(asyncio.all_tasks())
        busy = core.runner.busy

        waiting = stored_cycles = repeats = errors = 0
        for session_id in ids:  # counted again from the store, not from what the bench did
            s = await core.store.get(session_id)
            if s is None:
                continue
            waiting += s.state == SessionState.AWAITING_APPROVAL
            stored_cycles += sum(step.status == StepStatus.DONE for step in s.steps)
            repeats += sum(any("three times in a row" in n for n in step.notes) for step in s.steps)
            errors += sum((step.result or "").startswith("Error") for step in s.steps)
        sizes = [await core.store.stored_bytes(session_id) for session_id in ids]

        n = len(latency)
        engine = [c.engine_ms for c in latency]
        result.values = {
            "cycles": stored_cycles,
            "cycles_per_s": round(stored_cycles / elapsed, 1),
            "concurrent_pass_s": round(elapsed, 3),
            "latency_cycles": n,
            "engine_ms_median": round(statistics.median(engine), 3),
            "engine_ms_p99": round(percentile(engine, 0.99), 3),
            "engine_ms_mean": round(statistics.fmean(engine), 3),
            "store_ms_median": round(statistics.median(c.waits.store_s * 1000 for c in latency), 3),
            "llm_ms_median": round(statistics.median(c.waits.llm_s * 1000 for c in latency), 3),
            "wall_ms_median_under_load": round(statistics.median(loaded) * 1000, 3),
            "llm_calls_per_cycle": round(sum(c.waits.llm_calls for c in latency) / n, 2),
            "store_calls_per_cycle": round(sum(c.waits.store_calls for c in latency) / n, 2),
            "chat_calls_per_cycle": round(sum(c.waits.chat_calls for c in latency) / n, 2),
            "stored_bytes_median": int(statistics.median(sizes)),
            "stored_bytes_max": max(sizes),
            "waiting": waiting,
            "loop_guard_notes": repeats,
            "command_errors": errors,
            "runner_busy": busy,
            "sessions_in_memory": alive_after,
            "tasks_before": tasks_before,
            "tasks_after": tasks_after,
            "gc_objects_before": objects_before,
            "gc_objects_after": objects_after,
            "rss_before_kb": rss_before,
            "rss_after_kb": rss_after,
        }
    finally:
        await core.close()
    return result


# ---------------------------------------------------------------------------- the LLM process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def llm_server(log_path: Path) -> Iterator[str]:
    """Start the scripted LLM (`--bench`) in its own process; yield its base URL once it answers."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.llm_server", "--port", str(port), "--bench"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            base_url = f"http://127.0.0.1:{port}/v1"
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise BenchError(f"the scripted LLM exited ({proc.returncode}): {log_path.read_text()}")
                try:
                    with urllib.request.urlopen(f"{base_url}/models", timeout=1):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise BenchError(f"the scripted LLM did not answer on port {port}") from None
                    time.sleep(0.05)
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def clean_redis(url: str, prefix: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])
        return len(keys)
    finally:
        client.close()


# ---------------------------------------------------------------------------- output

ROWS: list[tuple[str, str, str]] = [
    # (label, key, format)
    ("approved cycles done (concurrent pass)", "cycles", "{:,}"),
    ("cycles/s (concurrent pass)", "cycles_per_s", "{:.1f}"),
    ("engine ms/cycle, median", "engine_ms_median", "{:.3f}"),
    ("engine ms/cycle, p99", "engine_ms_p99", "{:.3f}"),
    ("engine ms/cycle, mean", "engine_ms_mean", "{:.3f}"),
    ("  of which store calls, median", "store_ms_median", "{:.3f}"),
    ("LLM HTTP ms/cycle, median (excluded)", "llm_ms_median", "{:.3f}"),
    ("wall ms/cycle under load, median", "wall_ms_median_under_load", "{:.3f}"),
    ("LLM calls/cycle", "llm_calls_per_cycle", "{:.2f}"),
    ("store calls/cycle", "store_calls_per_cycle", "{:.2f}"),
    ("chat posts+edits/cycle", "chat_calls_per_cycle", "{:.2f}"),
    ("stored bytes/session, median", "stored_bytes_median", "{:,}"),
    ("stored bytes/session, max", "stored_bytes_max", "{:,}"),
    ("sessions waiting for approval", "waiting", "{}"),
    ("loop-guard notes in their steps", "loop_guard_notes", "{}"),
    ("failed commands in their steps", "command_errors", "{}"),
    ("runner.busy (tasks held)", "runner_busy", "{}"),
    ("Session objects left in memory", "sessions_in_memory", "{}"),
    ("asyncio tasks before", "tasks_before", "{}"),
    ("asyncio tasks after", "tasks_after", "{}"),
    ("Python objects (gc) before", "gc_objects_before", "{:,}"),
    ("Python objects (gc) after", "gc_objects_after", "{:,}"),
    ("VmRSS before the sessions, kB", "rss_before_kb", "{:,}"),
    ("VmRSS after, all waiting, kB", "rss_after_kb", "{:,}"),
]


def table(results: list[StoreResult]) -> str:
    width = max(len(label) for label, _, _ in ROWS) + 2
    lines = [f"{'':<{width}}" + "".join(f"{r.name:>14}" for r in results)]
    for label, key, fmt in ROWS:
        lines.append(f"{label:<{width}}" + "".join(f"{fmt.format(r.values[key]):>14}" for r in results))
    growth = [
        (r.values["rss_after_kb"] - r.values["rss_before_kb"]) * 1024 / max(1, r.values["waiting"])
        for r in results
    ]
    lines.append(
        f"{'VmRSS growth per waiting session, B':<{width}}" + "".join(f"{g:>14,.0f}" for g in growth)
    )
    return "\n".join(lines)


def problems(results: list[StoreResult], opts: Options) -> list[str]:
    found = []
    for r in results:
        v = r.values
        if v["waiting"] != opts.sessions:
            found.append(f"{r.name}: {v['waiting']} of {opts.sessions} sessions wait for approval")
        if v["loop_guard_notes"] or v["command_errors"]:
            found.append(
                f"{r.name}: {v['loop_guard_notes']} loop-guard notes, {v['command_errors']} failed commands"
            )
        if v["runner_busy"] != 0:
            found.append(f"{r.name}: runner.busy is {v['runner_busy']} while every session waits")
        if v["sessions_in_memory"] > 0:
            found.append(f"{r.name}: {v['sessions_in_memory']} Session objects stayed in memory")
        if v["tasks_after"] > v["tasks_before"]:
            found.append(f"{r.name}: {v['tasks_after'] - v['tasks_before']} asyncio tasks stayed alive")
    return found


# ---------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=200, help="sessions per store (default 200)")
    parser.add_argument("--cycles", type=int, default=5, help="approved cycles per session (default 5)")
    parser.add_argument("--stores", default="redis,sqlite", help="comma list: redis,sqlite (default both)")
    parser.add_argument("--concurrency", type=int, default=20, help="sessions driven at once (default 20)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    parser.add_argument(
        "--latency-sessions",
        type=int,
        default=50,
        help="sessions of the sequential latency pass (default 50, at most --sessions)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the latency pass (inflates times)")
    parser.add_argument("--strict", action="store_true", help="exit 3 when the Redis target is missed")
    args = parser.parse_args(argv)
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    if not stores or set(stores) - {"redis", "sqlite"}:
        parser.error("--stores takes redis, sqlite or both")
    if min(args.sessions, args.cycles, args.concurrency, args.latency_sessions) < 1:
        parser.error("--sessions, --cycles, --concurrency and --latency-sessions must be at least 1")
    return Options(
        sessions=args.sessions,
        cycles=args.cycles,
        concurrency=args.concurrency,
        latency_sessions=min(args.latency_sessions, args.sessions),
        stores=list(dict.fromkeys(stores)),
        redis_url=args.redis_url,
        profile=args.profile,
        strict=args.strict,
    )


async def run(opts: Options, llm_url: str, work: Path, prefix: str) -> list[StoreResult]:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)  # as asyncio.run does for Ctrl-C
    try:
        results = []
        for store in opts.stores:
            settings = bench_settings(store, llm_url, work / store, opts.redis_url, prefix)
            print(f"[{store}] running ...", file=sys.stderr, flush=True)
            results.append(await bench_store(store, opts, settings))
        return results
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM outside the event loop cleans up as Ctrl-C does


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    work = Path(tempfile.mkdtemp(prefix="autogpt-bench-"))
    try:
        with llm_server(work / "llm_server.log") as llm_url:
            results = asyncio.run(run(opts, llm_url, work, prefix))
    except (BenchError, StoreError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        if "redis" in opts.stores:
            with contextlib.suppress(redis.RedisError):
                clean_redis(opts.redis_url, prefix)
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"Engine benchmark: {opts.sessions} sessions x {opts.cycles} approved cycles per store; "
        f"scripted LLM in a separate process, answering at once; long-term memory off; "
        f"{os.cpu_count()} CPUs."
    )
    print(
        f"Latency: sequential pass, {opts.latency_sessions} sessions x {opts.cycles} cycles one at a time, "
        "so event-loop contention is not counted; engine ms = wall time of decide + drive minus the "
        "LLM HTTP calls in it (store calls and chat posts are engine time)."
    )
    print(
        f"Throughput: concurrent pass, {opts.sessions} sessions driven {opts.concurrency} at a time "
        "(session start and planning included). Memory: after it every session waits for approval."
    )
    print()
    print(table(results))
    for r in results:
        if r.profile:
            print(f"\ncProfile of the {r.name} latency pass (times inflated by profiling):\n{r.profile}")
    redis_result = next((r for r in results if r.name == "redis"), None)
    met: bool | None = None
    target = f"Target: median engine ms per cycle under {TARGET_MS:g} ms on Redis"
    print()
    if redis_result is not None:
        median = redis_result.values["engine_ms_median"]
        met = median < TARGET_MS
        verdict = "MET" if met else "MISSED"
        print(f"{target}: {verdict} ({median:.3f} ms)")
    else:
        print(f"{target}: not run")
    found = problems(results, opts)
    for problem in found:
        print(f"PROBLEM: {problem}")
    payload = {
        "sessions": opts.sessions,
        "cycles_per_session": opts.cycles,
        "concurrency": opts.concurrency,
        "latency_sessions": opts.latency_sessions,
        "redis_prefix": prefix if "redis" in opts.stores else None,
        "target_engine_ms_median_redis": TARGET_MS,
        "target_met": met,
        "ok": not found,
        "stores": {r.name: r.values for r in results},
    }
    print("BENCH " + json.dumps(payload, sort_keys=True), flush=True)
    if found:
        return 1
    return 3 if opts.strict and met is False else 0


if __name__ == "__main__":
    sys.exit(main())
