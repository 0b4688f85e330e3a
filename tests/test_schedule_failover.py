"""Two bot processes share one Redis and one schedule: exactly one leads; the leader is killed
with `kill -9`; the other takes over, and every firing runs exactly once, none lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.models import Place, SessionState
from bot.schedules import Schedule, ScheduleBook, firing_id
from bot.settings import Settings
from bot.store.redis_store import RedisStore
from tests.conftest import REDIS_URL, make_settings
from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.test_console_e2e import REPO, clean_environ

INTERVAL = 3


def act_once(body: dict[str, Any]) -> dict[str, Any]:
    """A run appends one line, then finishes (whatever happened to that first command)."""
    if any(m["role"] == "assistant" for m in body["messages"]):
        return agent_reply("finish", {"reason": "done"})
    return agent_reply("append_to_file", {"filename": "ran.txt", "text": "x"})


def start_worker(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.worker"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("READY "), line
    return proc, line.split()[1]


@pytest.mark.slow
async def test_leader_killed_every_firing_runs_once(
    tmp_path: Path, llm: ScriptedLLM, redis_prefix: str
) -> None:
    llm.default["execution_reply"] = act_once
    settings: Settings = make_settings(
        tmp_path, llm, redis_url=REDIS_URL, redis_prefix=redis_prefix, min_schedule_interval_s=1
    )
    env = clean_environ()
    env.update(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=llm.base_url,
        REDIS_URL=REDIS_URL,
        REDIS_PREFIX=redis_prefix,
        DATA_DIR=str(tmp_path),
        SCHEDULER_LEADER_TTL_S="1.5",
        SCHEDULER_SYNC_S="0.3",
        SCHEDULE_MISFIRE_GRACE_S="10",
        MIN_SCHEDULE_INTERVAL_S="1",
        LEASE_SECONDS="1",
        MEMORY_BACKEND="no_memory",
        LLM_MAX_RETRIES="1",
    )
    store = RedisStore(REDIS_URL, redis_prefix)
    await store.open()
    book = ScheduleBook(settings, store)
    schedule = await book.create(
        Schedule(
            id="x",
            owner="U1",
            place=Place(platform="test", channel="C1"),
            when=f"every {INTERVAL}s",
            tz="UTC",
            goals=["append a line"],
        )
    )
    workers = [start_worker(env), start_worker(env)]
    raw = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:

        async def runs() -> list[str]:
            return [s.id for s in await store.sessions_of("test:U1") if s.schedule_id == schedule.id]

        async def wait_runs(n: int, within: float) -> None:
            deadline = time.monotonic() + within
            while len(await runs()) < n:
                assert time.monotonic() < deadline, f"only {len(await runs())} runs"
                await asyncio.sleep(0.1)

        await wait_runs(2, 15)
        leader = raw.get(store._lease_key("scheduler-leader"))
        victim = next(p for p, holder in workers if holder == leader)
        os.kill(victim.pid, signal.SIGKILL)  # no goodbye: its lease and jobs just stop
        victim.wait(5)
        before = len(await runs())
        await wait_runs(before + 3, 20)  # the survivor took over and keeps firing
        assert raw.get(store._lease_key("scheduler-leader")) != leader

        await book.update(schedule.id, lambda s: setattr(s, "paused", True))
        await asyncio.sleep(1.0)
        fired = set(await runs())
        # every due time from the first to the last run has exactly one session: none twice, none lost
        dues = [schedule.created_at + timedelta(seconds=INTERVAL * k) for k in range(1, 200)]
        ids = [firing_id(schedule.id, d) for d in dues]
        last = max(i for i, sid in enumerate(ids) if sid in fired)
        assert set(ids[: last + 1]) == fired, "a firing was lost or ran twice"

        # every run finishes (those the dead process was driving are picked up by the survivor),
        # and no command ran twice
        deadline = time.monotonic() + 20
        while True:
            sessions = [await store.get(sid) for sid in fired]
            if all(s is not None and s.state == SessionState.FINISHED for s in sessions):
                break
            assert time.monotonic() < deadline, [s.state for s in sessions if s]
            await asyncio.sleep(0.2)
        for sid in fired:
            ran = tmp_path / "workspaces" / sid / "ran.txt"
            assert not ran.exists() or ran.read_text() == "x", sid
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in workers:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        raw.close()
        await store.close()
