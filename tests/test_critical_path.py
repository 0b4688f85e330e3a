"""One LLM call between a decision and the next step: after a command's result, the task list's
update (creation, then prioritisation only when creation added something) and the memory of the
result run beside the next execution call; the update lands in the task list message when ready
and in the prompt of the cycle after, in one atomic transition. Live progress is reported for
each phase. With the test chat platform, the scripted LLM and each real store."""

from __future__ import annotations

import asyncio
import time

from pydantic import BaseModel

from bot.core import Core
from bot.models import Phase, Session, SessionState, StepStatus
from bot.presenter.views import TaskListView
from bot.settings import Settings
from bot.tools import Tool, ToolContext
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply, tasks_reply
from tests.test_engine import OWNER, settle, start


async def test_the_next_step_does_not_wait_for_the_task_list(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script(
        "task_list", tasks_reply("write the poem", "check it"), tasks_reply("write the poem", "check it")
    )
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "poem.txt", "text": "roses"}),
        agent_reply("read_file", {"filename": "poem.txt"}),
    )
    sid = await start(core, "write a poem")
    # after step 1's result: task creation answers slowly and adds a task (so prioritisation runs)
    llm.script(
        "task_list",
        Delay(1.5, then=tasks_reply("check it", "publish it")),
        tasks_reply("check it", "publish it"),
    )
    before = len(llm.requests)
    asked = time.monotonic()
    assert (await chat.press(core.service, sid, 1, "approve", OWNER)).ok

    # step 2 is posted while the task list's update is still on its way
    while not [s for s in chat.steps(sid) if s.step_no == 2]:
        assert time.monotonic() - asked < 10, "step 2 never came"
        await asyncio.sleep(0.01)
    posted = time.monotonic()
    session = await core.store.get(sid)
    assert session is not None and session.tasks_owed == 1, "the step waited for the task list"
    assert posted - asked < 1.4  # one (immediate) call, not the 1.5 s task creation before it

    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    assert session.tasks == ["check it", "publish it"] and session.done_tasks == ["write the poem"]
    assert session.tasks_owed is None and session.phase == Phase.THINK
    shown = [m for m in chat.messages if isinstance(m.view, TaskListView)]
    assert len(shown) == 1 and shown[0].current.tasks == ["check it", "publish it"]  # type: ignore[union-attr]
    # creation + prioritisation (it added a task), and the execution call: three, one on the path
    kinds = [r.kind for r in llm.requests[before:] if r.kind != "embeddings"]
    assert sorted(kinds) == ["execution_reply", "task_list", "task_list"]
    # the cycle after sees the updated list in its prompt
    llm.script("execution_reply", agent_reply("finish", {"reason": "done"}))
    llm.script("task_list", tasks_reply("publish it"))
    assert (await chat.press(core.service, sid, 2, "approve", OWNER)).ok
    await settle(core)
    prompt = str(llm.last("execution_reply")["messages"])
    assert "publish it" in prompt


async def test_prioritisation_is_skipped_when_creation_adds_nothing(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("task_list", tasks_reply("write", "check"), tasks_reply("write", "check"))
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}), agent_reply("finish", {}))
    sid = await start(core, "write a poem")
    llm.script("task_list", tasks_reply("check"))  # nothing new
    before = len(llm.requests_of("task_list"))
    assert (await chat.press(core.service, sid, 1, "approve", OWNER)).ok
    await settle(core)
    assert len(llm.requests_of("task_list")) == before + 1  # creation only
    session = await core.store.get(sid)
    assert session is not None and session.tasks == ["check"] and session.done_tasks == ["write"]


async def test_an_empty_memory_costs_no_embedding_before_a_cycle(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("list_files", {"directory": "."}),
        agent_reply("write_to_file", {"filename": "a.txt", "text": "a"}),
        agent_reply("finish", {}),
    )
    sid = await start(core, "look around")
    assert llm.requests_of("embeddings") == []  # nothing to recall yet: no embedding made
    assert (await chat.press(core.service, sid, 1, "approve", OWNER)).ok
    await settle(core)
    # the result is remembered beside the next call, which found the memory still empty
    remembered = ["Command list_files returned: (no files)"]
    assert [r["input"] for r in llm.requests_of("embeddings")] == [remembered]
    assert (await chat.press(core.service, sid, 2, "approve", OWNER)).ok
    await settle(core)
    # now there is something to recall: the query is embedded too
    inputs = [r["input"][0] for r in llm.requests_of("embeddings")]
    assert len(inputs) == 3 and inputs[0] == remembered[0]
    assert any(i.startswith("Command write_to_file returned") for i in inputs)


