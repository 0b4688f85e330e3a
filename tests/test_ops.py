"""/healthz and /metrics over real HTTP: a core on each real store (Redis and SQLite), the
scripted LLM server, the test chat platform, and the ops server on a free port. A session runs
through a few cycles and the metrics show it; Redis going away (a TCP proxy in front of the real
Redis is shut) and an adapter that reports itself disconnected make /healthz answer 503."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.core import Core
from bot.grammar import GoalCommand
from bot.llm.client import LLMClient
from bot.models import Actor, Place, SessionState
from bot.ops import OpsServer, health
from bot.settings import Settings
from bot.store import RedisStore, make_archive
from tests.conftest import REDIS_URL, make_settings
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.fakes.slack_api import FakeSlackAPI, SlackBot
from tests.test_slack_setup import environ, run_cli

OWNER = "U1"
PLACE = Place(platform="test", channel="C1")


@pytest.fixture
async def ops(core: Core) -> AsyncIterator[OpsServer]:
    server = OpsServer(core, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.text()


async def healthz(server: OpsServer) -> tuple[int, dict[str, Any]]:
    status, kind, text = await get(f"{server.url}/healthz")
    assert kind.startswith("application/json")
    return status, json.loads(text)


async def scrape(server: OpsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    status, kind, text = await get(f"{server.url}/metrics")
    assert status == 200 and kind.startswith("text/plain"), (status, kind)
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def start(core: Core, *goals: str) -> str:
    actor = Actor(platform="test", user_id=OWNER, name="the owner")
    outcome = await core.service.start(actor, PLACE, GoalCommand(goals=list(goals) or ["write a poem"]))
    assert outcome.ok and outcome.session_id, outcome.message
    await core.runner.idle(10)
    return outcome.session_id


async def approve(core: Core, chat: TestPlatform, sid: str, step_no: int) -> None:
    assert (await chat.press(core.service, sid, step_no, "approve", OWNER)).ok
    await core.runner.idle(10)


async def test_a_session_shows_in_the_metrics_and_healthz_is_ok(
    core: Core, chat: TestPlatform, llm: ScriptedLLM, ops: OpsServer
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("read_file", {"filename": "missing.txt"}),  # a tool error
        agent_reply("write_to_file", {"filename": "poem.txt", "text": "roses"}),
        agent_reply("finish", {"reason": "poem written"}),
    )
    status, body = await healthz(ops)
    assert status == 200, body
    assert body == {"status": "ok", "store": "ok", "adapters": {"test": "connected"}, "scheduler": "standby"}

    sid = await start(core)
    samples = await scrape(ops)
    assert value(samples, "autogpt_sessions", state="awaiting_approval") == 1
    assert value(samples, "autogpt_sessions", state="running") == 0
    assert value(samples, "autogpt_sessions_started_total") == 1
    assert value(samples, "autogpt_store_up") == 1

    await asyncio.sleep(0.3)  # the human takes a moment
    for step_no in (1, 2, 3):
        await approve(core, chat, sid, step_no)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    assert session.steps[0].result is not None and session.steps[0].result.startswith("Error")

    samples = await scrape(ops)
    assert value(samples, "autogpt_cycles_total") == 3
    assert value(samples, "autogpt_sessions", state="awaiting_approval") == 0
    assert value(samples, "autogpt_sessions_ended_total", outcome="finished") == 1
    assert value(samples, "autogpt_tool_errors_total", tool="read_file") == 1
    assert value(samples, "autogpt_tool_errors_total", tool="write_to_file") == 0
    # every LLM request, by model: the execution agent on SMART_LLM, the task agents on FAST_LLM
    smart, fast, embed = core.settings.smart_llm, core.settings.fast_llm, core.settings.embedding_model
    assert value(samples, "autogpt_llm_calls_total", model=smart, result="ok") == 3
    assert value(samples, "autogpt_llm_calls_total", model=fast, result="ok") >= 1
    # chat requests and the memory's embeddings add up to what the session recorded
    chat_calls = sum(
        v for (n, lb), v in samples.items() if n == "autogpt_llm_calls_total" and dict(lb)["model"] != embed
    )
    assert chat_calls == core.llm.stats.calls
    calls = sum(v for (n, _), v in samples.items() if n == "autogpt_llm_calls_total")
    assert calls == session.usage.calls
    prompt = sum(
        v for (n, lb), v in samples.items() if n == "autogpt_llm_tokens_total" and ("kind", "prompt") in lb
    )
    completion = sum(
        v
        for (n, lb), v in samples.items()
        if n == "autogpt_llm_tokens_total" and ("kind", "completion") in lb
    )
    assert prompt == session.usage.prompt_tokens > 0
    assert completion == session.usage.completion_tokens > 0
    spend = sum(v for (n, _), v in samples.items() if n == "autogpt_llm_spend_usd_total")
    assert spend == pytest.approx(session.usage.cost_usd) and spend > 0
    # three human decisions, the first after the pause above
    assert value(samples, "autogpt_decision_latency_seconds_count") == 3
    assert value(samples, "autogpt_decision_latency_seconds_sum") >= 0.3
    assert value(samples, "autogpt_decision_latency_seconds_bucket", le="+Inf") == 3

    # a process in charge of the schedules says so
    core.start_background()
    for _ in range(200):  # the leader loop takes the free lease at once
        status, body = await healthz(ops)
        if body["scheduler"] == "leader":
            break
        await asyncio.sleep(0.05)
    assert status == 200 and body["scheduler"] == "leader", body


async def test_llm_failures_are_counted(core: Core, llm: ScriptedLLM, ops: OpsServer) -> None:
    llm.fail_next(500, times=10)
    sid = await start(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED
    samples = await scrape(ops)
    assert value(samples, "autogpt_llm_calls_total", model=core.settings.fast_llm, result="error") >= 1
    assert value(samples, "autogpt_sessions", state="paused") == 1
    assert value(samples, "autogpt_sessions_ended_total", outcome="finished") == 0


class Disconnected(TestPlatform):
    name = "flaky"

    def __init__(self) -> None:
        super().__init__()
        self.up = True

    async def connected(self) -> bool:
        return self.up


class Broken(TestPlatform):
    name = "broken"

    async def connected(self) -> bool:
        raise RuntimeError("the gateway is gone")


async def test_a_disconnected_adapter_makes_healthz_503(core: Core, ops: OpsServer) -> None:
    flaky = Disconnected()
    core.add_platform(flaky)
    status, body = await healthz(ops)
    assert status == 200 and body["adapters"] == {"test": "connected", "flaky": "connected"}
    flaky.up = False
    status, body = await healthz(ops)
    assert status == 503, body
    assert body["status"] == "failing" and body["failing"] == ["adapters.flaky"]
    assert body["adapters"]["flaky"] == "disconnected" and body["store"] == "ok"
    flaky.up = True
    core.add_platform(Broken())  # one that cannot even say counts as disconnected
    status, body = await healthz(ops)
    assert status == 503 and body["failing"] == ["adapters.broken"], body


class RedisProxy:
    """A TCP proxy in front of the real Redis, to take Redis away from a running core."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def shut(self) -> None:
        """Stop accepting, and drop every connection."""
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            with contextlib.suppress(Exception):
                writer.close()
        if self.server is not None:
            await self.server.wait_closed()


