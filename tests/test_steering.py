"""Steering a session under way: `goals ID add|remove|edit`, `retry ID` (and its Ask again button)
and `fork ID [STEP]`, through the shared grammar and the core, with the scripted LLM (the real
openai client) and each real store."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.audit import records_of
from bot.core import Core
from bot.grammar import GoalsCommand, UsageError, parse
from bot.models import Actor, Outcome, Place, SessionState, StepStatus
from bot.presenter.views import NoticeView, SessionHeaderView, StepView, TaskListView
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import Raw, ScriptedLLM, agent_reply, tasks_reply

OWNER = "U1"
PLACE = Place(platform="test", channel="C1")
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def actor(user: str = OWNER) -> Actor:
    return Actor(platform="test", user_id=user, name=f"user {user}")


async def say(core: Core, text: str, user: str = OWNER, place: Place = PLACE) -> Outcome:
    outcome = await core.service.handle_text(actor(user), place, text)
    await core.runner.idle(10)
    return outcome


async def start(core: Core, text: str = "goal write a poem") -> str:
    outcome = await say(core, text)
    assert outcome.ok and outcome.session_id is not None, outcome.message
    return outcome.session_id


def prompt(llm: ScriptedLLM, n: int = -1) -> str:
    return json.dumps(llm.requests_of("execution_reply")[n]["messages"], ensure_ascii=False)


def notices(chat: TestPlatform, sid: str) -> list[str]:
    return [v.text for v in chat.of(sid, "notice") if isinstance(v, NoticeView)]


# ---------------------------------------------------------------------------- the grammar


def test_the_grammar_of_steering() -> None:
    assert parse("goals k3f9qa") == GoalsCommand(session_id="k3f9qa")
    assert parse('goals #K3F9QA edit 2 "say it in French"') == GoalsCommand(
        session_id="k3f9qa", action="edit", index=2, text="say it in French"
    )
    assert parse("goals k3f9qa add a  second\ngoal").text == "a second goal"  # type: ignore[union-attr]
    fork = parse("fork k3f9qa 3 --continuous 5")
    assert (fork.step, fork.continuous, fork.continuous_limit) == (3, True, 5)  # type: ignore[union-attr]
    for text, why in [
        ("goals research apps", "To start a session: goal"),
        ("goals k3f9qa remove", "Say which goal"),
        ("goals k3f9qa remove 6", "at most 5 goals"),
        ("goals k3f9qa edit 1", "Give the goal's text"),
        ("goals k3f9qa drop 1", "Unknown 'drop'"),
        ("retry", "retry needs a session id"),
        ("retry k3f9qa now", "Unexpected 'now'"),
        ("fork k3f9qa two", "Unexpected 'two'"),
    ]:
        try:
            parse(text)
        except UsageError as exc:
            assert why in exc.message, (text, exc.message)
        else:
            raise AssertionError(f"{text!r} parsed")


# ---------------------------------------------------------------------------- goals


async def test_goals_changed_under_way_are_recorded_and_told_at_the_next_cycle(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("task_list", tasks_reply("write the poem"))
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "poem.txt", "text": "roses"}),
        agent_reply("append_to_file", {"filename": "poem.txt", "text": " are red"}),
        agent_reply("read_file", {"filename": "poem.txt"}),
    )
    sid = await start(core, "goal write a poem")

    added = await say(core, f"goals {sid} add translate it into French")
    assert added.ok and "Goal 2 added" in added.message and "step 1 still waits" in added.message
    session = await core.store.get(sid)
    assert session is not None and session.goals == ["write a poem", "translate it into French"]
    [change] = session.goal_changes
    assert (change.action, change.index, change.after, change.by, change.by_id) == (
        "add",
        2,
        "translate it into French",
        "user U1",
        OWNER,
    )
    assert change.after_step == 1 and not change.told
    assert session.tasks[-1] == "translate it into French"  # a task of its own
    assert "translate it into French" in notices(chat, sid)[-1]  # said in the thread
    shown = [v for v in chat.of(sid, "tasks") if isinstance(v, TaskListView)][-1]
    assert "translate it into French" in shown.tasks

    # the step that waited was asked before the change: approving it, the next cycle is told
    assert (await chat.press(core.service, sid, 1, "approve", OWNER)).ok
    await core.runner.idle(10)
    told = prompt(llm)
    assert 'added goal 2: \\"translate it into French\\"' in told
    assert "2. translate it into French" in json.loads(told)[0]["content"]  # the system prompt's GOALS
    session = await core.store.get(sid)
    assert session is not None and session.goal_changes[0].told
    assert session.steps[1].steered is not None and "added goal 2" in session.steps[1].steered

    edited = await say(core, f"goals {sid} edit 1 write a sonnet")
    removed = await say(core, f"goals {sid} remove 2")
    assert edited.ok and removed.ok, (edited.message, removed.message)
    assert (await chat.press(core.service, sid, 2, "approve", OWNER)).ok
    await core.runner.idle(10)
    told = prompt(llm)
    assert 'changed goal 1 from \\"write a poem\\" to \\"write a sonnet\\"' in told
    assert 'removed goal 2, which was: \\"translate it into French\\"' in told
    assert told.count("added goal 2") == 1  # told once; kept in the history of step 2
    session = await core.store.get(sid)
    assert session is not None and session.goals == ["write a sonnet"]
    assert [c.action for c in session.goal_changes] == ["add", "edit", "remove"]
    assert all(c.told for c in session.goal_changes)
    assert "translate it into French" not in session.tasks

    changes = [r for r in records_of(session, EPOCH) if r.kind == "goal_change"]  # in the audit export
    assert [(r.action, r.actor_id, r.detail) for r in changes] == [
        ("add goal 2", OWNER, "translate it into French"),
        ("edit goal 1", OWNER, "write a sonnet"),
        ("remove goal 2", OWNER, "translate it into French"),
    ]

    shown_goals = await say(core, f"goals {sid}")
    assert "1. write a sonnet" in shown_goals.message and "removed goal 2" in shown_goals.message

    # what a goal change may not do; nothing changes
    version = session.version
    for text, why in [
        (f"goals {sid} remove 1", "only goal"),
        (f"goals {sid} edit 3 x", "has no goal 3"),
        (f"goals {sid} add write a sonnet", "has that goal already"),
        (f"goals {sid} edit 1 " + "x" * (core.settings.max_goal_chars + 1), "characters long"),
    ]:
        refused = await say(core, text)
        assert not refused.ok and why in refused.message, (text, refused.message)
    for i in range(4):
        assert (await say(core, f"goals {sid} add goal number {i}")).ok
    sixth = await say(core, f"goals {sid} add one too many")
    assert not sixth.ok and "5 goals already" in sixth.message
    other_channel = Place(platform="test", channel="C9")
    assert (await say(core, f"goals {sid} remove 1", user="U2", place=other_channel)).message == (
        f"No session {sid}."
    )
    stranger = await say(core, f"goals {sid} remove 1", user="U2")  # in its channel: may see, not change
    assert not stranger.ok and "Only user U1 or an admin" in stranger.message
    session = await core.store.get(sid)
    assert session is not None and len(session.goals) == 5 and session.version == version + 4

    assert (await say(core, f"stop {sid}")).ok
    late = await say(core, f"goals {sid} add more")
    assert not late.ok and "already stopped" in late.message


# ---------------------------------------------------------------------------- retry


async def test_retry_sets_the_waiting_step_aside_and_asks_again(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("delete_file", {"filename": "poem.txt"}, text="delete it all"),
        agent_reply("write_to_file", {"filename": "poem.txt", "text": "roses"}),
        agent_reply("read_file", {"filename": "poem.txt"}),
    )
    sid = await start(core)
    assert (await chat.press(core.service, sid, 1, "retry", OWNER)).ok
    await core.runner.idle(10)

    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    first, second = session.steps
    assert first.status == StepStatus.RETRIED and first.decided_by_id == OWNER
    assert first.decision == "asked again" and second.no == 2 and second.command.name == "write_to_file"
    shown = chat.step_message(sid, 1).current
    assert isinstance(shown, StepView) and shown.options == [] and shown.decision == "asked again"
    # asked afresh: the same history, without the proposal that was set aside
    again = prompt(llm)
    assert "delete it all" not in again and "delete_file" in prompt(llm, 0)
    assert json.loads(again)[:-2] == json.loads(prompt(llm, 0))[:-2]

    # the step after it is not the one waiting any more: its old button changes nothing
    late = await chat.press(core.service, sid, 1, "retry", OWNER)
    assert not late.ok and "already decided" in late.message
    typed = await say(core, f"retry {sid}")  # typed: about the step waiting now
    assert typed.ok
    session = await core.store.get(sid)
    assert session is not None and [s.status for s in session.steps] == [StepStatus.RETRIED] * 2 + [
        StepStatus.PENDING
    ]
    stranger = await say(core, f"retry {sid}", user="U2")
    assert not stranger.ok and "Only user U1" in stranger.message


async def test_retry_asks_again_after_a_reply_that_could_not_be_read(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", Raw("not json at all"), Raw("still not json"))
    sid = await start(core)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED and session.pending_step is None
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    assert (await say(core, f"retry {sid}")).ok
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    assert session.pending_step is not None and session.pending_step.command.name == "list_files"


async def test_retry_refuses_a_run_on_its_own(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await start(core, "goal --continuous 1 look around")
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED and session.pause_kind == "limit"
    refused = await say(core, f"retry {sid}")
    assert not refused.ok and f"resume {sid}" in refused.message


# ---------------------------------------------------------------------------- fork


async def _three_steps(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> str:
    llm.script(
        "execution_reply",
        *[agent_reply("append_to_file", {"filename": "log.txt", "text": f"step {i}\n"}) for i in (1, 2, 3)],
    )
    sid = await start(core, 'goal --name "Poet" --role "a careful poet" write a poem; save it')
    for no in (1, 2, 3):
        assert (await chat.press(core.service, sid, no, "approve", OWNER)).ok
        await core.runner.idle(10)
    return sid


async def test_fork_at_an_earlier_step_copies_that_state_and_plans_again(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    sid = await _three_steps(core, chat, llm)
    llm.script("task_list", tasks_reply("check the poem"))
    llm.script("execution_reply", agent_reply("read_file", {"filename": "log.txt"}, text="in the fork"))
    forked = await say(core, f"fork {sid} 2")
    assert forked.ok and f"forked from {sid} at step 2" in forked.message and "1 file" in forked.message
    new = await core.store.get(forked.session_id or "")
    assert new is not None and new.id != sid
    assert (new.owner, new.forked_from, new.forked_at) == (OWNER, sid, 2)
    assert (new.goals, new.ai_name, new.ai_role) == (["write a poem", "save it"], "Poet", "a careful poet")
    assert [s.no for s in new.steps] == [1, 2, 3] and new.steps[2].thoughts.text == "in the fork"
    assert [s.result for s in new.steps[:2]] == [s.result for s in (await core.store.get(sid)).steps[:2]]  # type: ignore[union-attr]
    assert all(s.message is None or s.no == 3 for s in new.steps)  # its own messages only
    assert new.state == SessionState.AWAITING_APPROVAL and new.usage.cost_usd > 0 and new.cycles == 1
    # planned again from what was done up to step 2; the agent sees steps 1-2 and not step 3
    plan = json.dumps(llm.requests_of("task_list")[-1]["messages"])
    assert "These steps have been taken already" in plan and "step 2: append_to_file" in plan
    seen = prompt(llm)
    assert "step 2" in seen and "step 3" not in seen
    # the workspace as it is now (files are not versioned), in a thread of its own
    workspace = core.settings.data_dir / "workspaces"
    assert (workspace / new.id / "log.txt").read_text() == (workspace / sid / "log.txt").read_text()
    [header] = [h for h in chat.headers if h.session_id == new.id]
    assert isinstance(header, SessionHeaderView) and header.title == f"Forked from session {sid} at step 2"
    assert new.place.thread is not None and new.place.thread != (await core.store.get(sid)).place.thread  # type: ignore[union-attr]
    assert f"forked this session at step 2 into session {new.id}" in notices(chat, sid)[-1]
    source = await core.store.get(sid)
    assert source is not None and len(source.steps) == 3 and source.forked_from is None  # untouched
    audit = records_of(new, EPOCH)  # the copied steps are the source's record, not the fork's
    assert audit[0].action == f"forked from {sid} at step 2"
    assert {r.step for r in audit if r.kind in ("decision", "command")} <= {3}


async def test_fork_at_the_last_step_goes_on_from_there(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    sid = await _three_steps(core, chat, llm)
    assert (await say(core, f"stop {sid}")).ok  # an ended session (archived) forks too
    before = len(llm.requests_of("task_list"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "done in the fork"}))
    forked = await say(core, f"fork {sid} --continuous 2")
    assert forked.ok and "at step 3 (continuous)" in forked.message
    new = await core.store.get(forked.session_id or "")
    assert new is not None and new.forked_at == 3 and new.continuous
    source = await core.service.session_of(sid) or await core.archive.get(sid)
    assert source is not None
    assert new.state == SessionState.FINISHED and new.reason == "done in the fork"
    assert new.done_tasks[: len(source.done_tasks)] == source.done_tasks
    # no planning from scratch: the task list came along (only the owed update of step 3 ran)
    assert len(llm.requests_of("task_list")) - before <= 2
    assert not any("These steps have been taken" in json.dumps(r) for r in llm.requests_of("task_list"))


async def test_what_fork_refuses(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await start(core)
    cases: list[tuple[str, dict[str, Any], str]] = [
        (f"fork {sid} 1", {}, "Step 1 of session"),  # it waits: it has not run
        (f"fork {sid} 7", {}, "has 1 steps"),
        ("fork zzzzzz", {}, "No session zzzzzz."),
        (f"fork {sid}", {"user": "U2", "place": Place(platform="test", channel="C9")}, f"No session {sid}."),
    ]
    for text, who, why in cases:
        refused = await say(core, text, **who)
        assert not refused.ok and why in refused.message, (text, refused.message)
    at_zero = await say(core, f"fork {sid} 0")  # the goals only
    assert at_zero.ok
    new = await core.store.get(at_zero.session_id or "")
    assert new is not None and new.steps[:-1] == [] and new.forked_at == 0
    # a teammate in its channel may fork it (they see its thread), into a session of their own,
    # without its workspace's files (`files ID` shows those to its owner and admins only)
    (core.settings.data_dir / "workspaces" / sid).mkdir(parents=True, exist_ok=True)
    (core.settings.data_dir / "workspaces" / sid / "private.txt").write_text("mine")
    theirs = await say(core, f"fork {sid} 0", user="U2")
    assert theirs.ok and "stay with its owner" in theirs.message, theirs.message
    new = await core.store.get(theirs.session_id or "")
    assert new is not None and new.owner == "U2"
    assert not (core.settings.data_dir / "workspaces" / new.id / "private.txt").exists()
