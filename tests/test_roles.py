"""Receiving apart from driving (`autogpt-bot run --role ingress|worker`), end to end.

Slack: one ingress and two workers, real processes on the real Redis, Slack in HTTP mode on the
fake Web API. Every command and click goes to the ingress; the workers drive and post through the
Web API. One worker is killed with `kill -9` while it drives: the kicks it held are reclaimed by
the other, every session finishes, every cycle is posted once and no command runs twice (the
scripted agent's one-line-per-cycle file says so, as in tests/test_cluster.py). The ingress
never runs a cycle.

Discord: the ingress holds the (fake) gateway; a worker logged in with the same token but without
a gateway connection drives the session and posts through the (fake) REST API.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord.adapter import DiscordAdapter
from adapters.slack import ids
from bot.core import Core
from bot.models import SessionState, StepStatus
from bot.store.redis_store import RedisStore
from tests.conftest import REDIS_URL, make_settings
from tests.fakes.cluster import Cluster, cluster_env
from tests.fakes.discord_api import OWNER, DiscordBot, FakeDiscord, discord_settings
from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.fakes.slack_api import FakeSlackAPI, Posted
from tests.test_cluster import LOG, _async, finished, one_line_per_cycle, session_of, step_posts, wait_for

SESSIONS = 4


@pytest.fixture
def restore_endpoints() -> Iterator[None]:
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@pytest.mark.slow
async def test_one_ingress_two_workers_one_worker_killed(
    tmp_path: Path, llm: ScriptedLLM, redis_prefix: str
) -> None:
    llm.default["execution_reply"] = one_line_per_cycle
    llm.delay = 0.3
    data = tmp_path / "data"
    store = RedisStore(REDIS_URL, redis_prefix)
    await store.open()
    async with FakeSlackAPI() as api:
        env = cluster_env(api, llm.base_url, REDIS_URL, redis_prefix, data, lease_seconds=2)
        cluster = Cluster(3, env, tmp_path / "procs", api, roles=["ingress", "worker", "worker"])
        try:
            await cluster.start()
            ingress = cluster.sender(0)
            users = [f"U{i + 1}" for i in range(SESSIONS)]
            for i, user in enumerate(users):
                sent = await ingress.command(f"goal --continuous 8 write lines {i}", user=user)
                assert sent.status == 200 and sent.seconds < 3, sent.body
            sids = {u: await wait_for(u, lambda u=u: _async(session_of(api, u)), 10) for u in users}

            # kill a worker while it drives: once every session posted step 2, the first worker
            # holding one (by its lease) dies
            async def mid_run() -> bool:
                for sid in sids.values():
                    s = await store.get(sid)
                    if s is None or len(s.steps) < 2 or s.steps[1].message is None:
                        return False
                return True

            await wait_for("every session at step 2", mid_run, 15, poll=0.02)
            cluster.kill(1)

            # a step-by-step session: started and approved through the ingress
            sent = await ingress.command("goal write one line", user="U9")
            assert sent.status == 200
            manual = await wait_for("the manual session", lambda: _async(session_of(api, "U9")), 10)

            async def first_step() -> list[Posted]:
                return [m for m in step_posts(api, manual, 1) if m.buttons()]

            step1 = (await wait_for("step 1 with buttons", first_step, 10))[0]
            sent = await ingress.click(step1, ids.APPROVE, "U9")
            assert sent.status == 200 and sent.seconds < 3
            await wait_for("step 2 of the manual session", lambda: _async(step_posts(api, manual, 2)), 10)
            assert (data / "workspaces" / manual / LOG).read_text() == "1\n"

            try:
                sessions = await wait_for(
                    "every session to finish", finished(store, sids.values()), 25, poll=0.2
                )
            except AssertionError:
                states = {sid: (s.state if (s := await store.get(sid)) else None) for sid in sids.values()}
                raise AssertionError(
                    f"not all finished: {states}\n{cluster.procs[2].output()[-3000:]}"
                ) from None
            for s in sessions:
                lines = (data / "workspaces" / s.id / LOG).read_text().split()
                assert len(lines) == len(set(lines)), f"{s.id}: a command ran twice: {lines}"
                for step in s.steps:
                    posts = step_posts(api, s.id, step.no)
                    assert len(posts) == 1, f"{s.id}: step {step.no} was posted {len(posts)} times"
                    if step.command.name == "append_to_file" and step.status != StepStatus.INTERRUPTED:
                        assert step.status == StepStatus.DONE and lines.count(str(step.no)) == 1
                assert s.steps[-1].command.name == "finish"
            assert api.violations == []

            # the ingress drove nothing; the surviving worker took over the dead one's kicks
            front, survivor = cluster.procs[0].metrics(), cluster.procs[2].metrics()
            assert front["autogpt_cycles_total"] == 0
            assert front["autogpt_sessions_started_total"] == SESSIONS + 1
            assert "autogpt_queue_depth" in front and "autogpt_queue_oldest_age_seconds" in front
            assert survivor["autogpt_cycles_total"] > 0
            assert survivor["autogpt_queue_reclaimed_total"] >= 1
            assert survivor["autogpt_queue_wait_seconds_count"] > 0
            assert not cluster.tracebacks(), cluster.tracebacks()
        finally:
            await cluster.stop()
            await store.close()


async def test_discord_received_by_the_ingress_driven_by_a_worker(
    tmp_path: Path, llm: ScriptedLLM, redis_prefix: str, restore_endpoints: None
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("append_to_file", {"filename": "log.txt", "text": "1\n"}),
        agent_reply("append_to_file", {"filename": "log.txt", "text": "2\n"}),
        agent_reply("finish", {"reason": "done"}),
    )
    settings = make_settings(tmp_path, llm, redis_url=REDIS_URL, redis_prefix=redis_prefix, lease_seconds=2)
    async with FakeDiscord() as api:
        front = DiscordBot(settings.model_copy(update={"role": "ingress"}), api)
        await front.start()
        worker = await Core.start(settings.model_copy(update={"role": "worker"}))
        poster = DiscordAdapter(worker, discord_settings(api), guild_ready_timeout=0.05)
        poster.post_only = True
        try:
            await poster.start()
            assert await poster.connected() and poster._connection is None  # no gateway
            worker.start_background()
            said = await api.say(OWNER, "goal --continuous 5 write two lines")
            await front.settle()
            answers: list[Any] = [
                m
                for m in api.messages.values()
                if (m.current.get("message_reference") or {}).get("message_id") == str(said.id)
            ]
            assert len(answers) == 1
            found = re.search(r"Session `(\w+)`", answers[0].content)
            assert found, answers[0].content
            sid = found.group(1)

            async def finished() -> bool:
                s = await worker.store.get(sid)
                return s is not None and s.state == SessionState.FINISHED

            await wait_for("the session to finish", finished, 15)
            await asyncio.wait_for(_drained(worker), 10)
            for n in (1, 2, 3):
                front.step(sid, n)  # each step posted once, in the session's thread
            assert (tmp_path / "workspaces" / sid / "log.txt").read_text() == "1\n2\n"
            assert front.c.metrics.cycles._value.get() == 0
            assert worker.metrics.cycles._value.get() == 3
        finally:
            await worker.close_queue()  # as `run --role worker` stops: the drives, then the adapter
            await poster.stop()
            await worker.close()
            await front.stop()
        assert api.problems() == []


async def _drained(core: Core) -> None:
    assert core.queue is not None
    await core.queue.idle()
