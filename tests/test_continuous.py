"""Continuous mode in the background: runs without asking, Pause and Stop mid-run, commands with
outside effects wait for a human, limits pause a run its owner can continue, and a session whose
process died is picked up once its lease lapses. Real stores, the scripted LLM, the test chat."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bot.core import Core
from bot.grammar import GoalCommand
from bot.models import Actor, Phase, Place, SessionState, StepStatus
from bot.settings import Settings
from tests.conftest import started_core
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply

OWNER = "U1"
PLACE = Place(platform="test", channel="C1")
ME = Actor(platform="test", user_id=OWNER, name="owner")


def appends(n: int) -> list[dict[str, Any]]:
    return [agent_reply("append_to_file", {"filename": "log.txt", "text": f"{i}\n"}) for i in range(n)]


async def wait_for(predicate: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def state_of(core: Core, sid: str) -> SessionState:
    session = await core.store.get(sid)
    assert session is not None
    return session.state


async def test_continuous_runs_in_the_background_and_chat_stays_responsive(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", *[Delay(0.3, then=r) for r in appends(3)], agent_reply("finish"))
    started = time.monotonic()
    outcome = await core.service.handle_text(ME, PLACE, "goal --continuous 10 count to three")
    assert outcome.ok and outcome.session_id
    sid = outcome.session_id
    # the command answered at once; the run goes on as an APScheduler job tied to the session
    assert time.monotonic() - started < 0.5
    assert core.scheduler.get_job(f"session:{sid}") is not None or core.runner.busy == 1
    listing = await core.service.handle_text(ME, PLACE, "list")
    assert listing.ok and sid in listing.message
    await core.runner.idle(15)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    assert [s.decided_by for s in session.steps] == ["continuous"] * 4
    assert (core.settings.data_dir / "workspaces" / sid / "log.txt").read_text() == "0\n1\n2\n"
    # every cycle was posted with Pause and Stop while it ran
    first = chat.step_message(sid, 1)
    assert [o.action for o in first.view.options] == ["pause", "stop"]  # type: ignore[union-attr]


async def test_pause_mid_run_returns_to_step_by_step(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", *[Delay(0.4, then=r) for r in appends(4)])
    outcome = await core.service.handle_text(ME, PLACE, "goal --continuous count")
    sid = outcome.session_id
    assert sid is not None
    await wait_for(lambda: _posted(chat, sid, 1))  # the step is saved, then posted: wait for the post
    pressed = await chat.press(core.service, sid, 1, "pause", OWNER)
    assert pressed.ok, pressed.message
    await core.runner.idle(10)
    session = await core.store.get(sid)
    assert session is not None
    assert session.state == SessionState.AWAITING_APPROVAL, (session.state, session.reason)
    assert not session.continuous
    assert session.pending_step is not None and session.pending_step.status == StepStatus.PENDING
    ran = len([s for s in session.steps if s.status == StepStatus.DONE])
    assert ran <= 3, ran  # it stopped running on its own at the next proposal
    # Approve next N restarts it without asking
    llm.script("execution_reply", agent_reply("finish"))
    approved = await chat.press(core.service, sid, session.pending_step.no, "approve_n", OWNER)
    assert approved.ok
    await core.runner.idle(10)
    assert await state_of(core, sid) == SessionState.FINISHED


async def test_stop_mid_run(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", *[Delay(0.4, then=r) for r in appends(5)])
    outcome = await core.service.handle_text(ME, PLACE, "goal --continuous count")
    sid = outcome.session_id
    assert sid is not None
    await wait_for(lambda: _has_steps(core, sid, 1))
    stranger = await core.service.handle_text(Actor(platform="test", user_id="U2"), PLACE, f"pause {sid}")
    assert not stranger.ok and "Only" in stranger.message
    stopped = await core.service.handle_text(ME, PLACE, f"stop {sid}")
    assert stopped.ok
    await core.runner.idle(10)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.STOPPED
    assert len(session.steps) <= 2


async def test_outside_effects_wait_for_a_human_in_continuous_mode(
    tmp_path: Path, llm: ScriptedLLM, settings: Settings
) -> None:
    async with started_core(settings, execute_local_commands=True) as (core, chat):
        llm.script(
            "execution_reply",
            agent_reply("write_to_file", {"filename": "a.txt", "text": "a"}),
            agent_reply("execute_shell", {"command_line": "cat a.txt"}),
            agent_reply("finish"),
        )
        outcome = await core.service.handle_text(ME, PLACE, "goal --continuous 10 read it back")
        sid = outcome.session_id
        assert sid is not None
        await core.runner.idle(10)
        session = await core.store.get(sid)
        assert session is not None and session.state == SessionState.AWAITING_APPROVAL
        waiting = session.pending_step
        assert waiting is not None and waiting.command.name == "execute_shell"
        assert any("effects outside the session" in n for n in waiting.notes)
        assert session.steps[0].decided_by == "continuous"
        # a human approves it; the run goes on continuously
        assert (await chat.press(core.service, sid, waiting.no, "approve", OWNER)).ok
        await core.runner.idle(10)
        session = await core.store.get(sid)
        assert session is not None and session.state == SessionState.FINISHED
        assert session.steps[1].result is not None and "exit code 0" in session.steps[1].result
        assert session.steps[1].result.endswith("a")
        assert session.steps[2].decided_by == "continuous"


async def test_a_limit_ends_the_run_and_the_owner_continues_it(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", *appends(4), agent_reply("finish"))
    outcome = await core.service.handle_text(ME, PLACE, "goal --continuous 2 count")
    sid = outcome.session_id
    assert sid is not None
    await core.runner.idle(10)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED and session.pause_kind == "limit"
    assert "continuous limit reached" in (session.reason or "")
    assert chat.of(sid, "summary")[-1].outcome == "paused"  # type: ignore[union-attr]
    resumed = await core.service.handle_text(ME, PLACE, f"resume {sid} --continuous 5")
    assert resumed.ok, resumed.message
    await core.runner.idle(10)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED and session.cycles == 5


async def test_a_dead_process_session_is_picked_up_after_its_lease_lapses(
    tmp_path: Path, llm: ScriptedLLM, settings: Settings
) -> None:
    quick = settings.model_copy(update={"lease_seconds": 0.5})
    core = await Core.start(quick)
    core.add_platform(TestPlatform())
    try:
        llm.script("execution_reply", appends(1)[0], agent_reply("finish"))
        outcome = await core.service.start(
            ME, PLACE, GoalCommand(goals=["g"], continuous=True), autostart=False
        )
        sid = outcome.session_id
        assert sid is not None

        def running(s):
            s.state = SessionState.RUNNING
            s.phase = Phase.THINK

        await core.store.update(sid, running)
        # another process was driving it and died: its lease is still there for a moment
        assert await core.store.acquire_lease(sid, "a-dead-process", 0.6)
        core.start_background()
        await wait_for(lambda: _is(core, sid, SessionState.FINISHED), within=10)
    finally:
        await core.close()


async def _posted(chat: TestPlatform, sid: str, n: int) -> bool:
    return any(v.step_no == n for v in chat.steps(sid))


async def _has_steps(core: Core, sid: str, n: int) -> bool:
    session = await core.store.get(sid)
    return session is not None and len(session.steps) >= n


async def _is(core: Core, sid: str, state: SessionState) -> bool:
    return await state_of(core, sid) == state


async def test_a_write_that_lands_while_thinking_does_not_lose_the_step(core: Core, llm: ScriptedLLM) -> None:
    """The engine's first compare-and-set uses the copy it holds; another writer (a click, a
    memory of another process) bumping the version meanwhile makes it retry on the stored one,
    and the retried transition must be the same as the first."""
    llm.script("execution_reply", Delay(0.6, then=appends(1)[0]), agent_reply("finish"))
    outcome = await core.service.handle_text(ME, PLACE, "goal --continuous count")
    sid = outcome.session_id
    assert sid is not None
    await asyncio.sleep(0.3)
    await core.store.update(sid, lambda s: None)  # someone else's write while the LLM thinks
    await core.runner.idle(10)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    assert (core.settings.data_dir / "workspaces" / sid / "log.txt").read_text() == "0\n"
    assert [s.status for s in session.steps] == [StepStatus.DONE, StepStatus.DONE]


async def test_an_approved_step_never_posted_is_posted_before_it_runs(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    """A continuous step saved as approved by a process that died before posting it."""
    llm.script("execution_reply", appends(1)[0], agent_reply("finish"))
    outcome = await core.service.start(ME, PLACE, GoalCommand(goals=["g"], continuous=True), autostart=False)
    sid = outcome.session_id
    assert sid is not None
    await core.engine.drive(sid)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    posted = {v.step_no for v in chat.steps(sid)}
    assert posted == {1, 2}

    # now the same, with step 1 saved but not posted, as a process that died would leave it
    llm.script("execution_reply", appends(1)[0], agent_reply("finish"))
    second = await core.service.start(ME, PLACE, GoalCommand(goals=["h"], continuous=True), autostart=False)
    sid2 = second.session_id
    assert sid2 is not None
    chat.fail_posts = 0
    original = chat.post
    dropped: list[int] = []

    async def lose_first_step(place, view):  # the process "dies" right after saving step 1
        if getattr(view, "kind", "") == "step" and view.step_no == 1 and not dropped:
            dropped.append(1)
            raise asyncio.CancelledError
        return await original(place, view)

    chat.post = lose_first_step  # type: ignore[method-assign]
    try:
        await core.engine.drive(sid2)
    except asyncio.CancelledError:
        pass
    chat.post = original  # type: ignore[method-assign]
    await core.store.release_lease(sid2, core.engine.holder)
    await core.engine.drive(sid2)  # another drive (another process) takes it up
    session = await core.store.get(sid2)
    assert session is not None and session.state == SessionState.FINISHED
    assert sorted(v.step_no for v in chat.steps(sid2)) == [1, 2]
