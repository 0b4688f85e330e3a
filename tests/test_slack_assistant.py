"""Assistant threads (Slack's Agents & AI Apps surface) end to end: the real slack-bolt
`AsyncAssistant` behind the app, Slack's events signed as Slack signs them, the fake Web API
checking every call (assistant.threads.* included), and the scripted LLM behind the agent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from adapters.slack import ids
from adapters.slack.listeners.assistant.threads import PROMPTS
from bot.models import Place, SessionState, StepStatus
from bot.settings import Settings
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply, tasks_reply
from tests.fakes.slack_api import TEAM, AssistantThread, Posted, SlackBot, running_bot

OWNER = "U1"
STRANGER = "U2"
SLOW = 1.5


@pytest.fixture
def store_kind() -> str:
    return "sqlite"


@pytest.fixture
async def bot(settings: Settings, llm: ScriptedLLM) -> AsyncIterator[SlackBot]:
    async with running_bot(settings) as slack:
        yield slack


def in_thread(bot: SlackBot, thread: AssistantThread) -> list[Posted]:
    """What the app posted in the assistant thread, in order (not Slack's root)."""
    return [m for m in bot.api.thread(thread.channel, thread.thread_ts) if m.ts != thread.thread_ts]


def step(bot: SlackBot, thread: AssistantThread, no: int) -> Posted:
    found = [m for m in in_thread(bot, thread) if m.text.startswith(f"Step {no}:")]
    assert len(found) == 1, [m.text for m in in_thread(bot, thread)]
    return found[0]


async def started(bot: SlackBot, thread: AssistantThread, text: str) -> str:
    sent = await bot.send.assistant_message(thread, text)
    assert sent.status == 200, sent.body
    await bot.settle()
    session = await bot.c.service.session_in(place_of(thread))
    assert session is not None, [m.all_text() for m in in_thread(bot, thread)]
    return session.id


def place_of(thread: AssistantThread) -> Place:
    return Place(platform="slack", channel=thread.channel, thread=thread.thread_ts, team=TEAM)


async def test_a_new_thread_gets_a_greeting_and_suggested_prompts(bot: SlackBot) -> None:
    thread = await bot.send.assistant_thread_started(OWNER)
    await bot.settle()
    assert thread.prompts == PROMPTS
    assert [p["title"] for p in thread.prompts] == ["Start a goal", "My sessions", "Help"]
    greeting = in_thread(bot, thread)
    assert len(greeting) == 1 and "Tell me a goal" in greeting[0].all_text()
    assert bot.api.violations == []


async def test_a_message_starts_a_session_in_that_thread_with_its_status(
    bot: SlackBot, llm: ScriptedLLM
) -> None:
    llm.script("task_list", tasks_reply("write the poem"))
    llm.script(
        "execution_reply",
        Delay(SLOW, then=agent_reply("write_to_file", {"filename": "poem.txt", "text": "roses"})),
        agent_reply("finish", {"reason": "poem written"}),
    )
    thread = await bot.send.assistant_thread_started(OWNER)
    await bot.settle()
    sid = await started(bot, thread, "write a poem to poem.txt")

    # the session lives in that very thread: header, task list, step 1 with its buttons
    session = await bot.c.store.get(sid)
    assert session is not None
    assert (session.place.channel, session.place.thread) == (thread.channel, thread.thread_ts)
    posted = in_thread(bot, thread)
    assert any(f"`{sid}`" in m.all_text() and "write a poem to poem.txt" in m.all_text() for m in posted)
    assert any(m.text.startswith("Task list") for m in posted)
    assert bot.api.roots("C1") == []  # nothing in a channel
    assert thread.title == "write a poem to poem.txt"

    # the thread's status said it was thinking, within a second, and was cleared after
    asked = next(r for r in llm.requests if r.kind == "execution_reply").at
    statuses = bot.api.statuses(thread.channel, thread.thread_ts)
    thinking = [(at, s) for at, s in statuses if s == "Thinking..."]
    assert thinking and thinking[0][0] - asked < 1.0, (statuses, asked)
    assert statuses[-1][1] == "", statuses
    # and the task list carries no status line there
    for call in bot.api.of("chat.update"):
        assert ":hourglass_flowing_sand:" not in json.dumps(call.payload.get("blocks"))

    # the step's buttons work in the thread: approve, the next step follows there
    sent = await bot.send.click(step(bot, thread, 1), ids.APPROVE, OWNER)
    assert sent.status == 200
    await bot.settle()
    assert (bot.settings.data_dir / "workspaces" / sid / "poem.txt").read_text() == "roses"
    assert f"<@{OWNER}> approved" in step(bot, thread, 1).all_text()
    assert any(m.text.startswith("Result of step 1") for m in in_thread(bot, thread))
    await bot.send.click(step(bot, thread, 2), ids.APPROVE, OWNER)
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    summary = [m for m in in_thread(bot, thread) if m.text.startswith(f"Session {sid} finished")]
    assert len(summary) == 1 and not summary[0].broadcast


async def test_commands_answer_in_the_thread_and_replies_are_feedback(
    bot: SlackBot, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("delete_file", {"filename": "x"}),
        agent_reply("list_files", {"directory": "."}),
    )
    thread = await bot.send.assistant_thread_started(OWNER)
    await bot.send.assistant_message(thread, "help")
    await bot.settle()
    assert "goal" in in_thread(bot, thread)[-1].all_text()  # the help, in the thread
    assert await bot.c.service.session_in(place_of(thread)) is None

    sid = await started(bot, thread, "goal tidy the workspace")
    assert thread.title == "tidy the workspace"
    await bot.send.assistant_message(thread, f"status {sid}")
    await bot.settle()
    assert f"Session {sid}: awaiting_approval" in in_thread(bot, thread)[-1].all_text()

    # a stranger's words are not feedback; the owner's are, on the waiting step
    await bot.send.assistant_message(thread, "don't delete anything", user=STRANGER)
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.PENDING
    await bot.send.assistant_message(thread, "don't delete anything")
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.steps[0].status == StepStatus.SKIPPED
    assert session.steps[0].feedback == "don't delete anything"
    assert step(bot, thread, 2).buttons()
    assert bot.api.violations == []
