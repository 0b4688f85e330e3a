"""What a user waits for: from approving a step to the next step posted, with an LLM that takes
a fixed time per call.

    python bench/latency.py [--sessions 4] [--cycles 6] [--delay 1.0] [--embed-delay 0.1]
                            [--memory local|no_memory] [--store sqlite|redis]

The scripted OpenAI-compatible server (tests/fakes/llm_server.py) runs in this process, in its
own thread, answering every chat call after `--delay` seconds (embeddings after
`--embed-delay`), with varied replies (its bench defaults). Each session is started and driven
by the real core (store, engine, runner, memory) behind a minimal chat platform that notes when
each step is posted. A simulated user approves each step once the session is at rest (as a
person reading it would), and the wait from that approval to the next step posted is measured.

Reported: the median and p95 wait per step, the wait in LLM calls (median / delay), chat calls
per cycle (execution, task creation, prioritisation), and chat calls on the critical path per
cycle: calls that started after the approval and were answered before the next step was posted.
AutoGPT v0.4.7 makes 1 to 2 chat calls per cycle, one of them between a decision and the next
step. Target: a median wait of at most 1.2 calls. Last line: `BENCH {json}`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.adapter import ChatAdapter  # noqa: E402
from bot.core import Core  # noqa: E402
from bot.decisions import Decision  # noqa: E402
from bot.grammar import GoalCommand  # noqa: E402
from bot.models import Actor, MessageRef, Place, SessionState  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests.fakes.llm_server import ScriptedLLM, _bench_defaults  # noqa: E402

CHAT_KINDS = ("execution_reply", "task_list")
TARGET_CALLS = 1.2


class Timed(ChatAdapter):
    """A chat platform that notes when each step of each session is posted."""

    name: ClassVar[str] = "bench"

    def __init__(self) -> None:
        self.count = 0
        self.steps: dict[tuple[str, int], float] = {}
        self.changed = asyncio.Event()

    async def open_session(self, place: Place, view: Any) -> Place:
        return place.model_copy(update={"thread": view.session_id})

    async def post(self, place: Place, view: Any) -> MessageRef:
        self.count += 1
        if getattr(view, "kind", None) == "step":
            self.steps.setdefault((view.session_id, view.step_no), time.monotonic())
            self.changed.set()
        return MessageRef(platform=self.name, channel=place.channel, id=str(self.count), thread=place.thread)

    async def update(self, ref: MessageRef, view: Any) -> None:
        return None

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        return None

    async def posted(self, session_id: str, step_no: int, within: float) -> float | None:
        deadline = time.monotonic() + within
        while (session_id, step_no) not in self.steps:
            self.changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return None
        return self.steps[(session_id, step_no)]


def on_the_path(asked: list[Any], approved: float, shown: float, delay: float) -> int:
    """Calls the next step waited for: those made after the approval and answered before the
    step was posted, calls that ran at the same time counted once (the most calls one after
    another that fit in the wait)."""
    spans = sorted((r.at + delay, r.at) for r in asked if r.at >= approved and r.at + delay <= shown + 0.05)
    count, free = 0, approved
    for end, start in spans:
        if start >= free - 0.05:
            count, free = count + 1, end
    return count


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(args: argparse.Namespace, llm: ScriptedLLM, data: Path) -> dict[str, Any]:
    values: dict[str, Any] = {
        "openai_api_key": "sk-bench",
        "openai_base_url": llm.base_url,
        "data_dir": data,
        "memory_backend": args.memory,
        "max_cycles": args.cycles + 5,
        "llm_timeout": args.delay * 5 + 10,
        "session_budget_usd": 1000.0,
        "user_daily_budget_usd": 1000.0,
        "max_sessions_per_user": args.sessions + 1,
    }
    if args.store == "redis":
        values.update(redis_url=args.redis_url, redis_prefix=f"bench-latency-{time.time_ns()}:")
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    core = await Core.start(settings)
    chat = Timed()
    core.add_platform(chat)
    actor = Actor(platform=chat.name, user_id="bench", name="bench")
    waits: list[float] = []
    critical: list[int] = []
    chat_calls = 0
    cycles = 0
    try:
        for n in range(args.sessions):
            command = GoalCommand(goals=[f"write notes number {n}", "keep a log"])
            outcome = await core.service.start(actor, Place(platform=chat.name, channel="C"), command)
            if not outcome.ok or outcome.session_id is None:
                raise SystemExit(f"could not start a session: {outcome.message}")
            sid = outcome.session_id
            if await chat.posted(sid, 1, args.delay * 10 + 30) is None:
                raise SystemExit(f"session {sid}: no first step")
            await core.runner.idle(args.delay * 10 + 30)
            for step_no in range(1, args.cycles + 1):
                before = len(llm.requests)
                approved = time.monotonic()
                decided = await core.service.decide(sid, actor, Decision(action="approve", step_no=step_no))
                if not decided.ok:
                    raise SystemExit(f"session {sid}: {decided.message}")
                shown = await chat.posted(sid, step_no + 1, args.delay * 10 + 30)
                if shown is None:
                    session = await core.store.get(sid)
                    state = session.state if session else "gone"
                    raise SystemExit(f"session {sid}: no step {step_no + 1} ({state})")
                waits.append(shown - approved)
                await core.runner.idle(args.delay * 10 + 30)  # at rest, as when a person reads the step
                asked = [r for r in list(llm.requests)[before:] if r.kind in CHAT_KINDS]
                chat_calls += len(asked)
                cycles += 1
                critical.append(on_the_path(asked, approved, shown, args.delay))
            session = await core.store.get(sid)
            if session is None or session.state != SessionState.AWAITING_APPROVAL:
                raise SystemExit(f"session {sid} ended unexpectedly")
            await core.service.decide(sid, actor, Decision(action="stop"))
            await core.runner.idle(30)
    finally:
        await core.close()
    median = statistics.median(waits)
    return {
        "sessions": args.sessions,
        "cycles": cycles,
        "delay_s": args.delay,
        "embed_delay_s": args.embed_delay,
        "memory": args.memory,
        "store": args.store,
        "wait_median_s": round(median, 3),
        "wait_p95_s": round(pct(waits, 0.95), 3),
        "wait_in_calls": round(median / args.delay, 2),
        "chat_calls_per_cycle": round(chat_calls / cycles, 2),
        "critical_calls_per_cycle": round(statistics.mean(critical), 2),
        "target_met": median <= TARGET_CALLS * args.delay,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--cycles", type=int, default=6, help="approved steps per session")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each chat call takes")
    parser.add_argument("--embed-delay", type=float, default=0.1, help="seconds each embedding takes")
    parser.add_argument("--memory", choices=("local", "no_memory"), default="local")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    args = parser.parse_args(argv)
    with ScriptedLLM() as llm, tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        _bench_defaults(llm)
        llm.requests = []  # keep them all: the bench reads their arrival times
        llm.delay = args.delay
        if hasattr(llm, "embed_delay"):
            llm.embed_delay = args.embed_delay
        report = asyncio.run(run(args, llm, Path(tmp)))
    print(f"LLM call: {args.delay:g} s, embedding: {args.embed_delay:g} s, memory: {args.memory}")
    print(f"{report['cycles']} approvals in {report['sessions']} sessions")
    print(
        f"wait from an approval to the next step: median {report['wait_median_s']:.2f} s "
        f"({report['wait_in_calls']:.2f} calls), p95 {report['wait_p95_s']:.2f} s"
    )
    print(
        f"chat calls per cycle: {report['chat_calls_per_cycle']:.2f}; "
        f"on the critical path: {report['critical_calls_per_cycle']:.2f}"
    )
    print(f"target (median at most {TARGET_CALLS} calls): {'met' if report['target_met'] else 'missed'}")
    print("BENCH " + json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
