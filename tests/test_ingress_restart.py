"""The ingress killed with `kill -9` mid-run and started again (`run --role ingress|worker`).

Real processes on the real Redis, Slack in HTTP mode on the fake Web API: one ingress, one
worker. Continuous sessions are started through the ingress and a step-by-step session waits for
a click; the ingress dies (SIGKILL) while the worker drives. Meanwhile the sessions go on, and a
command and a click sent to the dead ingress fail at the HTTP level (no connection: Slack shows
the user an error for a command and retries an event). The ingress is started again on the same
port; the command and the click sent again succeed. Every session finishes, every cycle is posted
once, no agent command runs twice (the scripted agent's one-line-per-cycle file says so, as in
tests/test_cluster.py) and the command sent twice (once refused) started one session.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from adapters.slack import ids
from bot.models import StepStatus
from bot.store.redis_store import RedisStore
from tests.conftest import REDIS_URL
from tests.fakes.cluster import Cluster, cluster_env
from tests.fakes.llm_server import ScriptedLLM
from tests.fakes.slack_api import FakeSlackAPI, Posted
from tests.test_cluster import LOG, _async, finished, one_line_per_cycle, session_of, step_posts, wait_for

SESSIONS = 3


@pytest.mark.slow
async def test_ingress_killed_and_restarted_loses_nothing(
    tmp_path: Path, llm: ScriptedLLM, redis_prefix: str
) -> None:
    llm.default["execution_reply"] = one_line_per_cycle
    llm.delay = 0.2
    data = tmp_path / "data"
    store = RedisStore(REDIS_URL, redis_prefix)
    await store.open()
    async with FakeSlackAPI() as api:
        env = cluster_env(api, llm.base_url, REDIS_URL, redis_prefix, data, lease_seconds=2)
        cluster = Cluster(2, env, tmp_path / "procs", api, roles=["ingress", "worker"])
        try:
            await cluster.start()
            ingress = cluster.sender(0)
            users = [f"U{i + 1}" for i in range(SESSIONS)]
            for i, user in enumerate(users):
                sent = await ingress.command(f"goal --continuous 8 write lines {i}", user=user)
                assert sent.status == 200, sent.body
            sent = await ingress.command("goal write one line", user="UM")
            assert sent.status == 200, sent.body
            sids = {u: await wait_for(u, lambda u=u: _async(session_of(api, u)), 10) for u in users}
            manual = await wait_for("the manual session", lambda: _async(session_of(api, "UM")), 10)

            async def first_step() -> list[Posted]:
                return [m for m in step_posts(api, manual, 1) if m.buttons()]

            step1 = (await wait_for("the manual session's step 1", first_step, 10))[0]

            async def at_step(n: int) -> bool:
                for sid in sids.values():
                    s = await store.get(sid)
                    if s is None or len(s.steps) < n or s.steps[n - 1].message is None:
                        return False
                return True

            await wait_for("every session at step 2", lambda: at_step(2), 15, poll=0.02)
            cluster.kill(0)

            # the ingress is down: the sessions go on on the worker ...
            await wait_for("every session at step 3", lambda: at_step(3), 10, poll=0.05)
            # ... and what Slack sends it fails at the HTTP level (Slack retries an event and
            # tells the user a command failed): nothing of it is half done
            with pytest.raises(aiohttp.ClientConnectionError):
                await ingress.command("goal --continuous 8 write lines late", user="UL")
            with pytest.raises(aiohttp.ClientConnectionError):
                await ingress.click(step1, ids.APPROVE, "UM")

            await cluster.restart(0)
            sent = await ingress.command("goal --continuous 8 write lines late", user="UL")
            assert sent.status == 200 and sent.seconds < 3, sent.body
            sent = await ingress.click(step1, ids.APPROVE, "UM")
            assert sent.status == 200 and sent.seconds < 3, sent.body
            await wait_for("step 2 of the manual session", lambda: _async(step_posts(api, manual, 2)), 10)
            assert (data / "workspaces" / manual / LOG).read_text() == "1\n"
            late = await wait_for("the late session", lambda: _async(session_of(api, "UL")), 10)

            try:
                sessions = await wait_for(
                    "every session to finish", finished(store, [*sids.values(), late]), 20, poll=0.2
                )
            except AssertionError:
                raise AssertionError(f"not all finished:\n{cluster.procs[1].output()[-3000:]}") from None
            for s in sessions:
                lines = (data / "workspaces" / s.id / LOG).read_text().split()
                assert len(lines) == len(set(lines)), f"{s.id}: a command ran twice: {lines}"
                for step in s.steps:
                    posts = step_posts(api, s.id, step.no)
                    assert len(posts) == 1, f"{s.id}: step {step.no} was posted {len(posts)} times"
                    assert step.status == StepStatus.DONE, f"{s.id}: step {step.no} is {step.status}"
                    if step.command.name == "append_to_file":
                        assert lines.count(str(step.no)) == 1
                assert s.steps[-1].command.name == "finish"
            # the command refused while the ingress was down started nothing; sent again, one session
            assert len(await store.sessions_of("slack:UL")) == 1
            assert api.violations == []
            assert not cluster.tracebacks(), cluster.tracebacks()
            assert cluster.procs[0].metrics()["autogpt_cycles_total"] == 0  # the ingress drove nothing
        finally:
            await cluster.stop()
            await store.close()
