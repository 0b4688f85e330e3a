"""Discord end to end: the real discord.py client against a local fake Discord (gateway and REST),
the core on each real store, and the scripted LLM behind the agent. Users act through the fake:
mentions, clicks on the buttons the bot actually sent, the modal it actually opened, and the
`/autogpt` command it actually registered. Every test ends with no violated Discord limit and no
interaction left unanswered."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route
from pydantic import SecretStr

from adapters.discord.adapter import DiscordStartError, serve
from bot.core import Core
from bot.models import SessionState, StepStatus
from bot.ops import health
from bot.settings import Settings
from tests.fakes.discord_api import (
    ADMIN,
    CHANNEL_ID,
    EPHEMERAL,
    GUILD_ID,
    INTENT_MESSAGE_CONTENT,
    OWNER,
    STRANGER,
    TOKEN,
    DiscordBot,
    FakeDiscord,
    Interaction,
    Message,
    discord_settings,
)
from tests.fakes.llm_server import ScriptedLLM, agent_reply, tasks_reply

DEFERRED_UPDATE = 6
MODAL = 9
REPLY = 4
DEFERRED_REPLY = 5


@pytest.fixture(autouse=True)
def restore_endpoints() -> object:
    """The adapter points discord.py's class attributes at the fake; put them back after."""
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@contextlib.asynccontextmanager
async def running(
    settings: Settings, api: FakeDiscord, discord: dict[str, Any] | None = None, **overrides: object
) -> AsyncIterator[DiscordBot]:
    """The bot on `api`; `overrides` change the core's settings, `discord` Discord's."""
    bot = DiscordBot(settings.model_copy(update=overrides), api, discord_settings(api, **(discord or {})))
    await bot.start()
    try:
        yield bot
    finally:
        await bot.stop()
    assert api.problems() == []


@pytest.fixture
async def api() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as fake:
        yield fake


@pytest.fixture
async def bot(settings: Settings, api: FakeDiscord, llm: ScriptedLLM) -> AsyncIterator[DiscordBot]:
    async with running(settings, api) as started:
        yield started


async def start_goal(bot: DiscordBot, text: str = "goal write a poem to poem.txt", user: int = OWNER) -> str:
    said = await bot.api.say(user, text)
    await bot.settle()
    answers = replies_to(bot.api, said)
    assert len(answers) == 1, [m.content for m in bot.api.in_channel(CHANNEL_ID)]
    match = re.search(r"Session `(\w+)`", answers[0].content)
    assert match, answers[0].content
    return match.group(1)


def replies_to(api: FakeDiscord, said: Message) -> list[Message]:
    return [
        m
        for m in api.messages.values()
        if (m.current.get("message_reference") or {}).get("message_id") == str(said.id)
    ]


async def press(bot: DiscordBot, message: Message, label: str, user: int = OWNER, **kw: int) -> Interaction:
    clicked = await bot.api.click(message, label, user, **kw)
    await clicked.answered()
    await bot.settle()
    return clicked


