"""Redis goes away under a running bot and comes back: the bot says so where a user acts (a
command, a click), keeps going, and recovers by itself; nothing acknowledged before the outage
is lost.

A private `redis-server` with every write fsynced (`--appendonly yes --appendfsync always`) runs
on a free port; the core (with the test chat platform and its background recovery, as
`autogpt-bot run` starts it) uses it. A step-by-step session's first step is approved with
"approve next 5" (acknowledged), the agent goes on by itself, Redis is shut down without saving,
and restarted on the same port and folder, the bot untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.core import Core
from bot.decisions import Decision
from bot.models import Actor, Place, Session, SessionState, StepStatus
from tests.conftest import make_settings
from tests.fakes.chat import TestPlatform
from tests.fakes.cluster import free_port
from tests.fakes.llm_server import ReplyLike, ScriptedLLM, agent_reply

OWNER = Actor(platform="test", user_id="U1")
PLACE = Place(platform="test", channel="C1")
APPENDS = 4
LOG = "log.txt"

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


def one_line_per_cycle(body: dict[str, Any]) -> ReplyLike:
    cycle = 1 + sum(1 for m in body["messages"] if m["role"] == "assistant")
    if cycle > APPENDS:
        return agent_reply("finish", {"reason": "all lines written"})
    return agent_reply("append_to_file", {"filename": LOG, "text": f"{cycle}\n"}, text=f"cycle {cycle}")


class PrivateRedis:
    """A redis-server of our own that can be stopped and started again on the same port and data."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--logfile",
                str(self.folder / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, socket_connect_timeout=0.2) as r:
                    if r.ping():
                        return
            except redis.RedisError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def shutdown(self) -> None:
        """SHUTDOWN NOSAVE: what is on disk is what the append-only file already holds."""
        with contextlib.suppress(redis.RedisError), redis.Redis(port=self.port) as r:
            r.shutdown(nosave=True)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def eventually(what: str, check: Any, within: float, poll: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            last = await check()
            if last:
                return last
        await asyncio.sleep(poll)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


@pytest.mark.slow
async def test_outage_said_in_chat_and_recovered_without_a_restart(
    tmp_path: Path, llm: ScriptedLLM, private_redis: PrivateRedis
) -> None:
    llm.default["execution_reply"] = one_line_per_cycle
    llm.delay = 0.3
    settings = make_settings(
        tmp_path / "data", llm, redis_url=private_redis.url, redis_prefix="outage:", lease_seconds=1.0
    )
    core = await Core.start(settings)
    chat = TestPlatform()
    core.add_platform(chat)
    core.start_background()
    try:
        started = await core.service.handle_text(OWNER, PLACE, "goal write four lines")
        assert started.ok and started.session_id
        sid = started.session_id

        async def pending() -> bool:  # waiting, and its message posted (what the owner clicks on)
            s = await core.store.get(sid)
            return s is not None and s.state == SessionState.AWAITING_APPROVAL and bool(chat.steps(sid))

        await eventually("step 1 to wait", pending, 10)
        approved = await chat.press(core.service, sid, 1, "approve_n", OWNER.user_id)
        assert approved.ok, approved.message

        async def step1_done() -> bool:
            s = await core.store.get(sid)
            return s is not None and s.steps[0].status == StepStatus.DONE

        await eventually("step 1 to run", step1_done, 10, poll=0.02)

        # Redis goes away while the session is running on its own
        private_redis.shutdown()
        listing = await core.service.handle_text(OWNER, PLACE, "list")
        assert not listing.ok
        assert "not reachable" in listing.message and "Traceback" not in listing.message
        click = await core.service.decide(sid, OWNER, Decision(action="pause"))
        assert not click.ok
        assert "not reachable" in click.message and "Traceback" not in click.message
        await asyncio.sleep(2.5)  # the engine and the recovery job meet the outage meanwhile

        # back on the same port and data, the bot untouched
        private_redis.start()

        async def listed() -> bool:
            out = await core.service.handle_text(OWNER, PLACE, "list")
            return out.ok and sid in out.message

        await eventually("a command to work again", listed, 10)
        session = await core.store.get(sid)
        assert session is not None
        first = session.steps[0]
        assert first.status == StepStatus.DONE and first.decided_by is not None and "U1" in first.decided_by

        async def finished() -> Session | None:
            s = await core.store.get(sid)
            return s if s is not None and s.state == SessionState.FINISHED else None

        done = await eventually("the session to finish by itself", finished, 20, poll=0.2)
        lines = (settings.data_dir / "workspaces" / sid / LOG).read_text().split()
        assert len(lines) == len(set(lines)), f"a command ran twice: {lines}"
        for step in done.steps:
            if step.command.name == "append_to_file" and step.status == StepStatus.DONE:
                assert lines.count(str(step.no)) == 1, (step.no, lines)
    finally:
        await core.close()