async def test_redis_going_away_makes_healthz_503_naming_the_store(
    tmp_path: Path, llm: ScriptedLLM, redis_prefix: str
) -> None:
    match = re.match(r"redis://([^:/]+):(\d+)/(\d+)", REDIS_URL)
    assert match, REDIS_URL
    proxy = RedisProxy(int(match.group(2)))
    port = await proxy.start()
    settings = make_settings(
        tmp_path, llm, redis_url=f"redis://127.0.0.1:{port}/{match.group(3)}", redis_prefix=redis_prefix
    )
    core = await Core.start(settings)
    core.add_platform(TestPlatform())
    server = OpsServer(core, host="127.0.0.1", port=0)
    await server.start()
    try:
        status, body = await healthz(server)
        assert status == 200 and body["store"] == "ok", body
        await proxy.shut()
        status, body = await healthz(server)
        assert status == 503, body
        assert body["failing"] == ["store"] and body["store"].startswith("error: Redis at 127.0.0.1:"), body
        assert body["adapters"] == {"test": "connected"}
        samples = await scrape(server)  # /metrics still answers, and says the store is down
        assert value(samples, "autogpt_store_up") == 0
    finally:
        await server.stop()
        with contextlib.suppress(Exception):
            await core.close()


async def test_health_of_a_store_that_was_never_reachable(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(tmp_path, llm)
    store = RedisStore("redis://127.0.0.1:1/0")
    core = Core(settings, store, make_archive(settings), LLMClient(settings))
    try:
        status, body = await health(core)
        assert status == 503 and body["failing"] == ["store"]
        assert "127.0.0.1:1" in body["store"] and body["scheduler"] == "standby"
    finally:
        await core.llm.close()


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_slack_api_errors_are_counted_and_slack_reports_its_connection(
    settings: Settings, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    async with FakeSlackAPI() as api:
        bot = SlackBot(settings, api)
        await bot.start()
        server = OpsServer(bot.c, host="127.0.0.1", port=0)
        await server.start()
        try:
            status, body = await healthz(server)
            assert status == 200 and body["adapters"] == {"slack": "connected"}, body
            api.fail("chat.postMessage", "is_archived", when=lambda p: "list_files" in json.dumps(p))
            sent = await bot.send.command("goal list the files")
            assert sent.status == 200
            await bot.settle()
            samples = await scrape(server)
            assert value(
                samples, "autogpt_platform_api_errors_total", platform="slack", method="chat.postMessage"
            )
            assert value(samples, "autogpt_sessions", state="paused") == 1

            platform = bot.c.platforms["slack"]

            async def down() -> bool:
                return False

            platform.connected = down  # type: ignore[method-assign]  # what the adapter tells
            status, body = await healthz(server)
            assert status == 503 and body["adapters"] == {"slack": "disconnected"}, body
        finally:
            await server.stop()
            await bot.stop()


async def test_autogpt_bot_run_serves_healthz_and_metrics(tmp_path: Path, llm: ScriptedLLM) -> None:
    async with FakeSlackAPI() as api:
        env = environ(
            tmp_path,
            llm,
            SLACK_BOT_TOKEN="xoxb-test-token",
            SLACK_MODE="http",
            SLACK_SIGNING_SECRET="not-used-here",
            SLACK_HTTP_PORT="0",
            SLACK_API_URL=api.base_url,
            OPS_HOST="127.0.0.1",
            OPS_PORT="0",
        )
        proc = await run_cli(tmp_path, env)
        assert proc.stderr is not None
        lines: list[str] = []
        try:
            port = None
            while port is None:
                line = (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()
                assert line, "".join(lines)
                lines.append(line)
                if m := re.search(r"/healthz and /metrics on 127\.0\.0\.1:(\d+)", line):
                    port = int(m.group(1))
                    assert json.loads(line)["logger"] == "bot.ops"  # stderr is a pipe: JSON lines
            status, _, text = await get(f"http://127.0.0.1:{port}/healthz")
            assert status == 200 and json.loads(text)["store"] == "ok", text
            status, _, text = await get(f"http://127.0.0.1:{port}/metrics")
            assert status == 200 and "autogpt_cycles_total 0.0" in text
        finally:
            if proc.returncode is None:
                proc.terminate()
            rest = (await asyncio.wait_for(proc.stderr.read(), 30)).decode()
            assert await asyncio.wait_for(proc.wait(), 30) == 0, "".join(lines) + rest
        assert "Traceback" not in "".join(lines) + rest