async def test_mention_to_finish_through_approve_clicks(bot: DiscordBot, llm: ScriptedLLM) -> None:
    llm.script(
        "task_list", tasks_reply("write the poem", "check it"), tasks_reply("write the poem", "check it")
    )
    llm.script(
        "execution_reply",
        agent_reply(
            "write_to_file", {"filename": "poem.txt", "text": "roses *are* red"}, text="I will write"
        ),
        agent_reply("finish", {"reason": "poem written"}),
    )
    api = bot.api
    said = await api.say(OWNER, "goal write a poem to poem.txt")
    await bot.settle()

    # the bot answered the mention with the session's root message and opened a thread from it
    [root] = replies_to(api, said)
    sid = re.search(r"Session `(\w+)`", root.content).group(1)  # type: ignore[union-attr]
    assert "1. write a poem to poem.txt" in root.all_text() and "Alice" in root.all_text()
    assert root.field("Mode") == "step by step"
    thread = api.thread_of(root)
    assert thread["parent_id"] == str(CHANNEL_ID) and sid in thread["name"]
    session = await bot.c.store.get(sid)
    assert session is not None
    assert session.place.channel == str(CHANNEL_ID) and session.place.thread == thread["id"]
    assert session.place.team == str(GUILD_ID)

    # in the thread: the task list, then step 1 as an embed with four buttons carrying only ids
    messages = bot.thread(sid)
    assert messages[0].title == "Task list" and "write the poem" in messages[0].all_text()
    step1 = bot.step(sid, 1)
    for name in ("Thoughts", "Reasoning", "Plan", "Criticism", "Command"):
        assert step1.field(name)
    assert step1.field("Thoughts") == "I will write"
    assert "`write_to_file`" in step1.field("Command") and '"poem.txt"' in step1.field("Command")
    assert [b["label"] for b in step1.buttons()] == [
        "Approve",
        "Approve next 5",
        "Feedback",
        "Ask again",
        "Stop",
        "Always allow write_to_file here",
    ]
    assert [b["custom_id"] for b in step1.buttons()] == [
        f"autogpt:approve:{sid}:1",
        f"autogpt:approve_n:{sid}:1:5",
        f"autogpt:feedback:{sid}:1",
        f"autogpt:retry:{sid}:1",
        f"autogpt:stop:{sid}:1",
        f"autogpt:allow_tool:{sid}:1",
    ]

    clicked = await press(bot, step1, "Approve")
    assert clicked.response_type == DEFERRED_UPDATE and clicked.callback["after_s"] < 3
    assert clicked.private_texts() == []
    written = bot.settings.data_dir / "workspaces" / sid / "poem.txt"
    assert written.read_text() == "roses *are* red"
    # the step's message was edited: no buttons, who decided, then done (writing a file takes
    # less than RUNNING_NOTICE_S, so no "running" edit between)
    assert step1.buttons() == [] and step1.edits >= 2
    assert "Alice approved" in step1.all_text()
    assert not any("Running `write_to_file`" in step1.all_text(v) for v in range(len(step1.versions)))
    [result] = bot.of_kind(sid, "Result of step 1")
    assert "File poem.txt written" in result.all_text()

    await press(bot, bot.step(sid, 2), "Approve")
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    [summary] = bot.of_kind(sid, f"Session finished ({sid})")
    assert "poem written" in summary.all_text()
    assert summary.field("Cycles") == "2" and summary.field("Spent") == f"${session.usage.cost_usd:.4f}"
    # the task list is one message, edited in place
    [tasks] = bot.of_kind(sid, "Task list")
    assert tasks.edits >= 1
    # the gateway spoke zlib-stream as asked; no privileged intent was needed
    assert api.gateway_queries[0]["compress"] == "zlib-stream"
    assert api.identifies[0]["compress"] is True
    assert not int(api.identifies[0]["intents"]) & INTENT_MESSAGE_CONTENT
    assert api.heartbeats >= 1
    assert not llm.unscripted


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_approve_next_n_and_long_output(settings: Settings, api: FakeDiscord, llm: ScriptedLLM) -> None:
    big = "".join(f"line {i}: {'x' * 60}\n" for i in range(120))  # ~8,000 characters
    llm.script(
        "execution_reply",
        agent_reply(
            "write_to_file",
            {"filename": "big.txt", "text": big},
            text="t" * 3000,
            reasoning="r" * 2000,
            plan="- p\n" * 600,
            criticism="c" * 1500,
        ),
        agent_reply("read_file", {"filename": "big.txt"}),
        agent_reply("append_to_file", {"filename": "log.txt", "text": "x"}),
        agent_reply("finish", {"reason": "done"}),
    )
    async with running(settings, api, approve_next_n=3) as bot:
        sid = await start_goal(bot)
        step1 = bot.step(sid, 1)
        # everything long was shortened in the embed; the full command is attached
        assert step1.field("Thoughts").endswith("…") and len(step1.field("Thoughts")) <= 1024
        assert list(step1.files) == ["step-1-write_to_file.json"]
        assert json.loads(step1.files["step-1-write_to_file.json"])["text"] == big
        await press(bot, step1, "Approve next 3")
        session = await bot.c.store.get(sid)
        assert session is not None
        assert [s.status for s in session.steps[:3]] == [StepStatus.DONE] * 3
        assert [s.decided_by for s in session.steps[1:3]] == ["auto", "auto"]
        assert "Approved in advance" in bot.step(sid, 2).all_text()
        # the long result: shortened in the message, attached in full
        [read] = bot.of_kind(sid, "Result of step 2")
        assert read.files == {f"result-{sid}-step2.txt": big.encode()}
        assert len(read.embed["description"]) < 2000 and "attached" in read.all_text()
        # step 4 waits again
        step4 = bot.step(sid, 4)
        assert step4.buttons()[0]["label"] == "Approve"
        await press(bot, step4, "Approve")
        session = await bot.c.store.get(sid)
        assert session is not None and session.state == SessionState.FINISHED


