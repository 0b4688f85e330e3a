"""Load benchmark: K `autogpt-bot run` processes on one Redis serve S concurrent continuous
sessions through the Slack adapter in HTTP mode, or through Discord.

    python -m bench.load [--processes 2] [--sessions 500] [--delay 0.5] [--cycles 3]
                         [--redis-url redis://127.0.0.1:6379/14]
    python -m bench.load --ingress 1 --workers 2 [--platform slack] ...
    python -m bench.load --platform discord [--ingress 1 --workers 2] ...

With `--ingress N --workers K` the processes are split by role (`autogpt-bot run --role ...`):
commands and clicks go to the N ingress processes only, the K workers drive the sessions from the
work queue (bot/queue.py) and post through the Web API. Reported on top: CPU per cycle of the
ingress and of the workers apart, RSS of each, the queue wait (enqueue to the start of the
drive, median and p99, from the workers' `autogpt_queue_wait_seconds` histograms), sessions
still held by a worker at the end (none should be: only manual sessions waiting for a click are
left), and the throughput against the CPU bound (the cycles/s the machine's cores could pay at
the measured CPU per cycle) as well as against the LLM bound (the ideal below).

`--platform discord` runs the same scenario through the fake Discord (tests/fakes/discord: the
gateway and the REST API, in this process as the fake Slack Web API is). Discord allows one gateway
connection per shard and the bot does not shard, so exactly one process receives: with
`--ingress 1 --workers K` the ingress holds the gateway and the workers post through the REST API
(`--ingress` above 1 is refused); without `--ingress` the old mode is one ROLE=all process that
receives and drives (every ROLE=all process would connect to the gateway and answer each event
again, and one without it receives nothing), so `--processes` above 1 is said and run as 1.
Sessions start by mentions (`goal --continuous C ...`), `/autogpt list` is the command sent
every 100 ms, clicks are button interactions on the manual sessions' step messages; an
acknowledgement is the time until the interaction's callback (or the mention's answer: the
session's root message, a reply to it) reached the fake. Reported the same, with Discord's REST
calls per cycle by route, and the gateway connections made (one).

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
from typing import Any, Final

import redis
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # `python bench/load.py`: `tests` (the fakes) is not installed
    sys.path.insert(0, str(REPO))

from adapters.slack import ids  # noqa: E402
from tests.fakes.cluster import Cluster, cluster_env, discord_env, free_port  # noqa: E402
from tests.fakes.discord import CHANNEL_ID, FakeDiscord, Interaction, Message  # noqa: E402
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

    def pids(self, cluster: Cluster, rstats: redis.Redis, llm_pid: int) -> dict[str, list[int]]:
        """The processes whose CPU is measured, by part."""
        bots = {
            "ingress": [p.pid for p in cluster.procs if p.role == "ingress"],
            "workers": [p.pid for p in cluster.procs if p.role == "worker"],
        }
        return {
            **({"bots": [p.pid for p in cluster.procs]} if not self.args.ingress else bots),
            "llm": [llm_pid],
            "driver": [os.getpid()],  # this process: the fake chat API and the load
            "redis": [int(rstats.info("server")["process_id"])],
        }

    async def run(
        self, api: FakeSlackAPI, cluster: Cluster, rstats: redis.Redis, llm_pid: int
    ) -> dict[str, Any]:
        a = self.args
        pids = self.pids(cluster, rstats, llm_pid)
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
        calls_by_method = collections.Counter(c.method for c in api.calls)
        return await self.report(
            cluster,
            rstats,
            pids,
            cpu0,
            (ops0, bytes0),
            wall,
            {t: times for t, times in step_at.items() if t not in manual_threads},
            finished,
            {"slack_calls_per_cycle": calls_by_method},
            len(api.violations),
        )

    async def report(
        self,
        cluster: Cluster,
        rstats: redis.Redis,
        pids: dict[str, list[int]],
        cpu0: dict[str, float],
        redis0: tuple[int, int],
        wall: float,
        step_at: dict[Any, list[float]],
        finished: set[Any],
        calls: dict[str, collections.Counter[str]],
        violations: int,
    ) -> dict[str, Any]:
        """The figures, once the load's sessions ended: `step_at` has, for each continuous
        session's thread, when each step was posted; `calls` the chat API's calls by method."""
        a = self.args
        s = a.sessions
        ops1, bytes1 = redis_stats(rstats)
        cpu1 = {part: sum(map(cpu_s, ps)) for part, ps in pids.items()}
        self.sample_rss("end", cluster)
        queue = queue_figures(cluster)
        for _ in range(250):  # drives that posted their summary may still be winding down
            if queue.get("sessions_held_by_workers_at_end", 0) == 0:
                break
            await asyncio.sleep(0.2)
            queue = queue_figures(cluster)

        cycles = sum(len(times) for times in step_at.values())
        overhead: list[float] = []
        for times in step_at.values():
            ordered = sorted(times)
            overhead += [(b - a_) - 3 * a.delay for a_, b in itertools.pairwise(ordered)]
        ideal = s / (3 * a.delay)
        cpu = {part: cpu1[part] - cpu0[part] for part in pids}
        cores = os.cpu_count() or 1
        per_cycle_s = sum(cpu.values()) / max(1, cycles)
        cpu_bound = cores / max(1e-9, per_cycle_s)
        return {
            "platform": a.platform,
            "processes": len(cluster.procs),
            "roles": [p.role for p in cluster.procs],
            "sessions": s,
            "delay_s": a.delay,
            "cycles_per_session": a.cycles,
            "wall_s": round(wall, 2),
            "cycles": cycles,
            "finished": len(set(step_at) & finished),
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
            "redis_ops_per_cycle": round((ops1 - redis0[0]) / max(1, cycles), 1),
            "redis_bytes_per_cycle": round((bytes1 - redis0[1]) / max(1, cycles)),
            "rss_mib": {  # in the order of the marks (the starts end in any order)
                label: [round(v / 1024, 1) for v in self.rss[label]]
                for label in ("S/4", "S/2", "S", "end")
                if label in self.rss
            },
            **{
                key: {method: round(n / max(1, cycles), 2) for method, n in counted.most_common()}
                for key, counted in calls.items()
            },
            "cpu_ms_per_cycle": {part: round(1000 * v / max(1, cycles), 2) for part, v in cpu.items()},
            "cpu_busy": round(sum(cpu.values()) / wall / cores, 3),  # of all the machine's cores
            "cores": cores,
            # what the cores could sustain at this CPU cost per cycle, if nothing else ran
            "cpu_bound_cycles_per_s": round(cpu_bound, 1),
            "cpu_bound_ratio": round(cycles / wall / cpu_bound, 3),
            **queue,
            "violations": violations,
            "failures": self.failed[:20],
        }


# ---------------------------------------------------------------------------- Discord


LOAD_USER: Final = 300000000000000000  # + i: the user who starts load session i
MANUAL_USER: Final = 310000000000000000  # + j: the user of step-by-step session j
PROBE_USER: Final = 320000000000000000
ANSWER_WAIT_S: Final = 30.0  # a mention or an interaction not answered by then is a failure
IDS: Final = re.compile(r"itoken-\d+|\d{5,}")  # in a REST path: snowflakes, interaction tokens


class LoadDiscord(FakeDiscord):
    """The fake Discord (gateway and REST API, in this process as the fake Slack Web API is),
    also noting when each message was created, and when each mention was answered (the bot's
    reply to it reached the fake: the acknowledgement a user sees)."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[tuple[float, Message]] = []
        self.answered_at: dict[int, float] = {}
        self._answer_waiters: dict[int, asyncio.Event] = {}

    async def _r_create(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], cid: str
    ) -> web.Response:
        at = time.monotonic()
        response = await super()._r_create(request, body, files, cid)
        if response.status == 200 and isinstance(response.body, bytes):
            message = self.messages.get(int(json.loads(response.body)["id"]))
            if message is not None:
                self.created.append((at, message))
                ref = (body.get("message_reference") or {}).get("message_id")
                if ref is not None and int(ref) not in self.answered_at:
                    self.answered_at[int(ref)] = at
                    self._answer_waiters.pop(int(ref), asyncio.Event()).set()
        return response

    async def answer_to(self, said: Message, within: float) -> float:
        """When `said` (a mention) was answered (time.monotonic()); TimeoutError after `within`."""
        if said.id not in self.answered_at:
            waiter = self._answer_waiters.setdefault(said.id, asyncio.Event())
            await asyncio.wait_for(waiter.wait(), within)
        return self.answered_at[said.id]

    def calls(self) -> collections.Counter[str]:
        """REST calls by method and route (ids and interaction tokens as {id})."""
        return collections.Counter(f"{r.method} {IDS.sub('{id}', r.path)}" for r in self.requests)