async def test_a_session_saved_by_an_older_version_mid_update_goes_on(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await start(core, "look around")
    assert (await chat.press(core.service, sid, 1, "approve", OWNER)).ok
    await settle(core)

    def older(s):  # type: ignore[no-untyped-def]
        s.phase, s.tasks_owed, s.state = Phase.UPDATE_TASKS, None, SessionState.RUNNING
        s.steps.pop()
        s.cycles -= 1

    await core.store.update(sid, older)
    llm.script("task_list", tasks_reply("next thing"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "done"}))
    core.runner.kick(sid)
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    assert session.tasks_owed is None and session.steps[-1].command.name == "finish"


async def test_progress_is_reported_for_each_phase_and_cleared(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("list_files", {"directory": "."}),
        Delay(0.3, then=agent_reply("finish", {})),
    )
    sid = await start(core, "look around")
    llm.script("task_list", Delay(0.3, then=tasks_reply("look closer")))
    assert (await chat.press(core.service, sid, 1, "approve", OWNER)).ok
    await settle(core)
    seen = [v for _, v in chat.progress_seen if v.session_id == sid]
    phases = {p for v in seen for p in v.phases}
    assert {"planning", "thinking", "running", "tasks"} <= phases
    assert any(v.doing == ["Running list_files..."] or "Running list_files..." in v.doing for v in seen)
    assert seen[-1].doing == [] and seen[-1].since is None  # cleared when the work ended
    # thinking and the task list's update ran at the same time
    assert any({"thinking", "tasks"} <= set(v.phases) for v in seen)


async def test_a_continuous_run_does_not_wait_for_the_task_list_either(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "a"}),
        agent_reply("write_to_file", {"filename": "b.txt", "text": "b"}),
        agent_reply("write_to_file", {"filename": "c.txt", "text": "c"}),
        agent_reply("finish", {"reason": "done"}),
    )
    llm.script("task_list", tasks_reply("write a", "write b"), tasks_reply("write a", "write b"))
    llm.script("task_list", *[Delay(0.8, then=tasks_reply("write b")) for _ in range(4)])
    sid = await start(core, "write three files", continuous=True, continuous_limit=10)
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    asks = [r for r in llm.requests if r.kind in ("execution_reply", "task_list")]
    first_update = next(r for r in asks[2:] if r.kind == "task_list")  # after step 1's result
    later = [r for r in asks if r.kind == "execution_reply" and r.at > first_update.at]
    # steps 2 and 3 were asked for while that update (0.8 s) was still on its way
    assert len([r for r in later if r.at < first_update.at + 0.8]) >= 2
    assert session.tasks_owed is None or session.state.terminal


class SlowArgs(BaseModel):
    seconds: float


async def test_a_command_ending_at_shutdown_is_recorded_not_interrupted(
    settings: Settings, llm: ScriptedLLM
) -> None:
    """Ctrl-C or SIGTERM while a command runs: one that ends within a moment has its result
    recorded (it did take effect); one that does not is reported as interrupted on resume."""

    async def slow(ctx: ToolContext, args: SlowArgs) -> str:
        await asyncio.sleep(args.seconds)
        (ctx.workspace / f"done-{args.seconds}.txt").write_text("yes")
        return f"slept {args.seconds} s"

    def with_slow_tool(core: Core) -> None:
        core.tools.add(Tool("slow", "Sleep a while, then write a file", SlowArgs, slow))

    llm.script(
        "execution_reply",
        agent_reply("slow", {"seconds": 0.6}),
        agent_reply("slow", {"seconds": 30}),
        agent_reply("finish", {}),
    )
    first = await Core.start(settings)
    with_slow_tool(first)
    chat = TestPlatform()
    first.add_platform(chat)
    sid = await start(first, "sleep")
    assert (await chat.press(first.service, sid, 1, "approve", OWNER)).ok
    await asyncio.sleep(0.2)  # the command runs
    await first.close()  # Ctrl-C: the core shuts down
    session = await first_store_view(settings, sid)
    assert session.steps[0].status == StepStatus.DONE and session.steps[0].result == "slept 0.6 s"

    second = await Core.start(settings)
    with_slow_tool(second)
    second.add_platform(chat)
    try:
        await second.resume_all()
        await settle(second)
        session = await second.store.get(sid)
        assert session is not None and session.steps[0].status == StepStatus.DONE
        assert not any("Interrupted" in (s.result or "") for s in session.steps)
        # the next, long one is cut short at shutdown and said to be interrupted
        assert (await chat.press(second.service, sid, 2, "approve", OWNER)).ok
        await asyncio.sleep(0.2)
    finally:
        await second.close()
    third = await Core.start(settings)
    third.add_platform(chat)
    try:
        await third.resume_all()
        await settle(third)
        session = await third.store.get(sid)
        assert session is not None and session.steps[1].status == StepStatus.INTERRUPTED
    finally:
        await third.close()


async def first_store_view(settings: Settings, sid: str) -> Session:
    core = await Core.start(settings)
    try:
        session = await core.store.get(sid)
        assert session is not None
        return session
    finally:
        await core.close()