async def test_feedback_through_the_modal(bot: DiscordBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("delete_file", {"filename": "x"}), agent_reply("finish"))
    sid = await start_goal(bot)
    opened = await press(bot, bot.step(sid, 1), "Feedback")
    assert opened.response_type == MODAL
    modal = bot.api.modal_of(opened)
    assert modal["custom_id"] == f"autogpt:feedback:{sid}:1" and len(modal["title"]) <= 45
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.PENDING  # a modal changes nothing

    submitted = await bot.api.submit_modal(opened, OWNER, "don't delete anything")
    await submitted.answered()
    await bot.settle()
    assert submitted.response_type == DEFERRED_UPDATE and submitted.private_texts() == []
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.SKIPPED
    assert session.steps[0].feedback == "don't delete anything"
    prompt = json.dumps(llm.requests_of("execution_reply")[-1]["messages"])
    assert "Human feedback: don't delete anything" in prompt
    step1 = bot.step(sid, 1)
    assert step1.buttons() == [] and "Alice gave feedback" in step1.all_text()


async def test_stranger_refused_admin_allowed_double_click_once(bot: DiscordBot, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("append_to_file", {"filename": "log.txt", "text": "once\n"}),
        agent_reply("finish"),
    )
    sid = await start_goal(bot)
    step1 = bot.step(sid, 1)
    for label in ("Approve", "Feedback", "Stop"):
        refused = await press(bot, step1, label, STRANGER)
        assert refused.response_type == REPLY and refused.ephemeral
        assert "Only Alice or an admin" in refused.private_texts()[0]
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    assert session.steps[0].status == StepStatus.PENDING and step1.edits == 0

    # a double click (both on the message as first shown): one decision, the second told privately
    first = await bot.api.click(step1, "Approve", OWNER, version=0)
    second = await bot.api.click(step1, "Approve", OWNER, version=0)
    await first.answered()
    await second.answered()
    await bot.settle()
    notes = first.private_texts() + second.private_texts()
    assert len(notes) == 1 and "already decided" in notes[0]
    assert all(m.flags & EPHEMERAL for m in first.followups + second.followups)
    assert (bot.settings.data_dir / "workspaces" / sid / "log.txt").read_text() == "once\n"
    assert "Alice approved" in step1.all_text()
    # an old step's button later on: a private note, nothing changes
    late = await press(bot, step1, "Approve", OWNER, version=0)
    assert "already decided" in late.private_texts()[0]
    # an admin (DISCORD_ADMIN_USER_IDS) may decide on anyone's session
    await press(bot, bot.step(sid, 2), "Approve", ADMIN)
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    assert "Carol approved" in bot.step(sid, 2).all_text()


