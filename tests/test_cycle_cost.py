"""What a cycle costs the store: a continuous cycle is two commits (its proposal, claimed to run
at once, and its result, which carries the step's message and the task list's update), and a step
claimed that way still runs only if nobody stopped the session meanwhile. Real stores (Redis and
SQLite), the scripted LLM, the test chat."""

from __future__ import annotations

import asyncio
from typing import Any

from bot.core import Core
from bot.models import Actor, MessageRef, Place, SessionState, StepStatus
from bot.presenter.views import View
from bot.settings import Settings
from bot.tools.files import workspace_of
from tests.conftest import started_core
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import ScriptedLLM, agent_reply

PLACE = Place(platform="test", channel="C1")
ME = Actor(platform="test", user_id="U1", name="owner")


def appends(n: int) -> list[dict[str, Any]]:
    return [agent_reply("append_to_file", {"filename": "log.txt", "text": f"{i}\n"}) for i in range(n)]


async def run_to_the_end(core: Core, llm: ScriptedLLM, cycles: int) -> int:
    """A continuous session of `cycles` appends and a finish; returns its stored version (each
    commit adds one)."""
    llm.script("execution_reply", *appends(cycles), agent_reply("finish"))
    outcome = await core.service.handle_text(ME, PLACE, "goal --continuous 100 count")
    assert outcome.ok and outcome.session_id
    await core.runner.idle(30)
    session = await core.store.get(outcome.session_id)
    assert session is not None and session.state == SessionState.FINISHED, session and session.reason
    assert len(session.steps) == cycles + 1
    assert all(s.message is not None for s in session.steps)  # every step's message is stored
    return session.version


async def test_a_continuous_cycle_commits_twice(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    short = await run_to_the_end(core, llm, 3)
    long = await run_to_the_end(core, llm, 11)
    # what the eight more cycles cost: two commits each (it was five: the proposal, its message,
    # the start, the result, the task list)
    assert (long - short) / 8 <= 2.0, (short, long)
    # and the task list still landed in its message after every result
    tasks = [v for v in chat.messages if v.current.kind == "tasks"]
    assert tasks and all(m.edits for m in tasks)


class HeldPlatform(TestPlatform):
    """Holds the post of step messages until released: a human acts meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.posting = asyncio.Event()
        self.release = asyncio.Event()

    async def post(self, place: Place, view: View) -> MessageRef:
        if view.kind == "step":
            self.posting.set()
            await self.release.wait()
        return await super().post(place, view)


async def test_a_step_claimed_at_its_proposal_does_not_run_after_a_stop(
    settings: Settings, llm: ScriptedLLM
) -> None:
    core = await Core.start(settings)
    chat = HeldPlatform()
    core.add_platform(chat)
    try:
        llm.script("execution_reply", *appends(3))
        outcome = await core.service.handle_text(ME, PLACE, "goal --continuous 10 count")
        sid = outcome.session_id
        assert sid is not None
        await asyncio.wait_for(chat.posting.wait(), 10)  # step 1 is proposed, approved and claimed
        stopped = await core.service.handle_text(ME, PLACE, f"stop {sid}")
        assert stopped.ok, stopped.message
        chat.release.set()
        await core.runner.idle(10)
        session = await core.store.get(sid)
        assert session is not None and session.state == SessionState.STOPPED
        step = session.steps[0]
        assert step.status == StepStatus.REJECTED and step.result is None
        assert step.message is not None
        assert not (workspace_of(settings.data_dir, sid) / "log.txt").exists()  # nothing ran
        assert "not run" in str(chat.step_message(sid, 1).current.model_dump())
    finally:
        await core.close()


async def test_the_task_list_lands_on_its_own_when_the_next_proposal_is_slow(
    settings: Settings, llm: ScriptedLLM
) -> None:
    """Carried by the drive's next commit only if that comes soon: with a slow LLM, the updated
    list is stored and shown while the agent is still thinking."""
    from tests.fakes.llm_server import Delay

    async with started_core(settings) as (core, _chat):
        llm.script("execution_reply", appends(1)[0], Delay(3.0, then=agent_reply("finish")))
        outcome = await core.service.handle_text(ME, PLACE, "goal --continuous 10 count")
        sid = outcome.session_id
        assert sid is not None
        for _ in range(100):  # the first result is in; the second proposal takes 3 s
            await asyncio.sleep(0.05)
            session = await core.store.get(sid)
            if session is not None and session.tasks_owed is None and session.steps[0].result:
                break
        else:
            raise AssertionError("the task list was not stored while the agent was thinking")
        assert len(session.steps) == 1  # still thinking
        await core.runner.idle(10)
