"""Slack end to end over real HTTP: the Bolt app served on 127.0.0.1 in HTTP mode, requests signed
as Slack signs them, the Web API a local fake that checks every payload against Slack's limits,
and the scripted LLM behind the agent. Clicks are built from the buttons actually posted."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from adapters.slack import ids
from bot.models import SessionState, StepStatus
from bot.presenter.ids import button_id
from bot.settings import Settings
from tests.fakes.llm_server import ScriptedLLM, agent_reply, tasks_reply
from tests.fakes.slack_api import SlackBot, running_bot, start_goal

OWNER = "U1"
STRANGER = "U2"
ADMIN = "UADMIN"


@pytest.fixture
async def bot(settings: Settings, llm: ScriptedLLM) -> AsyncIterator[SlackBot]:
    async with running_bot(settings) as slack:
        yield slack


async def test_goal_to_finish_through_approve_clicks(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script(
        "task_list", tasks_reply("write the poem", "check it"), tasks_reply("write the poem", "check it")
    )
    llm.script(
        "execution_reply",
        agent_reply(
            "write_to_file", {"filename": "poem.txt", "text": "roses <3 & violets"}, text="I will write"
        ),
        agent_reply("finish", {"reason": "poem written"}),
    )
    sid = await start_goal(bot)
    api = bot.api

    # the root message in the channel: goals, owner, id, mode
    root = bot.root(sid)
    assert root.channel == "C1" and root.thread_ts is None
    assert "write a poem to poem.txt" in root.all_text() and f"<@{OWNER}>" in root.all_text()
    assert "step by step" in root.all_text()
    session = await bot.c.store.get(sid)
    assert session is not None and session.place.thread == root.ts and session.place.team == "T0TEST"

    # in its thread: the task list, then step 1 with its sections and four buttons
    thread = bot.thread(sid)
    assert thread[0].text.startswith("Task list") and "write the poem" in thread[0].all_text()
    step1 = bot.step(sid, 1)
    text = step1.all_text()
    for label in ("*Thoughts*", "*Reasoning*", "*Plan*", "*Criticism*", "*Command* `write_to_file`"):
        assert label in text
    assert "roses &lt;3 &amp; violets" in text  # escaped as mrkdwn wants
    assert [b["action_id"] for _, b in step1.buttons()] == [
        ids.APPROVE,
        ids.APPROVE_N,
        ids.FEEDBACK,
        ids.RETRY,
        ids.STOP,
        ids.ALLOW_TOOL,
    ]
    assert step1.button(ids.APPROVE)[1]["value"] == button_id("approve", sid, 1)  # ids only
    assert step1.button(ids.ALLOW_TOOL)[1]["text"]["text"] == "Always allow write_to_file here"
    assert step1.button(ids.APPROVE_N)[1]["text"]["text"] == "Approve next 5"

    sent = await bot.send.click(step1, ids.APPROVE, OWNER)
    assert sent.status == 200
    await bot.settle()
    assert (bot.settings.data_dir / "workspaces" / sid / "poem.txt").read_text() == "roses <3 & violets"
    # the step message was edited in place: no buttons, who decided and when
    step1 = bot.step(sid, 1)
    assert step1.buttons() == [] and step1.edits >= 2
    assert f"<@{OWNER}> approved" in step1.all_text() and "<!date^" in step1.all_text()
    # writing a file takes less than RUNNING_NOTICE_S: no "running" edit, decided then done
    assert not [v for v in step1.versions if "Running `write_to_file`" in json.dumps(v)]
    result = bot.of_kind(sid, "Result of step 1")
    assert len(result) == 1 and "File poem.txt written" in result[0].all_text()

    await bot.send.click(bot.step(sid, 2), ids.APPROVE, OWNER)
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    summary = bot.of_kind(sid, f"Session {sid} finished")
    assert len(summary) == 1 and summary[0].broadcast
    assert "poem written" in summary[0].all_text() and "*Cycles*\n2" in summary[0].all_text()
    assert f"${session.usage.cost_usd:.4f}" in summary[0].all_text()
    # the task list is one message, edited with chat.update, never reposted
    task_lists = bot.of_kind(sid, "Task list")
    assert len(task_lists) == 1 and task_lists[0].edits >= 1
    assert all(c.method != "chat.postMessage" or c.payload.get("channel") == "C1" for c in api.calls)
    # every Web API call went over a few kept-alive connections, not one connection each
    assert len(api.calls) >= 10 and len(api.peers) <= 3, (len(api.calls), api.peers)
    assert not llm.unscripted


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_feedback_through_the_modal_and_a_thread_reply(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("delete_file", {"filename": "x"}),
        agent_reply("delete_file", {"filename": "y"}),
        agent_reply("list_files", {"directory": "."}),
    )
    sid = await start_goal(bot)
    api = bot.api

    # Feedback opens a modal on the click's trigger; its metadata carries only ids
    payload = bot.send.click_payload(bot.step(sid, 1), ids.FEEDBACK, OWNER)
    assert (await bot.send.interactive(payload)).status == 200
    await bot.settle()
    opened = api.of("views.open")
    assert len(opened) == 1 and opened[0].payload["trigger_id"] == payload["trigger_id"]
    modal = api.opened_views[0]
    assert modal["callback_id"] == ids.FEEDBACK_VIEW
    assert modal["private_metadata"] == button_id("feedback", sid, 1)

    # an empty submission is refused in the modal, nothing changes
    empty = await bot.send.submit(modal, {ids.FEEDBACK_BLOCK: {ids.FEEDBACK_INPUT: "  "}}, OWNER)
    assert empty.status == 200 and json.loads(empty.body)["response_action"] == "errors"
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.PENDING

    sent = await bot.send.submit(
        modal, {ids.FEEDBACK_BLOCK: {ids.FEEDBACK_INPUT: "don't delete <anything>"}}, OWNER
    )
    assert sent.status == 200 and sent.body == ""
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.SKIPPED
    assert session.steps[0].feedback == "don't delete <anything>"
    assert f"<@{OWNER}> gave feedback" in bot.step(sid, 1).all_text()
    prompt = json.dumps(llm.requests_of("execution_reply")[-1]["messages"])
    assert "Human feedback: don't delete <anything>" in prompt

    # in the thread: the app's own posts, other bots, edits and strangers are not feedback
    step2 = bot.step(sid, 2)
    calls_before = len(api.calls)
    await bot.send.reply(step2, "a bot says hi", user=STRANGER, bot_id="B999", subtype="bot_message")
    await bot.send.reply(step2, "edited", user=OWNER, subtype="message_changed")
    await bot.send.reply(step2, "i am the app", user="UBOT")
    await bot.send.reply(step2, "what is this?", user=STRANGER)
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[1].status == StepStatus.PENDING
    assert len(api.calls) == calls_before  # nothing posted, nothing edited

    # the owner's reply in the thread is feedback on the waiting step
    await bot.send.reply(step2, "keep y &amp; z", user=OWNER)
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[1].status == StepStatus.SKIPPED
    assert session.steps[1].feedback == "keep y & z"
    assert f"<@{OWNER}> gave feedback" in bot.step(sid, 2).all_text()
    assert bot.step(sid, 3).buttons()


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_a_long_result_is_shortened_and_attached(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("read_file", {"filename": "big.txt"}))
    sid = await start_goal(bot)
    workspace = bot.settings.data_dir / "workspaces" / sid
    workspace.mkdir(parents=True, exist_ok=True)
    content = "".join(f"line {i}: <b>lorem & ipsum</b>\n" for i in range(3000))  # ~100 KB
    (workspace / "big.txt").write_text(content)
    await bot.send.click(bot.step(sid, 1), ids.APPROVE, OWNER)
    await bot.settle()

    result = bot.of_kind(sid, "Result of step 1")[0]
    assert "the full result is attached below" in result.all_text()
    assert len(json.dumps(result.blocks)) < 12_000
    uploads = list(bot.api.uploads.values())
    assert len(uploads) == 1 and uploads[0].filename == f"result-{sid}-step1.txt"
    assert uploads[0].content is not None and content in uploads[0].content.decode()
    completed = uploads[0].completed
    assert completed is not None and completed["channel_id"] == "C1"
    assert completed["thread_ts"] == bot.root(sid).ts


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_a_result_that_cannot_be_attached_says_so(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("read_file", {"filename": "big.txt"}))
    sid = await start_goal(bot)
    workspace = bot.settings.data_dir / "workspaces" / sid
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "big.txt").write_text("x" * 20_000)
    bot.api.fail("files.completeUploadExternal", "missing_scope")
    await bot.send.click(bot.step(sid, 1), ids.APPROVE, OWNER)
    await bot.settle()
    result = bot.of_kind(sid, "Result of step 1")[0]
    assert result.edits == 1 and "could not be attached" in result.all_text()
    assert "missing_scope" in result.all_text() and "attached below" not in result.all_text()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.DONE  # the session goes on


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_a_mention_is_a_command_not_feedback(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await start_goal(bot)
    step1 = bot.step(sid, 1)
    # Slack sends both a message and an app_mention event for "@AutoGPT status ..." in the thread
    text = f"<@UBOT> status {sid}"
    await bot.send.reply(step1, text, user=OWNER)
    event = {"type": "app_mention", "channel": "C1", "user": OWNER, "text": text, "ts": bot.api._ts()}
    await bot.send.event(dict(event, thread_ts=step1.thread_ts))
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.PENDING  # not feedback
    told = bot.api.ephemerals_to(OWNER)[-1]
    assert f"Session {sid}: awaiting_approval" in told
    assert bot.api.ephemerals[-1]["thread_ts"] == step1.thread_ts


@pytest.mark.parametrize("store_kind", ["redis"])
async def test_continuous_run_posts_each_cycle_with_pause_and_stop(bot: SlackBot, llm: ScriptedLLM) -> None:
    from tests.fakes.llm_server import Delay

    llm.script(
        "execution_reply",
        *[
            Delay(0.3, then=agent_reply("append_to_file", {"filename": "a", "text": f"{i}"}))
            for i in range(12)
        ],
    )
    sent = await bot.send.command("goal --continuous 10 count slowly", user=OWNER)
    assert sent.status == 200
    sid = ""
    for _ in range(50):  # not settle(): that would wait for the whole run
        started = [m for m in bot.api.ephemerals_to(OWNER) if "Started session" in m]
        if started:
            sid = started[-1].split("Started session ", 1)[1][:6]
            break
        await asyncio.sleep(0.1)
    assert sid
    for _ in range(50):  # the run goes on in the background; the first step shows up
        if bot.of_kind(sid, "Step 1:"):
            break
        await asyncio.sleep(0.1)
    step1 = bot.step(sid, 1)
    actions = [b["action_id"] for _, b in step1.buttons()]
    assert actions == [ids.PAUSE, ids.STOP]
    sent = await bot.send.click(step1, ids.PAUSE, OWNER)
    assert sent.status == 200
    await bot.settle()
    await bot.c.runner.idle(10)
    session = await bot.c.store.get(sid)
    assert session is not None, bot.api.ephemerals_to(OWNER)
    assert session.state == SessionState.AWAITING_APPROVAL, (
        session.reason,
        len(session.steps),
        bot.api.ephemerals_to(OWNER),
    )
    assert not session.continuous
    waiting = bot.step(sid, session.steps[-1].no)
    assert next(b["action_id"] for _, b in waiting.buttons()) == ids.APPROVE
