"""Sandbox benchmark: what one `execute_python_code` costs end to end, per backend.

    python bench/sandbox.py [--runs 50] [--backends bwrap,docker,none] [--strict]

Each run is the real tool as the engine calls it: the code saved in the workspace, the sandbox
started (bubblewrap's namespaces and mounts, or a container), Python started in it and run,
the output read, the transcript written, the workspace measured. Measured per run: wall clock;
the CPU of this process (the bot's side: getrusage); and the CPU of the whole machine, every
process included (/proc/stat, in jiffies: averaged over all runs), which is what a user's
machine pays: getrusage's children's time cannot be used, since bubblewrap does not wait for the
processes of its PID namespace, so their time is not passed up to the bot. Run it on an
otherwise idle machine. Also: the peak RSS of this process, and of the largest child it waited
for.

A backend that is not available here (Docker without an engine) is reported as skipped with the
reason. Prints a table and a last line `BENCH {json}`. Target: median wall time under 150 ms for
bubblewrap. Exit status 3 with `--strict` when it is missed, 1 when a run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bot import sandbox
from bot.models import Place, Session
from bot.settings import Settings
from bot.tools import ToolContext, ToolOutput, default_registry

TARGET_MS = {"bwrap": 150.0}
CODE = "import csv, sys\nwith open('out.csv', 'w') as f:\n    csv.writer(f).writerow(['a', 1])\nprint('ok')\n"


def own_cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def machine_cpu() -> float:
    """CPU seconds every process of the machine has used (busy time: all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


async def bench(backend: str, runs: int, data: Path) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data / backend,
        execute_local_commands=True,
        sandbox=backend,  # type: ignore[arg-type]
    )
    chosen = sandbox.select(settings)
    if chosen.sandbox is None:
        return {"backend": backend, "skipped": chosen.reason}
    tool = default_registry().get("execute_python_code", settings)
    assert tool is not None
    session = Session(id="bench1", owner="U1", place=Place(platform="bench", channel="C"), goals=["bench"])
    workspace = data / backend / "workspaces" / session.id
    workspace.mkdir(parents=True)
    args = tool.validate({"code": CODE})
    walls: list[float] = []
    cpus: list[float] = []
    failed = 0
    machine = 0.0
    for n in range(runs + 1):
        ctx = ToolContext(session=session, settings=settings, workspace=workspace, step_no=n + 1)
        mine, everyone, t0 = own_cpu(), machine_cpu(), time.perf_counter()
        out = await tool.run(ctx, args)
        wall = time.perf_counter() - t0
        ok = isinstance(out, ToolOutput) and "exit code 0" in out.text and "ok" in out.text
        failed += not ok
        if n:  # the first run warms the page cache
            walls.append(wall * 1000)
            cpus.append((own_cpu() - mine) * 1000)
            machine += machine_cpu() - everyone
    walls.sort()
    return {
        "backend": backend,
        "where": chosen.reason,
        "runs": runs,
        "failed": failed,
        "wall_ms_median": round(statistics.median(walls), 1),
        "wall_ms_p90": round(walls[int(len(walls) * 0.9) - 1], 1),
        "wall_ms_max": round(walls[-1], 1),
        "bot_cpu_ms_median": round(statistics.median(cpus), 1),
        "machine_cpu_ms_mean": round(machine * 1000 / runs, 1),
        "target_ms": TARGET_MS.get(backend),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--backends", default="bwrap,docker")
    parser.add_argument("--strict", action="store_true")
    ns = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="autogpt-bench-sandbox-") as tmp:
        for backend in ns.backends.split(","):
            results.append(asyncio.run(bench(backend.strip(), ns.runs, Path(tmp))))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    head = f"{'backend':<8} {'median ms':>10} {'p90 ms':>8} {'max ms':>8} {'bot CPU':>8} {'machine CPU':>12}"
    print(head + "  target (CPU: ms per run)")
    for r in results:
        if "skipped" in r:
            print(f"{r['backend']:<8} skipped: {r['skipped']}")
            continue
        target = f"< {r['target_ms']:g} ms" if r["target_ms"] else "-"
        print(
            f"{r['backend']:<8} {r['wall_ms_median']:>10} {r['wall_ms_p90']:>8} {r['wall_ms_max']:>8} "
            f"{r['bot_cpu_ms_median']:>8} {r['machine_cpu_ms_mean']:>12}  {target}   ({r['where']})"
        )
    print(f"peak RSS: this process {own:.1f} MB, largest child {child:.1f} MB")
    ran = [r for r in results if "skipped" not in r]
    ok = all(r["failed"] == 0 for r in ran)
    met = all(r["wall_ms_median"] < r["target_ms"] for r in ran if r["target_ms"])
    report = {"ok": ok, "target_met": met, "peak_rss_mb": round(own, 1), "child_rss_mb": round(child, 1)}
    print("BENCH " + json.dumps({**report, "results": results}))
    if not ok:
        return 1
    return 3 if ns.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