class DiscordLoad(Load):
    """The same scenario through Discord: one process holds the gateway (the ingress, or the one
    ROLE=all process); sessions start by mentions, `list` is the `/autogpt` command, clicks are
    button interactions, and an acknowledgement is the time until the interaction's callback
    (or the mention's answer) reached the fake."""

    async def mention(self, kind: str, api: LoadDiscord, user: int, text: str) -> None:
        sent = time.monotonic()
        said = await api.say(user, text)
        try:
            answered = await api.answer_to(said, ANSWER_WAIT_S)
        except TimeoutError:
            self.failed.append(f"{kind}: the mention {text!r} was not answered in {ANSWER_WAIT_S:g} s")
            return
        self.note(kind, answered - sent)

    async def interaction(self, kind: str, interaction: Interaction) -> None:
        try:
            await interaction.answered(ANSWER_WAIT_S)
        except TimeoutError:
            self.failed.append(f"{kind}: interaction {interaction.id} was not answered")
            return
        self.note(kind, float(interaction.callback["after_s"]))

    def note(self, kind: str, seconds: float) -> None:
        self.acks[kind].append(seconds)
        if seconds > ACK_LIMIT_S:
            self.slow[kind] += 1

    async def run(  # type: ignore[override]
        self, api: LoadDiscord, cluster: Cluster, rstats: redis.Redis, llm_pid: int
    ) -> dict[str, Any]:
        a = self.args
        pids = self.pids(cluster, rstats, llm_pid)
        cpu0 = {part: sum(map(cpu_s, ps)) for part, ps in pids.items()}
        s = a.sessions
        manual_n = max(2, min(20, s // 25))
        marks = {max(1, s // 4): "S/4", max(1, s // 2): "S/2", s: "S"}
        ops0, bytes0 = redis_stats(rstats)
        started = time.monotonic()
        stop_probe = asyncio.Event()

        async def probe() -> None:  # `/autogpt list` every 100 ms
            while not stop_probe.is_set():
                await self.interaction("command", await api.slash(PROBE_USER, "autogpt", command="list"))
                await asyncio.sleep(0.1)

        probing = asyncio.create_task(probe())
        for j in range(manual_n):  # the step-by-step sessions, approved by clicks
            await self.mention("command", api, MANUAL_USER + j, "goal approve me")
        limit = asyncio.Semaphore(START_BURST)

        async def start(i: int) -> None:
            async with limit:
                await self.mention("start", api, LOAD_USER + i, f"goal --continuous {a.cycles} load {i}")
            if i + 1 in marks:
                self.sample_rss(marks[i + 1], cluster)

        starting = asyncio.gather(*(start(i) for i in range(s)))
        seen = 0
        step_at: dict[int, list[float]] = collections.defaultdict(list)
        finished: set[int] = set()
        owners: dict[int, int] = {}  # thread -> the user who started its session
        manual_steps: list[Message] = []
        clicked: set[int] = set()
        clicks: list[asyncio.Task[None]] = []
        deadline = started + a.timeout
        while True:
            created = api.created
            for at, message in created[seen:]:
                if message.channel_id == CHANNEL_ID:
                    continue  # a session's root message, or an answer
                thread = message.channel_id
                if thread not in owners:  # a thread is opened from the root, which answers a mention
                    root = api.messages.get(thread)
                    ref = (root.current.get("message_reference") or {}) if root is not None else {}
                    said = api.messages.get(int(ref.get("message_id") or 0))
                    owners[thread] = said.author_id if said is not None else 0
                title = message.title
                if title.startswith("Step "):
                    step_at[thread].append(at)
                    if owners[thread] >= MANUAL_USER:
                        manual_steps.append(message)
                elif title.startswith("Session finished"):
                    finished.add(thread)
            seen = len(created)
            for message in manual_steps:  # approve each pending step of the manual sessions
                labels = [b.get("label") for b in message.buttons() if not b.get("disabled")]
                if message.id not in clicked and "Approve" in labels:
                    clicked.add(message.id)
                    click = await api.click(message, "Approve", owners[message.channel_id])
                    clicks.append(asyncio.create_task(self.interaction("click", click)))
            load = {t for t, user in owners.items() if LOAD_USER <= user < MANUAL_USER}
            if len(finished & load) >= s and starting.done():
                break
            if time.monotonic() > deadline:
                self.failed.append(f"timeout: {len(finished & load)} of {s} sessions finished")
                self.failed += self.stuck(rstats, cluster)
                break
            await asyncio.sleep(0.05)
        wall = time.monotonic() - started
        stop_probe.set()
        await probing
        await starting
        await asyncio.gather(*clicks)
        load = {t for t, user in owners.items() if LOAD_USER <= user < MANUAL_USER}
        figures = await self.report(
            cluster,
            rstats,
            pids,
            cpu0,
            (ops0, bytes0),
            wall,
            {t: step_at[t] for t in load},
            finished,
            {"discord_calls_per_cycle": api.calls()},
            len(api.problems()),
        )
        # one: the process that receives (IDENTIFY per gateway connection; a resume is none)
        return {**figures, "gateway_connections": len(api.identifies)}


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
        *[
            (
                f"{key.split('_')[0].capitalize()} calls / cycle",
                ", ".join(f"{m} {v}" for m, v in calls.items()),
            )
            for key, calls in r.items()
            if key.endswith("_calls_per_cycle")
        ],
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
        args.prefix = prefix
        extra = {"LOG_LEVEL": "WARNING", "CONTINUOUS_LIMIT": str(args.cycles + 2)}
        roles = ["ingress"] * args.ingress + ["worker"] * args.workers if args.ingress else None
        size = len(roles) if roles else args.processes
        nice = {"worker": args.worker_nice}
        if args.platform == "discord":
            async with LoadDiscord() as discord_api:
                env = discord_env(discord_api, llm_url, args.redis_url, prefix, work / "data", 15, **extra)
                cluster = Cluster(size, env, work, None, roles=roles, nice=nice)
                await cluster.start(within=60)
                gc.freeze()  # as the bot does: full collections here would delay the acks being timed
                try:
                    return await DiscordLoad(args).run(discord_api, cluster, rstats, llm.pid)
                finally:
                    await cluster.stop()
        async with FakeSlackAPI() as api:
            env = cluster_env(api, llm_url, args.redis_url, prefix, work / "data", 15, **extra)
            cluster = Cluster(size, env, work, api, roles=roles, nice=nice)
            await cluster.start(within=60)
            gc.freeze()
            try:
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
    p.add_argument(
        "--processes",
        type=int,
        help="processes of ROLE=all (without --ingress; default 2, and 1 with --platform discord)",
    )
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

    if args.platform == "discord" and args.ingress > 1:
        print(
            "--platform discord: --ingress must be 1. Discord allows one gateway connection per "
            "shard and the bot does not shard: one ingress process holds the gateway (a second "
            "would receive every event again), and the workers post through the REST API.",
            file=sys.stderr,
        )
        return 2
    if args.processes is None:
        args.processes = 1 if args.platform == "discord" else 2
    if args.platform == "discord" and not args.ingress and args.processes != 1:
        print(
            "--platform discord without --ingress: one process. Every ROLE=all process with the "
            "token connects to the gateway and answers each mention and click again, and a process "
            "without the gateway receives nothing, so on Discord the old mode is one process that "
            f"receives and drives everything (not {args.processes}); --ingress 1 --workers K "
            "spreads the driving.",
            file=sys.stderr,
        )
        args.processes = 1

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
