"""Load benchmark: K `autogpt-bot run` processes on one Redis serve S concurrent continuous
sessions through the Slack adapter in HTTP mode.

    python -m bench.load [--processes 2] [--sessions 500] [--delay 0.5] [--cycles 3]
                         [--redis-url redis://127.0.0.1:6379/14]
    python -m bench.load --ingress 1 --workers 2 [--platform slack] ...

With `--ingress N --workers K` the processes are split by role (`autogpt-bot run --role ...`):
commands and clicks go to the N ingress processes only, the K workers drive the sessions from the
work queue (bot/queue.py) and post through the Web API. Reported on top: CPU per cycle of the
ingress and of the workers apart, RSS of each, the queue wait (enqueue to the start of the
drive, median and p99, from the workers' `autogpt_queue_wait_seconds` histograms), sessions
still held by a worker at the end (none should be: only manual sessions waiting for a click are
left), and the throughput against the CPU bound (the cycles/s the machine's cores could pay at
the measured CPU per cycle) as well as against the LLM bound (the ideal below). Only Slack
(HTTP mode) is driven by this benchmark: `--platform discord` says so and stops.

- The scripted LLM runs in its own process (this module with `--llm-server`: a `ScriptedLLM`
  with `.delay` set and a default agent that appends a line per cycle and finishes at cycle C).
- The local fake Slack Web API (`tests/fakes/slack_api.py`) runs in this process and records
  every post; commands and clicks are signed as Slack signs them and spread over the processes.
- S sessions are started with `/autogpt goal --continuous C` (one user each), round robin over the
  processes. Meanwhile a few step-by-step sessions are approved by clicks sent to another process
  than the one that started them, and `/autogpt list` is sent every 100 ms, to time
  acknowledgements under load.

Reported:
- cycles/s against the ideal S / (3 x delay): a cycle between two step posts makes 3 LLM calls
  (execution, task creation, prioritisation), so one session cannot do better than one cycle per
  3 x delay;
- engine overhead per cycle: the time between two consecutive step posts of a session (as the
  Web API received them) minus 3 x delay (median, p99);
- acknowledgement latency (median, p99) against Slack's 3-second limit: of the commands and clicks
  sent while the sessions run (what the target is about), and apart from them of the S goal
  commands that start the sessions, 64 in flight at once (a burst no team makes by hand);
- CPU per cycle of each part (bots, scripted LLM, this driver with the fake Web API, Redis),
  how busy the machine was, and the cycles/s its cores could sustain at that cost;
- Slack Web API calls per cycle, by method;
- Redis commands and bytes (in + out) per cycle: `INFO stats` deltas over the run (the whole
  server: run it on a quiet Redis);
- VmRSS per process when S/4, S/2 and S sessions were started, and at the end.

Targets: >= 80 % of the ideal throughput, acknowledgements < 100 ms at p99, memory flat as S
grows. Prints a table and a last line `LOAD {json}`. Everything (processes, Redis keys, temporary
folders) is cleaned up on exit and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import gc
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/load.py`: `tests` (the fakes) is not installed
    sys.path.insert(0, str(REPO))

from adapters.slack import ids  # noqa: E402
from tests.fakes.cluster import Cluster, cluster_env, free_port  # noqa: E402
from tests.fakes.llm_server import ReplyLike, ScriptedLLM, agent_reply, tasks_reply  # noqa: E402
from tests.fakes.slack_api import FakeSlackAPI, Posted  # noqa: E402

ACK_LIMIT_S = 3.0
TARGET_THROUGHPUT = 0.8
TARGET_ACK_P99_MS = 100.0
START_BURST = 64  # goal commands in flight at once while the S sessions are started


# ---------------------------------------------------------------------------- the LLM process


def llm_server(port: int, delay: float, cycles: int) -> None:
    """Serve the scripted LLM: every answer after `delay`; cycle k < C appends, cycle C finishes."""

    def execution(body: dict[str, Any]) -> ReplyLike:
        cycle = 1 + sum(1 for m in body["messages"] if m["role"] == "assistant")
        if cycle >= cycles:
            return agent_reply("finish", {"reason": "done"})
        return agent_reply(
            "append_to_file", {"filename": "log.txt", "text": f"{cycle}\n"}, text=f"cycle {cycle}"
        )

    listed = re.compile(r"^\d+\. (.+)$", re.MULTILINE)
    counter = itertools.count(1)

    def task_list(body: dict[str, Any]) -> ReplyLike:  # two new tasks; prioritisation echoes them
        prompt = str(body["messages"][0].get("content") or "")
        if "task prioritization AI" in prompt:
            return tasks_reply(*listed.findall(prompt.split("Consider the ultimate objective")[0]))
        n = next(counter)
        return tasks_reply(f"task {n}.1", f"task {n}.2")

    with ScriptedLLM("127.0.0.1", port) as llm:
        llm.requests = collections.deque(maxlen=10)  # type: ignore[assignment]
        llm.delay = delay
        llm.default["execution_reply"] = execution
        llm.default["task_list"] = task_list
        print(f"READY {llm.base_url}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


# ---------------------------------------------------------------------------- measuring


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process has used (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def redis_stats(client: redis.Redis) -> tuple[int, int]:
    info = client.info("stats")
    return int(info["total_commands_processed"]), int(info["total_net_input_bytes"]) + int(
        info["total_net_output_bytes"]
    )


class Load:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        # "start": the S goal commands, sent START_BURST at a time (a stress of its own);
        # "command" and "click": sent while the sessions run, what the targets are about
        self.acks: dict[str, list[float]] = {"start": [], "command": [], "click": []}
        self.slow: dict[str, int] = {"start": 0, "command": 0, "click": 0}
        self.failed: list[str] = []
        self.rss: dict[str, list[int]] = {}

    async def timed(self, kind: str, send: Any) -> None:
        try:
            sent = await send
        except Exception as exc:  # a refused connection under load is a result too
            self.failed.append(f"{kind}: {type(exc).__name__}: {exc}")
            return
        self.acks[kind].append(sent.seconds)
        if sent.status != 200:
            self.failed.append(f"{kind}: HTTP {sent.status} {sent.body[:100]}")
        if sent.seconds > ACK_LIMIT_S:
            self.slow[kind] += 1

    def stuck(self, rstats: redis.Redis, cluster: Cluster) -> list[str]:
        """Why sessions did not finish: their states in the store, and the bots' last warnings."""
        states: collections.Counter[str] = collections.Counter()
        examples: dict[str, str] = {}
        for key in rstats.scan_iter(match=f"{self.args.prefix}session:*", count=1000):
            raw = rstats.hget(key, "d")
            if not isinstance(raw, bytes | str):
                continue
            doc = json.loads(raw)
            if doc.get("state") in ("finished", "stopped"):
                continue
            label = f"{doc.get('state')}/{doc.get('phase')}/{doc.get('pause_kind')}"
            states[label] += 1
            examples.setdefault(label, f"{doc.get('id')}: {str(doc.get('error') or doc.get('reason'))[:200]}")
        found = [f"unfinished {label}: {n} (e.g. {examples[label]})" for label, n in states.most_common()]
        said: collections.Counter[str] = collections.Counter()
        for proc in cluster.procs:
            for line in proc.output().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("level") in ("WARNING", "ERROR"):
                    said[re.sub(r"\b[a-z0-9]{6}\b", "<id>", str(entry.get("message")))[:200]] += 1
        found += [f"bots logged {n} x: {message}" for message, n in said.most_common(5)]
        return found

    def sample_rss(self, label: str, cluster: Cluster) -> None:
        self.rss[label] = [p.rss_kib() for p in cluster.procs]

    async def run(
        self, api: FakeSlackAPI, cluster: Cluster, rstats: redis.Redis, llm_pid: int
    ) -> dict[str, Any]:
        a = self.args
        redis_pid = int(rstats.info("server")["process_id"])
        bots = {
            "ingress": [p.pid for p in cluster.procs if p.role == "ingress"],
            "workers": [p.pid for p in cluster.procs if p.role == "worker"],
        }
        pids = {
            **({"bots": [p.pid for p in cluster.procs]} if not a.ingress else bots),
            "llm": [llm_pid],
            "driver": [os.getpid()],  # this process: the fake Slack Web API and the load
            "redis": [redis_pid],
        }
        cpu0 = {part: sum(map(cpu_s, ps)) for part, ps in pids.items()}
        s = a.sessions
        # commands and clicks go to the processes that receive: all of them, or the ingress ones
        senders = [cluster.sender(p.index) for p in cluster.procs if p.role in ("all", "ingress")]
        k = len(senders)
        manual_n = max(2, min(20, s // 25))
        marks = {max(1, s // 4): "S/4", max(1, s // 2): "S/2", s: "S"}
        ops0, bytes0 = redis_stats(rstats)
        started = time.monotonic()
        stop_probe = asyncio.Event()

        async def probe() -> None:  # a command every 100 ms, through each process in turn
            n = 0
            while not stop_probe.is_set():
                await self.timed("command", senders[n % k].command("list", user="UPROBE"))
                n += 1
                await asyncio.sleep(0.1)

        probing = asyncio.create_task(probe())
        # the step-by-step sessions whose steps are approved by clicks through another process
        for j in range(manual_n):
            await self.timed("command", senders[j % k].command("goal approve me", user=f"UM{j}"))
        limit = asyncio.Semaphore(START_BURST)

        async def start(i: int) -> None:
            async with limit:
                await self.timed(
                    "start", senders[i % k].command(f"goal --continuous {a.cycles} load {i}", user=f"UL{i}")
                )
            if i + 1 in marks:
                self.sample_rss(marks[i + 1], cluster)

        starting = asyncio.gather(*(start(i) for i in range(s)))
        clicked: set[str] = set()
        seen = 0
        step_at: dict[str, list[float]] = collections.defaultdict(list)
        finished: set[str] = set()
        manual_threads: dict[str, int] = {}
        manual_steps: list[tuple[str, str]] = []
        clicks: list[asyncio.Task[None]] = []
        deadline = started + a.timeout
        while True:
            calls = api.calls
            for call in calls[seen:]:
                if call.method != "chat.postMessage" or call.status != 200 or not call.response.get("ok"):
                    continue
                text = str(call.payload.get("text") or "")
                thread = str(call.payload.get("thread_ts") or "")
                if text.startswith("Step "):
                    step_at[thread].append(call.at)
                elif text.startswith("Session ") and "finished" in text:
                    finished.add(thread)
                elif "approve me" in json.dumps(call.payload.get("blocks")) and not thread:
                    manual_threads[str(call.response.get("ts"))] = len(manual_threads)
                if text.startswith("Step ") and thread in manual_threads:
                    manual_steps.append((str(call.payload.get("channel")), str(call.response.get("ts"))))
            seen = len(calls)
            # approve each pending step of the manual sessions, through the next process (only
            # their messages are looked at: scanning every message each time would load this
            # process, which also serves the Web API, and slow the acknowledgements it times)
            for channel, ts in manual_steps:
                message = api.messages.get((channel, ts))
                if message is not None and ts not in clicked:
                    buttons = [b["action_id"] for _, b in message.buttons()]
                    if ids.APPROVE in buttons:
                        clicked.add(ts)
                        j = manual_threads[message.thread_ts]
                        click = senders[(j + 1) % k].click(
                            Posted(channel, ts, message.thread_ts, message.versions), ids.APPROVE, f"UM{j}"
                        )
                        clicks.append(asyncio.create_task(self.timed("click", click)))
            if len(finished - set(manual_threads)) >= s and starting.done():
                break
            if time.monotonic() > deadline:
                self.failed.append(f"timeout: {len(finished)} of {s} sessions finished")
                self.failed += self.stuck(rstats, cluster)
                break
            await asyncio.sleep(0.05)
        wall = time.monotonic() - started
        stop_probe.set()
        await probing
        await starting
        await asyncio.gather(*clicks)
        ops1, bytes1 = redis_stats(rstats)
        cpu1 = {part: sum(map(cpu_s, ps)) for part, ps in pids.items()}
        self.sample_rss("end", cluster)
        queue = queue_figures(cluster)
        for _ in range(50):  # drives that posted their summary may still be winding down
            if queue.get("sessions_held_by_workers_at_end", 0) == 0:
                break
            await asyncio.sleep(0.2)
            queue = queue_figures(cluster)

        load_threads = [t for t in step_at if t not in manual_threads]
        cycles = sum(len(step_at[t]) for t in load_threads)
        overhead: list[float] = []
        for t in load_threads:
            times = sorted(step_at[t])
            overhead += [(b - a_) - 3 * a.delay for a_, b in itertools.pairwise(times)]
        ideal = s / (3 * a.delay)
        cpu = {part: cpu1[part] - cpu0[part] for part in pids}
        cores = os.cpu_count() or 1
        per_cycle_s = sum(cpu.values()) / max(1, cycles)
        cpu_bound = cores / max(1e-9, per_cycle_s)
        return {
            "processes": len(cluster.procs),
            "roles": [p.role for p in cluster.procs],
            "sessions": s,
            "delay_s": a.delay,
            "cycles_per_session": a.cycles,
            "wall_s": round(wall, 2),
            "cycles": cycles,
            "finished": len(set(load_threads) & finished),
            "cycles_per_s": round(cycles / wall, 2),
            "ideal_cycles_per_s": round(ideal, 2),
            "throughput_ratio": round(cycles / wall / ideal, 3),
            "overhead_ms_median": round(1000 * pct(overhead, 50), 1),
            "overhead_ms_p99": round(1000 * pct(overhead, 99), 1),
            "command_ack_ms_median": round(1000 * pct(self.acks["command"], 50), 1),
            "command_ack_ms_p99": round(1000 * pct(self.acks["command"], 99), 1),
            "click_ack_ms_median": round(1000 * pct(self.acks["click"], 50), 1),
            "click_ack_ms_p99": round(1000 * pct(self.acks["click"], 99), 1),
            "start_ack_ms_median": round(1000 * pct(self.acks["start"], 50), 1),
            "start_ack_ms_p99": round(1000 * pct(self.acks["start"], 99), 1),
            "commands": len(self.acks["command"]),
            "clicks": len(self.acks["click"]),
            "acks_over_3s": sum(self.slow.values()),
            "redis_ops_per_cycle": round((ops1 - ops0) / max(1, cycles), 1),
            "redis_bytes_per_cycle": round((bytes1 - bytes0) / max(1, cycles)),
            "rss_mib": {label: [round(v / 1024, 1) for v in vals] for label, vals in self.rss.items()},
            "slack_calls_per_cycle": {
                method: round(n / max(1, cycles), 2)
                for method, n in collections.Counter(c.method for c in api.calls).most_common()
            },
            "cpu_ms_per_cycle": {part: round(1000 * v / max(1, cycles), 2) for part, v in cpu.items()},
            "cpu_busy": round(sum(cpu.values()) / wall / cores, 3),  # of all the machine's cores
            "cores": cores,
            # what the cores could sustain at this CPU cost per cycle, if nothing else ran
            "cpu_bound_cycles_per_s": round(cpu_bound, 1),
            "cpu_bound_ratio": round(cycles / wall / cpu_bound, 3),
            **queue,
            "violations": len(api.violations),
            "failures": self.failed[:20],
        }


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """Prometheus's histogram_quantile over cumulative (upper bound, count) buckets."""
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return float("nan")
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (rank - below) / max(1e-12, count - below)
        lower, below = upper, count
    return lower


def queue_figures(cluster: Cluster) -> dict[str, Any]:
    """From the workers' /metrics: queue wait (median, p99), kicks reclaimed, sessions still held."""
    workers = [p for p in cluster.procs if p.role == "worker"]
    if not workers:
        return {}
    buckets: dict[float, float] = collections.defaultdict(float)
    reclaimed = driving = 0.0
    for p in workers:
        for name, value in p.metrics().items():
            if name.startswith("autogpt_queue_wait_seconds_bucket{"):
                bound = name.split('le="', 1)[1].split('"', 1)[0]
                buckets[float("inf") if bound == "+Inf" else float(bound)] += value
            elif name == "autogpt_queue_reclaimed_total":
                reclaimed += value
            elif name == "autogpt_queue_driving":
                driving += value
    pairs = list(buckets.items())
    return {
        "queue_wait_ms_median": round(1000 * histogram_quantile(0.5, pairs), 1),
        "queue_wait_ms_p99": round(1000 * histogram_quantile(0.99, pairs), 1),
        "queue_kicks": int(max((v for b, v in pairs if b == float("inf")), default=0)),
        "queue_reclaimed": int(reclaimed),
        "sessions_held_by_workers_at_end": int(driving),
    }


def table(r: dict[str, Any]) -> str:
    rows = [
        (
            "processes x sessions",
            f"{r['processes']} ({', '.join(r['roles'])}) x {r['sessions']} "
            f"(delay {r['delay_s']} s, {r['cycles_per_session']} cycles)",
        ),
        ("wall", f"{r['wall_s']} s, {r['cycles']} cycles, {r['finished']} sessions finished"),
        (
            "throughput",
            f"{r['cycles_per_s']} cycles/s of ideal {r['ideal_cycles_per_s']} (S / 3 x delay): "
            f"{100 * r['throughput_ratio']:.0f} % (target >= {100 * TARGET_THROUGHPUT:.0f} %)",
        ),
        ("engine overhead / cycle", f"median {r['overhead_ms_median']} ms, p99 {r['overhead_ms_p99']} ms"),
        (
            "command acks",
            f"median {r['command_ack_ms_median']} ms, p99 {r['command_ack_ms_p99']} ms ({r['commands']}, "
            f"sent while the sessions run; limit 3000 ms, target p99 < {TARGET_ACK_P99_MS:.0f} ms)",
        ),
        (
            "click acks",
            f"median {r['click_ack_ms_median']} ms, p99 {r['click_ack_ms_p99']} ms "
            f"({r['clicks']}, same target)",
        ),
        (
            "start acks",
            f"median {r['start_ack_ms_median']} ms, p99 {r['start_ack_ms_p99']} ms "
            f"(the {r['sessions']} goal commands, {START_BURST} at a time)",
        ),
        ("acks over 3 s", str(r["acks_over_3s"])),
        ("redis / cycle", f"{r['redis_ops_per_cycle']} commands, {r['redis_bytes_per_cycle']} bytes"),
        (
            "Slack calls / cycle",
            ", ".join(f"{m} {v}" for m, v in r["slack_calls_per_cycle"].items()),
        ),
        (
            "CPU ms / cycle",
            ", ".join(f"{part} {v}" for part, v in r["cpu_ms_per_cycle"].items())
            + f" (total {sum(r['cpu_ms_per_cycle'].values()):.1f})",
        ),
        (
            "CPU busy",
            f"{100 * r['cpu_busy']:.0f} % of {r['cores']} cores; at this cost the cores sustain at most "
            f"{r['cpu_bound_cycles_per_s']} cycles/s (CPU bound): {100 * r['cpu_bound_ratio']:.0f} % of it",
        ),
        *(
            [
                (
                    "queue wait",
                    f"median {r['queue_wait_ms_median']} ms, p99 {r['queue_wait_ms_p99']} ms "
                    f"({r['queue_kicks']} kicks, {r['queue_reclaimed']} reclaimed; "
                    f"{r['sessions_held_by_workers_at_end']} sessions held by workers at the end)",
                )
            ]
            if "queue_wait_ms_median" in r
            else []
        ),
        *[(f"RSS at {label} (MiB)", ", ".join(map(str, v))) for label, v in r["rss_mib"].items()],
        ("payload violations", str(r["violations"])),
        ("failures", "; ".join(r["failures"]) or "none"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="autogpt-load-"))
    prefix = f"bench:{uuid.uuid4().hex[:10]}:"
    llm_port = free_port()
    llm = subprocess.Popen(  # noqa: ASYNC220 (started once, before the load)
        [
            sys.executable,
            "-m",
            "bench.load",
            "--llm-server",
            str(llm_port),
            "--delay",
            str(args.delay),
            "--cycles",
            str(args.cycles),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    rstats = redis.Redis.from_url(args.redis_url)
    cluster: Cluster | None = None
    try:
        assert llm.stdout is not None
        line = await asyncio.to_thread(llm.stdout.readline)
        if not line.startswith("READY "):
            raise RuntimeError(f"the LLM server did not start: {line!r}")
        llm_url = line.split()[1]
        async with FakeSlackAPI() as api:
            env = cluster_env(
                api,
                llm_url,
                args.redis_url,
                prefix,
                work / "data",
                lease_seconds=15,
                LOG_LEVEL="WARNING",
                CONTINUOUS_LIMIT=str(args.cycles + 2),
            )
            roles = ["ingress"] * args.ingress + ["worker"] * args.workers if args.ingress else None
            cluster = Cluster(
                len(roles) if roles else args.processes,
                env,
                work,
                api,
                roles=roles,
                nice={"worker": args.worker_nice},
            )
            await cluster.start(within=60)
            gc.freeze()  # as the bot does: full collections here would delay the acks being timed
            try:
                args.prefix = prefix
                return await Load(args).run(api, cluster, rstats, llm.pid)
            finally:
                await cluster.stop()
    finally:
        if cluster is not None:
            cluster.stop_sync(grace=5)
        if llm.poll() is None:
            llm.send_signal(signal.SIGTERM)
            try:
                llm.wait(5)
            except subprocess.TimeoutExpired:
                llm.kill()
        keys = list(rstats.scan_iter(match=f"{prefix}*", count=1000))
        for i in range(0, len(keys), 500):
            rstats.delete(*keys[i : i + 500])
        rstats.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--processes", type=int, default=2, help="processes of ROLE=all (without --ingress)")
    p.add_argument("--ingress", type=int, default=0, metavar="N", help="N ingress processes (ROLE=ingress)")
    p.add_argument("--workers", type=int, default=2, metavar="K", help="with --ingress: K worker processes")
    p.add_argument("--platform", choices=("slack", "discord"), default="slack")
    p.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        metavar="N",
        help="with --ingress: run the workers at this niceness, so that the ingress gets the CPU "
        "first on one machine (as CPU requests do for pods); 0: as equals",
    )
    p.add_argument("--sessions", type=int, default=500)
    p.add_argument("--delay", type=float, default=0.5, help="seconds the scripted LLM takes per answer")
    p.add_argument("--cycles", type=int, default=3, help="cycles per session (the last one finishes)")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this many seconds")
    p.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14"))
    p.add_argument("--llm-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.llm_server:
        llm_server(args.llm_server, args.delay, args.cycles)
        return 0

    if args.platform == "discord":
        print(
            "bench.load drives Slack (HTTP mode) only; Discord's ingress and workers are covered by "
            "tests/test_roles.py",
            file=sys.stderr,
        )
        return 2

    def interrupt(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # a SIGTERM cleans up as Ctrl-C does
    try:
        result = asyncio.run(main_async(args))
    except KeyboardInterrupt:
        print("interrupted: processes stopped, keys and folders removed", file=sys.stderr)
        return 130
    print(table(result))
    print("LOAD " + json.dumps(result))
    return 0 if not result["failures"] else 1


if __name__ == "__main__":
    sys.exit(main())
