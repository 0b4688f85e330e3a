"""Smoke test of the engine benchmark: a tiny run on both stores, as a user would start it.
It checks what the benchmark reports, never how fast (tests assert behaviour, not wall-clock)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/14")
SESSIONS, CYCLES = 4, 2


def test_engine_benchmark_runs_and_reports() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "engine.py"),
            *("--sessions", str(SESSIONS), "--cycles", str(CYCLES), "--concurrency", "2"),
            *("--latency-sessions", "2", "--stores", "redis,sqlite", "--redis-url", REDIS_URL),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    assert len(lines) == 1 and done.stdout.rstrip().endswith(lines[0]), done.stdout
    report = json.loads(lines[0].removeprefix("BENCH "))

    assert report["ok"] is True
    assert report["target_engine_ms_median_redis"] == 5.0
    assert isinstance(report["target_met"], bool)
    assert set(report["stores"]) == {"redis", "sqlite"}
    for name, r in report["stores"].items():
        assert r["cycles"] == SESSIONS * CYCLES, name
        assert r["latency_cycles"] == 2 * CYCLES, name
        assert r["cycles_per_s"] > 0 and r["concurrent_pass_s"] > 0, name
        assert 0 < r["engine_ms_median"] <= r["engine_ms_p99"], name
        assert r["llm_ms_median"] > 0, name
        assert r["llm_calls_per_cycle"] == 3.0, name  # task creation, prioritisation, execution
        assert r["store_calls_per_cycle"] > 0 and r["chat_calls_per_cycle"] > 0, name
        assert 0 < r["stored_bytes_median"] <= r["stored_bytes_max"], name
        # every session waits for a human, and the process holds none of them
        assert r["waiting"] == SESSIONS, name
        assert r["loop_guard_notes"] == 0 and r["command_errors"] == 0, name
        assert r["runner_busy"] == 0 and r["sessions_in_memory"] == 0, name
        assert r["tasks_after"] == r["tasks_before"], name
        assert r["rss_before_kb"] > 0 and r["rss_after_kb"] > 0, name
    for table_row in ("cycles/s", "engine ms/cycle, median", "VmRSS before", "Target: median engine ms"):
        assert table_row in done.stdout

    # it cleaned up after itself
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert not list(client.scan_iter(match=f"{report['redis_prefix']}*"))
    finally:
        client.close()


def run_module(module: str, *args: str, marker: str, timeout: float) -> tuple[dict[str, Any], str]:
    """Run `python -m <module> ...` as a user would; its report (the last line, `MARKER {json}`)
    and everything it printed."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stdout + done.stderr
    last = done.stdout.rstrip().splitlines()[-1]
    assert last.startswith(f"{marker} "), done.stdout
    return json.loads(last.removeprefix(f"{marker} ")), done.stdout


def test_llm_http_benchmark_runs_and_reports() -> None:
    report, _ = run_module(
        "bench.llm_http", "--calls", "20", "--concurrency", "2", marker="LLMHTTP", timeout=60
    )
    assert set(report["results"]["2"]) == {"httpx", "aiohttp"}
    for r in report["results"]["2"].values():
        assert r["cpu_ms_per_call"] > 0 and r["calls_per_s"] > 0


def test_load_benchmark_runs_and_reports() -> None:
    """A tiny load run: two real bot processes, four sessions. Checks the report, not the speed."""
    r, printed = run_module(
        "bench.load",
        *("--processes", "2", "--sessions", "4", "--cycles", "2"),
        *("--delay", "0.05", "--timeout", "60", "--redis-url", REDIS_URL),
        marker="LOAD",
        timeout=120,
    )
    assert r["finished"] == 4 and r["cycles"] == 8 and r["failures"] == [] and r["violations"] == 0
    assert r["commands"] > 0 and r["clicks"] > 0 and r["acks_over_3s"] == 0
    assert r["start_ack_ms_p99"] > 0 and r["command_ack_ms_p99"] > 0 and r["click_ack_ms_p99"] > 0
    assert set(r["cpu_ms_per_cycle"]) == {"bots", "llm", "driver", "redis"}
    assert r["slack_calls_per_cycle"]["chat.postMessage"] > 0
    assert set(r["rss_mib"]) >= {"S/4", "S/2", "S", "end"} and all(len(v) == 2 for v in r["rss_mib"].values())
    for row in ("throughput", "command acks", "click acks", "start acks", "CPU ms / cycle"):
        assert row in printed


