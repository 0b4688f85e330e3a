"""Three real `autogpt-bot run` processes serve one Slack team on one Redis (and once on a real
Redis Cluster): sessions are started through different processes, one process is killed with
`kill -9` mid-cycle, and every session still finishes, every cycle is posted once, and no command
runs twice. A click on a step that one process posted is handled by another.

The scripted agent appends one line per cycle to its own workspace file: the line of cycle k is
"k" (k = the assistant messages already in its history + 1), so the file says which commands
ran, and how often. A command the killed process was running when it died is recorded as
interrupted by the process that picks the session up (the engine never reruns it); its line may
be there (it ran before the kill) or not, but never twice. Every other command's line is there
exactly once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from adapters.slack import ids
from bot.models import Session, SessionState, StepStatus
from bot.store.redis_store import RedisStore
from tests.conftest import REDIS_URL
from tests.fakes.cluster import Cluster, cluster_env
from tests.fakes.llm_server import ReplyLike, ScriptedLLM, agent_reply
from tests.fakes.slack_api import FakeSlackAPI, Posted

PROCESSES = 3
SESSIONS = 6
APPENDS = 4  # cycles 1..4 append their line, cycle 5 finishes
LOG = "log.txt"


def one_line_per_cycle(body: dict[str, Any]) -> ReplyLike:
    cycle = 1 + sum(1 for m in body["messages"] if m["role"] == "assistant")
    if cycle > APPENDS:
        return agent_reply("finish", {"reason": "all lines written"})
    return agent_reply("append_to_file", {"filename": LOG, "text": f"{cycle}\n"}, text=f"cycle {cycle}")


def session_of(api: FakeSlackAPI, user: str) -> str | None:
    for told in api.ephemerals_to(user):
        if "Started session " in told:
            return told.split("Started session ", 1)[1][:6]
    return None


def thread_of(api: FakeSlackAPI, session_id: str) -> list[Posted]:
    roots = [m for m in api.roots() if f"`{session_id}`" in m.all_text()]
    assert len(roots) == 1, f"expected one root message of {session_id}, found {len(roots)}"
    root = roots[0]
    return [m for m in api.thread(root.channel, root.ts) if m.ts != root.ts]


def step_posts(api: FakeSlackAPI, session_id: str, step_no: int) -> list[Posted]:
    return [m for m in thread_of(api, session_id) if m.text.startswith(f"Step {step_no}:")]


async def wait_for(what: str, check: Any, within: float, poll: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(poll)


@pytest.mark.slow
@pytest.mark.parametrize("redis_kind", ["redis", "redis-cluster"])
async def test_three_processes_one_killed_mid_cycle(
    tmp_path: Path, llm: ScriptedLLM, redis_prefix: str, redis_kind: str, request: pytest.FixtureRequest
) -> None:
    """On one Redis, and on a real three-master Redis Cluster (REDIS_CLUSTER=true)."""
    llm.default["execution_reply"] = one_line_per_cycle
    llm.delay = 0.3
    data = tmp_path / "data"
    on_cluster = redis_kind == "redis-cluster"
    url = request.getfixturevalue("redis_cluster_url") if on_cluster else REDIS_URL
    store = RedisStore(url, redis_prefix, cluster=on_cluster)
    await store.open()
    async with FakeSlackAPI() as api:
        extra = {"REDIS_CLUSTER": "true"} if on_cluster else {}
        env = cluster_env(api, llm.base_url, url, redis_prefix, data, lease_seconds=2, **extra)
        cluster = Cluster(PROCESSES, env, tmp_path / "procs", api)
        try:
            await cluster.start()
            # S continuous sessions, spread over the processes by the command that starts them
            users = [f"U{i + 1}" for i in range(SESSIONS)]
            for i, user in enumerate(users):
                sent = await cluster.sender(i).command(f"goal --continuous 8 write lines {i}", user=user)
                assert sent.status == 200, sent.body
                assert sent.seconds < 3
            sids: dict[str, str] = {}
            for user in users:

                async def started(user: str = user) -> str | None:
                    return session_of(api, user)

                sids[user] = await wait_for(f"the session of {user}", started, 10)
            victims = [sids[u] for i, u in enumerate(users) if i % PROCESSES == 0]

            # kill process 0 while its sessions are in the middle of their run: each has posted
            # step 2 and recorded that it did (a kill between a post and its record would post
            # that step again from another process: chat delivery is at least once)
            async def mid_run() -> bool:
                for sid in victims:
                    session = await store.get(sid)
                    if session is None or len(session.steps) < 2 or session.steps[1].message is None:
                        return False
                return True

            await wait_for("the victim's sessions to reach step 2", mid_run, 15, poll=0.02)
            cluster.kill(0)

            # a step-by-step session started on process 1; its Approve click goes to process 2
            sent = await cluster.sender(1).command("goal write one line", user="U9")
            assert sent.status == 200
            manual = await wait_for("the manual session", lambda: _async(session_of(api, "U9")), 10)

            async def first_step() -> list[Posted]:
                return [m for m in step_posts(api, manual, 1) if m.buttons()]

            step1 = (await wait_for("step 1 with buttons", first_step, 10))[0]
            sent = await cluster.sender(2).click(step1, ids.APPROVE, "U9")
            assert sent.status == 200 and sent.seconds < 3

            async def second_step() -> list[Posted]:
                return step_posts(api, manual, 2)

            await wait_for("step 2 of the manual session", second_step, 10)
            assert (data / "workspaces" / manual / LOG).read_text() == "1\n"
            session = await store.get(manual)
            assert session is not None and session.state == SessionState.AWAITING_APPROVAL
            assert session.steps[0].status == StepStatus.DONE and "U9" in (session.steps[0].decided_by or "")

            # every continuous session finishes, those of the dead process too
            try:
                sessions = await wait_for(
                    "every session to finish", finished(store, sids.values()), 25, poll=0.2
                )
            except AssertionError:
                states = {sid: (s.state if (s := await store.get(sid)) else None) for sid in sids.values()}
                raise AssertionError(f"not all finished: {states}") from None

            interrupted = 0
            for s in sessions:
                lines = (data / "workspaces" / s.id / LOG).read_text().split()
                assert len(lines) == len(set(lines)), f"{s.id}: a command ran twice: {lines}"
                for step in s.steps:
                    if step.command.name != "append_to_file":
                        continue
                    mine = lines.count(str(step.no))
                    if step.status == StepStatus.INTERRUPTED:
                        interrupted += 1
                        assert mine <= 1, (s.id, step.no, lines)
                    else:
                        assert step.status == StepStatus.DONE, (s.id, step.no, step.status)
                        assert mine == 1, f"{s.id}: step {step.no} ran {mine} times: {lines}"
                # every cycle's step message was posted exactly once
                for step in s.steps:
                    posts = step_posts(api, s.id, step.no)
                    assert len(posts) == 1, f"{s.id}: step {step.no} was posted {len(posts)} times"
                assert s.steps[-1].command.name == "finish"
            # the dead process's sessions were finished by the others
            assert {s.id for s in sessions} >= set(victims)
            assert api.violations == []
            survivors = [p for p in cluster.procs if p.alive]
            assert len(survivors) == PROCESSES - 1
            assert not cluster.tracebacks(), cluster.tracebacks()
            print(f"{interrupted} command(s) interrupted by the kill")
        finally:
            await cluster.stop()
            await store.close()


def finished(store: RedisStore, ids: Iterable[str]) -> Callable[[], Awaitable[list[Session] | None]]:
    """For `wait_for`: the sessions once every one of them has finished, else None."""
    wanted = list(ids)

    async def check() -> list[Session] | None:
        got = [await store.get(sid) for sid in wanted]
        done = all(s is not None and s.state == SessionState.FINISHED for s in got)
        return [s for s in got if s is not None] if done else None

    return check


async def _async(value: Any) -> Any:
    return value
