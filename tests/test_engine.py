"""The agent cycle and human decisions through the core, with the test chat platform, the
scripted LLM server (the real openai client) and each real store (Redis and SQLite)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from bot.core import Core
from bot.decisions import Decision
from bot.grammar import GoalCommand
from bot.llm import tokens
from bot.models import Actor, Place, SessionState, StepStatus
from bot.presenter.views import StepView, SummaryView, TaskListView
from bot.settings import Settings
from tests.conftest import started_core
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import Error, Raw, ScriptedLLM, agent_reply, tasks_reply

OWNER = "U1"
PLACE = Place(platform="test", channel="C1")
APPROVE = Decision(action="approve")


async def start(core: Core, *goals: str, user: str = OWNER, **kw: object) -> str:
    actor = Actor(platform="test", user_id=user, name=f"user {user}")
    outcome = await core.service.start(actor, PLACE, GoalCommand(goals=list(goals) or ["write a poem"], **kw))
    assert outcome.ok, outcome.message
    assert outcome.session_id is not None
    await core.runner.idle(10)
    return outcome.session_id


async def settle(core: Core) -> None:
    await core.runner.idle(10)


async def test_goal_to_finish_through_approve_clicks(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script(
        "task_list", tasks_reply("write the poem", "check it"), tasks_reply("write the poem", "check it")
    )
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "poem.txt", "text": "roses"}, text="I will write"),
        agent_reply("finish", {"reason": "poem written"}),
    )
    sid = await start(core, "write a poem", "save it to poem.txt")
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    assert session.tasks == ["write the poem", "check it"]
    assert chat.headers[0].goals == ["write a poem", "save it to poem.txt"]
    step = chat.steps(sid)[0]
    assert step.command == "write_to_file" and step.thoughts.text == "I will write"
    assert [o.action for o in step.options] == [
        "approve",
        "approve_n",
        "feedback",
        "retry",
        "stop",
        "allow_tool",
    ]

    assert (await chat.press(core.service, sid, 1, "approve", OWNER)).ok
    await settle(core)
    assert (core.settings.data_dir / "workspaces" / sid / "poem.txt").read_text() == "roses"
    decided = chat.step_message(sid, 1).current
    assert isinstance(decided, StepView) and decided.decided_by == OWNER and decided.status == "done"
    assert next(r.output for r in chat.of(sid, "result")).startswith("File poem.txt written")

    assert (await chat.press(core.service, sid, 2, "approve", OWNER)).ok
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    assert session.reason == "poem written"
    assert session.usage.calls >= 4 and session.usage.cost_usd > 0
    summary = chat.of(sid, "summary")[-1]
    assert isinstance(summary, SummaryView) and summary.outcome == "finished" and summary.cycles == 2
    archived = await core.archive.get(sid)
    assert archived is not None and archived.state == SessionState.FINISHED and len(archived.steps) == 2
    # the task list is one message, edited in place
    task_messages = [m for m in chat.messages if isinstance(m.view, TaskListView)]
    assert len(task_messages) == 1 and task_messages[0].edits
    # every execution call asked with Structured Outputs and the AutoGPT shape
    body = llm.last("execution_reply")
    schema = body["response_format"]["json_schema"]["schema"]
    assert set(schema["required"]) == {"thoughts", "command"}
    assert not llm.unscripted


async def test_a_step_says_running_only_while_a_slow_command_runs(
    tmp_path: Path, llm: ScriptedLLM, settings: Settings
) -> None:
    """A command that ends within RUNNING_NOTICE_S goes from decided to done in one edit; one
    that runs longer has its message say so while it runs."""
    async with started_core(settings, execute_local_commands=True, running_notice_s=0.5) as (core, chat):
        llm.script(
            "execution_reply",
            agent_reply("write_to_file", {"filename": "a.txt", "text": "a"}),
            agent_reply(
                "execute_shell",
                {"command_line": "python3 -c \"import time; time.sleep(1.2); print('slept')\""},
            ),
            agent_reply("finish"),
        )
        sid = await start(core, "write, then wait")
        for no in (1, 2):
            assert (await chat.press(core.service, sid, no, "approve", OWNER)).ok
            await settle(core)
        fast, slow = chat.step_message(sid, 1), chat.step_message(sid, 2)
        statuses = [[v.status for v in [m.view, *m.edits] if isinstance(v, StepView)] for m in (fast, slow)]
        assert statuses[0] == ["pending", "decided", "done"], statuses[0]
        assert statuses[1] == ["pending", "decided", "running", "done"], statuses[1]
        result = chat.of(sid, "result")[1]
        assert "slept" in result.output  # type: ignore[union-attr]


async def test_approve_next_n_runs_without_asking(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        *[agent_reply("append_to_file", {"filename": "log.txt", "text": f"{i}\n"}) for i in range(4)],
    )
    sid = await start(core)
    outcome = await chat.press(core.service, sid, 1, "approve_n", OWNER)
    assert outcome.ok and "next 4" in outcome.message  # approve_next_n defaults to 5: this one and 4 more
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None
    # steps 1..4 ran; the fifth proposal is unscripted so the run pauses, nothing lost
    assert (core.settings.data_dir / "workspaces" / sid / "log.txt").read_text() == "0\n1\n2\n3\n"
    assert [s.status for s in session.steps[:4]] == [StepStatus.DONE] * 4
    assert [s.decided_by for s in session.steps[1:4]] == ["auto"] * 3


async def test_feedback_skips_the_command_and_tells_the_agent(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("delete_file", {"filename": "x"}), agent_reply("finish"))
    sid = await start(core)
    outcome = await chat.press(core.service, sid, 1, "feedback", OWNER, text="don't delete anything")
    assert outcome.ok
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.SKIPPED
    prompt = json.dumps(llm.requests_of("execution_reply")[-1]["messages"])
    assert "Human feedback: don't delete anything" in prompt


async def test_stop_and_stranger_and_double_click(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}), agent_reply("finish"))
    sid = await start(core)
    refused = await chat.press(core.service, sid, 1, "approve", "U2")
    assert not refused.ok and "Only" in refused.message
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL

    # a double click: two approvals race, exactly one lands
    results = await asyncio.gather(
        chat.press(core.service, sid, 1, "approve", OWNER), chat.press(core.service, sid, 1, "approve", OWNER)
    )
    assert sorted(r.ok for r in results) == [False, True]
    assert "already decided" in next(r.message for r in results if not r.ok)
    await settle(core)
    # a click on the old step after it ran
    stale = await chat.press(core.service, sid, 1, "stop", OWNER)
    assert not stale.ok
    # an admin may stop someone else's session
    stopped = await chat.press(core.service, sid, 2, "stop", "ADMIN", admin=True)
    assert stopped.ok
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.STOPPED
    assert session.steps[-1].status == StepStatus.REJECTED
    assert chat.of(sid, "summary")[-1].outcome == "stopped"  # type: ignore[union-attr]
    assert len(llm.requests_of("execution_reply")) == 2


async def test_broken_json_is_repaired(core: Core, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        Raw('{"thoughts": {"text": "t", "plan": ["a", "b"]}, "command": {"name": "list_files", "args": {}},'),
    )
    sid = await start(core)
    session = await core.store.get(sid)
    assert session is not None and session.pending_step is not None
    assert session.pending_step.command.name == "list_files"
    assert session.pending_step.thoughts.plan == "- a\n- b"


async def test_invalid_reply_is_asked_again_then_fails_visibly(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", Raw("I think we should browse"), Raw('{"thoughts": {}}'))
    sid = await start(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED
    assert "could not be understood" in (session.reason or "")
    assert session.steps == []  # never a silent empty command
    second = llm.requests_of("execution_reply")[1]["messages"][-1]["content"]
    assert "could not be used" in second
    assert chat.of(sid, "summary")[-1].outcome == "paused"  # type: ignore[union-attr]
    # the owner resumes it and it goes on, nothing lost
    llm.script("execution_reply", agent_reply("finish"))
    assert (await core.service.decide(sid, Actor(platform="test", user_id=OWNER), APPROVE)).ok
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL


async def test_unknown_command_is_reported_back(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("command name", {"arg name": "value"}), agent_reply("finish"))
    sid = await start(core)
    session = await core.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.INVALID
    assert session.pending_step is not None and session.pending_step.command.name == "finish"
    prompt = json.dumps(llm.requests_of("execution_reply")[-1]["messages"])
    assert "Unknown command 'command name'" in prompt


async def test_loop_guard(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    same = agent_reply("list_files", {"directory": "."})
    llm.script("execution_reply", same, same, same)
    sid = await start(core)
    await chat.press(core.service, sid, 1, "approve_n", OWNER)  # would run 5 without asking
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    third = session.steps[2]
    assert third.status == StepStatus.PENDING
    assert any("three times in a row" in n for n in third.notes)
    assert session.approvals_left == 0


async def test_llm_outage_pauses_and_resumes(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", Error(500, "boom"), Error(500, "boom"))  # llm_max_retries=1: two tries
    sid = await start(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED
    assert "failed (500)" in (session.reason or "")
    llm.script("execution_reply", agent_reply("finish"))
    outcome = await core.service.handle_text(Actor(platform="test", user_id=OWNER), PLACE, f"approve {sid}")
    assert outcome.ok, outcome.message
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL


async def test_rate_limit_is_retried(core: Core, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", Error(429, "slow down"), agent_reply("finish"))
    sid = await start(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL


async def test_budget_stops_the_run(tmp_path: Path, llm: ScriptedLLM, settings: Settings) -> None:
    # Each call costs about $0.01 at these prices; the budget allows a few, never more.
    tight = settings.model_copy(
        update={
            "session_budget_usd": 0.015,
            "model_prices": {"gpt-4o": (4.0, 4.0), "gpt-4o-mini": (0.0, 0.0)},
        }
    )
    core = await Core.start(tight)
    chat = TestPlatform()
    core.add_platform(chat)
    try:
        llm.script(
            "execution_reply",
            *[agent_reply("append_to_file", {"filename": "a", "text": f"{i}"}) for i in range(10)],
        )
        sid = await start(core)
        await chat.press(core.service, sid, 1, "approve_n", OWNER)
        await settle(core)
        session = await core.store.get(sid)
        assert session is not None
        assert session.state == SessionState.PAUSED and session.pause_kind == "limit"
        assert "session budget reached" in (session.reason or "")
        assert session.usage.cost_usd <= 0.015
        summary = chat.of(sid, "summary")[-1]
        assert isinstance(summary, SummaryView) and summary.cost_usd == session.usage.cost_usd
    finally:
        await core.close()


async def test_daily_budget_and_session_limits(core: Core, llm: ScriptedLLM) -> None:
    core.settings.max_sessions_per_user = 1
    llm.script("execution_reply", agent_reply("finish"))
    await start(core)
    actor = Actor(platform="test", user_id=OWNER)
    second = await core.service.handle_text(actor, PLACE, "goal another one")
    assert not second.ok and "limit is 1" in second.message
    await core.store.add_spend(f"test:{'U9'}", __import__("bot.engine").engine.today(), 100.0)
    broke = await core.service.handle_text(Actor(platform="test", user_id="U9"), PLACE, "goal spend")
    assert not broke.ok and "daily budget" in broke.message
    core.settings.allowed_user_ids = ["U1"]
    denied = await core.service.handle_text(Actor(platform="test", user_id="U7"), PLACE, "goal x")
    assert not denied.ok and "not on the list" in denied.message


async def test_a_huge_result_never_overflows_the_prompt(core: Core, llm: ScriptedLLM) -> None:
    sid = await start(core)  # the first execution reply is unscripted: paused
    workspace = core.settings.data_dir / "workspaces" / sid
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "big.html").write_text("<p>lorem ipsum dolor</p>\n" * 45000)  # ~1 MB
    llm.script("execution_reply", agent_reply("read_file", {"filename": "big.html"}), agent_reply("finish"))
    actor = Actor(platform="test", user_id=OWNER)
    await core.service.decide(sid, actor, APPROVE)  # resume
    await settle(core)
    await core.service.decide(sid, actor, APPROVE)  # run read_file
    await settle(core)
    messages = llm.requests_of("execution_reply")[-1]["messages"]
    used = tokens.count_messages(messages)
    assert used <= core.settings.smart_token_limit - core.settings.max_reply_tokens
    assert "cut:" in json.dumps(messages)
    session = await core.store.get(sid)
    assert session is not None and session.pending_step is not None
    assert len(session.steps[-2].result or "") < core.settings.max_result_chars + 200


async def test_gpt3only_and_gpt4only(core: Core, llm: ScriptedLLM) -> None:
    actor = Actor(platform="test", user_id=OWNER)
    llm.script("execution_reply", agent_reply("finish"), agent_reply("finish"))
    for mode, model in (("fast", "gpt-4o-mini"), ("smart", "gpt-4o")):
        llm.requests.clear()
        out = await core.service.start(actor, PLACE, GoalCommand(goals=["g"]), llm_mode=mode)
        await settle(core)
        assert out.ok
        assert {r.body["model"] for r in llm.requests if r.path.endswith("/chat/completions")} == {model}


async def test_workspace_escape_is_refused(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply", agent_reply("read_file", {"filename": "../../etc/passwd"}), agent_reply("finish")
    )
    sid = await start(core)
    await chat.press(core.service, sid, 1, "approve", OWNER)
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and (session.steps[0].result or "").startswith("Error: Access denied")


async def test_restart_between_clicks_and_during_a_command(settings: Settings, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "1"}),
        agent_reply("finish"),
    )
    first = await Core.start(settings)
    chat = TestPlatform()
    first.add_platform(chat)
    sid = await start(first)
    await first.close()

    # a new process: the old button still works, everything is looked up in the store
    second = await Core.start(settings)
    second.add_platform(chat)
    try:
        assert (await chat.press(second.service, sid, 1, "approve", OWNER)).ok
        await settle(second)
        session = await second.store.get(sid)
        assert (
            session is not None
            and session.pending_step is not None
            and session.pending_step.command.name == "finish"
        )

        # a process dies while a command runs: the next one records it as interrupted, never reruns it
        def crash(s):  # what a died process leaves behind
            s.steps[-1].status = StepStatus.EXECUTING
            s.state = SessionState.RUNNING
            s.phase = __import__("bot.models").models.Phase.EXECUTE

        await second.store.update(sid, crash)
        assert await second.resume_all() == 1
        await settle(second)
        session = await second.store.get(sid)
        assert session is not None
        assert session.steps[1].status == StepStatus.INTERRUPTED
        assert "Interrupted" in (session.steps[1].result or "")
        assert session.state != SessionState.FINISHED  # finish was not run again silently
    finally:
        await second.close()


async def test_service_answers_bad_input_clearly(core: Core, llm: ScriptedLLM) -> None:
    actor = Actor(platform="test", user_id=OWNER)
    bad = await core.service.handle_text(actor, PLACE, "frobnicate now")
    assert not bad.ok and "Unknown command" in bad.message and "goal" in bad.message
    missing = await core.service.handle_text(actor, PLACE, "status zzzzzz")
    assert not missing.ok and "No session zzzzzz" in missing.message
    stop = await core.service.handle_text(actor, PLACE, "stop zzzzzz")
    assert not stop.ok
    huge = await core.service.handle_text(actor, PLACE, "goal " + "x" * 5000)
    assert not huge.ok and "4,000" in huge.message
    empty = await core.service.handle_text(actor, PLACE, "list")
    assert empty.ok and "no sessions" in empty.message


async def test_continuous_runs_without_asking_and_loop_guard_pauses_it(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    same = agent_reply("list_files", {"directory": "."})
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "a"}),
        same,
        same,
        same,
    )
    sid = await start(core, "keep going", continuous=True, continuous_limit=10)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    assert [s.decided_by for s in session.steps[:3]] == ["continuous"] * 3
    assert session.steps[3].status == StepStatus.PENDING
    assert any("Paused for a human" in n for n in session.steps[3].notes)
    assert chat.steps(sid)[3].options  # the buttons are offered again


async def test_continuous_limit_stops(core: Core, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        *[agent_reply("append_to_file", {"filename": "a", "text": f"{i}"}) for i in range(5)],
    )
    sid = await start(core, "count", continuous=True, continuous_limit=2)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED and session.cycles == 2
    assert session.pause_kind == "limit" and not session.continuous
    assert "continuous limit reached" in (session.reason or "")


async def test_owner_reply_in_the_thread_is_feedback(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("delete_file", {"filename": "x"}), agent_reply("finish"))
    sid = await start(core)
    session = await core.store.get(sid)
    assert session is not None and session.place.thread is not None
    thread = session.place
    stranger = await core.service.reply_in_thread(Actor(platform="test", user_id="U2"), thread, "hi all")
    assert stranger is None  # conversation, not a decision
    elsewhere = Place(platform="test", channel="C1", thread="not-a-session")
    assert await core.service.reply_in_thread(Actor(platform="test", user_id=OWNER), elsewhere, "x") is None
    outcome = await core.service.reply_in_thread(Actor(platform="test", user_id=OWNER), thread, "keep x")
    assert outcome is not None and outcome.ok
    await settle(core)
    session = await core.store.get(sid)
    assert session is not None and session.steps[0].feedback == "keep x"


async def test_a_step_saved_but_never_posted_is_posted_by_the_next_drive(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await start(core)
    # what a process that died between saving the step and posting it leaves behind
    await core.store.update(sid, lambda s: setattr(s.steps[-1], "message", None))
    before = len(chat.steps(sid))
    await core.engine.drive(sid)
    session = await core.store.get(sid)
    assert (
        session is not None and session.pending_step is not None and session.pending_step.message is not None
    )
    assert len(chat.steps(sid)) == before + 1
    await core.engine.drive(sid)  # and only once
    assert len(chat.steps(sid)) == before + 1