def test_load_benchmark_with_an_ingress_and_a_worker() -> None:
    """The same tiny run split by role: commands and clicks to the ingress, drives on the worker."""
    r, printed = run_module(
        "bench.load",
        *("--ingress", "1", "--workers", "1", "--sessions", "4", "--cycles", "2"),
        *("--delay", "0.05", "--timeout", "60", "--redis-url", REDIS_URL),
        marker="LOAD",
        timeout=120,
    )
    assert r["roles"] == ["ingress", "worker"] and r["finished"] == 4 and r["failures"] == []
    assert set(r["cpu_ms_per_cycle"]) == {"ingress", "workers", "llm", "driver", "redis"}
    assert r["cpu_ms_per_cycle"]["workers"] > r["cpu_ms_per_cycle"]["ingress"] > 0
    assert r["queue_kicks"] >= 4 and r["queue_wait_ms_p99"] >= r["queue_wait_ms_median"] > 0
    assert r["sessions_held_by_workers_at_end"] == 0 and 0 < r["cpu_bound_ratio"] <= 1
    assert "queue wait" in printed


def test_load_benchmark_on_discord() -> None:
    """The tiny split run through Discord: the ingress holds the fake gateway alone, the worker
    drives and posts through the REST API; more than one ingress is refused."""
    r, printed = run_module(
        "bench.load",
        *("--platform", "discord", "--ingress", "1", "--workers", "1", "--sessions", "4", "--cycles", "2"),
        *("--delay", "0.05", "--timeout", "60", "--redis-url", REDIS_URL),
        marker="LOAD",
        timeout=120,
    )
    assert (
        r["platform"] == "discord" and r["roles"] == ["ingress", "worker"] and r["gateway_connections"] == 1
    )
    assert r["finished"] == 4 and r["cycles"] == 8 and r["failures"] == [] and r["violations"] == 0
    assert r["commands"] > 0 and r["clicks"] > 0 and r["acks_over_3s"] == 0
    assert r["start_ack_ms_p99"] > 0 and r["command_ack_ms_p99"] > 0 and r["click_ack_ms_p99"] > 0
    calls = r["discord_calls_per_cycle"]
    assert calls["POST /channels/{id}/messages"] > 0 and calls["POST /interactions/{id}/{id}/callback"] > 0
    assert set(r["cpu_ms_per_cycle"]) == {"ingress", "workers", "llm", "driver", "redis"}
    assert r["cpu_ms_per_cycle"]["workers"] > r["cpu_ms_per_cycle"]["ingress"] > 0
    assert r["queue_kicks"] >= 4 and r["sessions_held_by_workers_at_end"] == 0
    for row in ("Discord calls / cycle", "queue wait", "click acks"):
        assert row in printed

    refused = subprocess.run(
        [sys.executable, "-m", "bench.load", "--platform", "discord", "--ingress", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "--ingress must be 1" in refused.stderr, refused.stderr


def test_sandbox_benchmark_runs_and_reports() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "sandbox.py"), "--runs", "3", "--backends", "bwrap,docker"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout.rstrip().splitlines()[-1].removeprefix("BENCH "))
    assert report["ok"] is True and isinstance(report["target_met"], bool)
    bwrap, docker = report["results"]
    assert bwrap["backend"] == "bwrap" and bwrap["runs"] == 3 and bwrap["failed"] == 0
    assert bwrap["target_ms"] == 150.0 and bwrap["wall_ms_median"] > 0 and bwrap["machine_cpu_ms_mean"] >= 0
    assert docker["backend"] == "docker" and ("skipped" in docker or docker["failed"] == 0)


def test_latency_benchmark_runs_and_reports() -> None:
    """A tiny run of bench/latency.py: its report, and that a step waits for one call, not three
    (the task list's update runs beside the next execution call)."""
    r, printed = run_module(
        "bench.latency",
        *("--sessions", "1", "--cycles", "3", "--delay", "0.3", "--embed-delay", "0.01"),
        marker="BENCH",
        timeout=60,
    )
    assert r["cycles"] == 3 and r["chat_calls_per_cycle"] >= 2
    assert r["critical_calls_per_cycle"] == 1
    assert r["wait_median_s"] > 0 and r["wait_p95_s"] >= r["wait_median_s"]
    assert "wait from an approval to the next step" in printed