async def test_malformed_command_shows_usage_and_commands_answer_in_place(bot: DiscordBot) -> None:
    said = await bot.api.say(OWNER, "frobnicate the widgets")
    await bot.settle()
    [answer] = replies_to(bot.api, said)
    assert "goal" in answer.content and "Commands:" in answer.content
    assert answer.content.startswith("```")  # the usage keeps its alignment
    said = await bot.api.say(OWNER, "list")
    await bot.settle()
    [answer] = replies_to(bot.api, said)
    assert "no sessions" in answer.content
    assert not bot.api.threads()


async def test_old_button_and_open_modal_work_after_a_restart(bot: DiscordBot, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "1"}),
        agent_reply("delete_file", {"filename": "a.txt"}),
        agent_reply("finish", {"reason": "all done"}),
    )
    sid = await start_goal(bot)
    step1 = bot.step(sid, 1)
    await bot.restart()  # a new core and a new client, same store, same Discord
    assert len(bot.api.identifies) == 2
    clicked = await press(bot, step1, "Approve")  # a button posted before the restart
    assert clicked.response_type == DEFERRED_UPDATE and clicked.private_texts() == []
    assert "Alice approved" in step1.all_text() and step1.buttons() == []

    opened = await press(bot, bot.step(sid, 2), "Feedback")
    await bot.restart()  # the form is still open in the user's client
    submitted = await bot.api.submit_modal(opened, OWNER, "keep it")
    await submitted.answered()
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[1].status == StepStatus.SKIPPED
    assert session.steps[1].feedback == "keep it"

    await press(bot, bot.step(sid, 3), "Approve")
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED


async def test_the_autogpt_command(bot: DiscordBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    [command] = bot.api.commands
    assert command["name"] == "autogpt"
    assert [(o["name"], o["type"], o["required"]) for o in command["options"]] == [("command", 3, True)]

    used = await bot.api.slash(OWNER, "autogpt", command="goal find three note apps")
    await used.answered()
    await bot.settle()
    # deferred first (privately), then the answer edited in; the session got its own thread
    assert used.response_type == DEFERRED_REPLY and used.ephemeral
    [answer] = used.private_texts()
    sid = bot.session_id_in([answer])
    root = bot.root(sid)
    assert root.current.get("message_reference") is None and f"<#{bot.thread_id(sid)}>" in answer
    assert bot.step(sid, 1).buttons()

    status = await bot.api.slash(OWNER, "autogpt", command=f"status {sid}")
    await status.answered()
    await bot.settle()
    assert status.ephemeral and "awaiting_approval" in status.private_texts()[0]

    wrong = await bot.api.slash(STRANGER, "autogpt", command="approve")
    await wrong.answered()
    await bot.settle()
    assert wrong.ephemeral and "Commands:" in wrong.private_texts()[0]
    assert len(bot.api.threads()) == 1

    # used inside a session's thread, `goal` starts a new session from the parent channel
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    inside = await bot.api.slash(STRANGER, "autogpt", channel=bot.thread_id(sid), command="goal another one")
    await inside.answered()
    await bot.settle()
    other = bot.session_id_in(inside.private_texts())
    assert other != sid and bot.root(other).channel_id == CHANNEL_ID and len(bot.api.threads()) == 2


async def test_owner_reply_in_the_thread_is_feedback_with_message_content(
    settings: Settings, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("delete_file", {"filename": "x"}), agent_reply("finish"))
    async with FakeDiscord(allow_privileged=INTENT_MESSAGE_CONTENT) as api:
        async with running(settings, api, discord={"message_content": True}) as bot:
            assert int(api.identifies[0]["intents"]) & INTENT_MESSAGE_CONTENT
            sid = await start_goal(bot)
            thread = bot.thread_id(sid)
            await api.say(STRANGER, "maybe delete y instead", channel=thread, mention=False)
            await bot.settle()
            session = await bot.c.store.get(sid)
            assert session is not None and session.steps[0].status == StepStatus.PENDING
            said = await api.say(OWNER, "keep the file, list them instead", channel=thread, mention=False)
            await bot.settle()
            session = await bot.c.store.get(sid)
            assert session is not None and session.steps[0].status == StepStatus.SKIPPED
            assert session.steps[0].feedback == "keep the file, list them instead"
            [answer] = replies_to(api, said)
            assert "Feedback sent" in answer.content


async def test_without_message_content_thread_replies_are_not_read(bot: DiscordBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("delete_file", {"filename": "x"}))
    sid = await start_goal(bot)
    await bot.api.say(OWNER, "keep the file", channel=bot.thread_id(sid), mention=False)
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.PENDING


@pytest.mark.parametrize(
    ("status", "code", "words"), [(403, 50013, "Missing Permissions"), (503, 0, "Service Unavailable")]
)
async def test_a_send_refused_for_good_pauses_the_session(
    bot: DiscordBot, llm: ScriptedLLM, status: int, code: int, words: str
) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    # Discord refuses the step's message (the one with buttons) for good. (A 500 would be retried
    # by discord.py for ~25 s first; 503 is given up on at once.)
    bot.api.fail(
        "POST",
        r"/channels/\d+/messages",
        status=status,
        code=code,
        message=words,
        when=lambda b: "autogpt:" in json.dumps(b.get("components") or []),  # its buttons' ids
    )
    said = await bot.api.say(OWNER, "goal list my files")
    await bot.settle()
    sid = re.search(r"Session `(\w+)`", replies_to(bot.api, said)[0].content).group(1)  # type: ignore[union-attr]
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED
    assert session.error is not None and words in session.error and str(status) in session.error
    [summary] = bot.of_kind(sid, f"Session paused ({sid})")
    assert words in summary.all_text()
    assert len(bot.api.failed) == 1
    errors = bot.c.metrics.registry.get_sample_value(
        "autogpt_platform_api_errors_total", {"platform": "discord", "method": "messages.create"}
    )
    assert errors == 1


async def test_no_thread_no_session(bot: DiscordBot, llm: ScriptedLLM) -> None:
    bot.api.fail("POST", r"/channels/\d+/messages/\d+/threads", status=403, code=50013)
    said = await bot.api.say(OWNER, "goal list my files")
    await bot.settle()
    [answer] = replies_to(bot.api, said)
    assert "Could not post the session" in answer.content and "Create Public Threads" in answer.content
    [root] = bot.api.deleted  # the root message without a thread was taken back
    assert "Session `" in root.content
    assert await bot.c.store.sessions_of(f"discord:{OWNER}") == []


async def test_rate_limits_are_waited_out(bot: DiscordBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    bot.api.rate_limit("POST", r"/channels/\d+/messages", retry_after=0.05, times=2)
    sid = await start_goal(bot)
    assert len(bot.api.failed) == 2
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    assert bot.step(sid, 1).buttons()


async def test_a_privileged_intent_not_enabled_is_a_clear_start_error(
    settings: Settings, api: FakeDiscord
) -> None:
    bot = DiscordBot(settings, api, discord_settings(api, message_content=True))
    with pytest.raises(DiscordStartError, match="Message Content intent"):
        await bot.start()
    assert api.problems() == []


async def test_a_wrong_token_is_a_clear_start_error(settings: Settings, api: FakeDiscord) -> None:
    bot = DiscordBot(settings, api, discord_settings(api, bot_token=SecretStr("nope")))
    with pytest.raises(DiscordStartError, match="refused DISCORD_BOT_TOKEN"):
        await bot.start()


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_serve_runs_until_stopped(settings: Settings, api: FakeDiscord, llm: ScriptedLLM) -> None:
    configured_settings = discord_settings(api)
    core = await Core.start(settings)
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(serve(core, configured_settings, stop))
        await api.wait_connected()
        said = await api.say(OWNER, "help")
        for _ in range(300):
            if replies_to(api, said):
                break
            await asyncio.sleep(0.01)
        [answer] = replies_to(api, said)
        assert "Commands:" in answer.content
        stop.set()
        await asyncio.wait_for(task, 10)
        assert not api.live()
    finally:
        await core.close()
    assert api.problems() == []


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_health_reports_the_gateway_connection(settings: Settings, api: FakeDiscord) -> None:
    async with running(settings, api) as bot:
        status, body = await health(bot.c)
        assert status == 200 and body["adapters"] == {"discord": "connected"}, body
        api.gateway_open = False  # a gateway outage: the connection drops, reconnecting fails
        await api.drop_connections()
        await asyncio.sleep(0.1)
        status, body = await health(bot.c)
        assert status == 503 and body["adapters"] == {"discord": "disconnected"}, body
        api.gateway_open = True  # discord.py reconnects by itself and resumes its session
        await api.wait_connected(within=10)
        for _ in range(200):
            status, body = await health(bot.c)
            if status == 200:
                break
            await asyncio.sleep(0.02)
        assert status == 200 and body["adapters"] == {"discord": "connected"}, body
        assert api.resumes == 1 and len(api.identifies) == 1


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_autogpt_bot_run_serves_discord(
    tmp_path, settings: Settings, api: FakeDiscord, llm: ScriptedLLM
) -> None:
    """`autogpt-bot run` with only DISCORD_BOT_TOKEN set serves Discord (a real process)."""
    import os
    import signal
    import sys

    from tests.test_console_e2e import REPO, clean_environ

    env = clean_environ()
    env.update(
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=llm.base_url,
        DATA_DIR=str(tmp_path / "run-data"),
        DISCORD_BOT_TOKEN=TOKEN,
        DISCORD_API_URL=api.api_url,
        DISCORD_GATEWAY_URL=api.gateway_url,
        OPS_PORT="0",
        MEMORY_BACKEND="no_memory",
        PYTHONPATH=str(REPO),
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adapters.cli",
        "run",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        while b"autogpt-bot is running" not in line:
            assert line, "the process ended before it was running"
            line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert b"Discord" in line
        said = await api.say(OWNER, "help")
        for _ in range(500):
            if replies_to(api, said):
                break
            await asyncio.sleep(0.02)
        [answer] = replies_to(api, said)
        assert "Commands:" in answer.content
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
    assert proc.returncode == 0
    assert api.problems() == []


@pytest.mark.parametrize("store_kind", ["redis"])
async def test_continuous_run_posts_each_cycle_with_pause_and_stop(bot: DiscordBot, llm: ScriptedLLM) -> None:
    from tests.fakes.llm_server import Delay

    llm.script(
        "execution_reply",
        *[
            Delay(0.3, then=agent_reply("append_to_file", {"filename": "a", "text": f"{i}"}))
            for i in range(12)
        ],
    )
    api = bot.api
    said = await api.say(OWNER, "goal --continuous 10 count slowly")
    sid = ""
    for _ in range(100):  # not settle(): that would wait for the whole run
        replies = replies_to(api, said)
        if replies and (m := re.search(r"Session `(\w+)`", replies[0].content)):
            sid = m.group(1)
            if bot.of_kind(sid, "Step 1 "):
                break
        await asyncio.sleep(0.05)
    assert sid
    step1 = bot.step(sid, 1)
    assert [b["label"] for b in step1.buttons()] == ["Pause", "Stop"]
    clicked = await api.click(step1, "Pause", OWNER)
    await clicked.answered()
    await bot.c.runner.idle(15)
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL, session.reason
    assert not session.continuous
    waiting = bot.step(sid, session.steps[-1].no)
    assert next(b["label"] for b in waiting.buttons()) == "Approve"
