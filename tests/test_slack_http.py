"""Slack over HTTP: signatures, Slack's 3-second rule, ephemeral answers, rate limits and refusals
by the Web API, the App Home tab. Same set-up as test_slack_flow (a fake Web API, real HTTP)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest

from adapters.slack import ids
from bot.models import SessionState, StepStatus
from bot.presenter.ids import button_id
from bot.settings import Settings
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply, tasks_reply
from tests.fakes.slack_api import SlackBot, running_bot, start_goal

OWNER = "U1"

pytestmark = pytest.mark.parametrize("store_kind", ["sqlite"])


@pytest.fixture
async def bot(settings: Settings, llm: ScriptedLLM) -> AsyncIterator[SlackBot]:
    async with running_bot(settings) as slack:
        yield slack


async def test_bad_signatures_and_old_timestamps_get_401_and_change_nothing(bot: SlackBot) -> None:
    calls = len(bot.api.calls)
    forged = await bot.send.command("goal spend all the money", secret="not-the-secret")
    stale = await bot.send.command("goal spend all the money", timestamp=int(time.time()) - 6 * 60)
    future = await bot.send.command("goal spend all the money", timestamp=int(time.time()) + 6 * 60)
    assert forged.status == stale.status == future.status == 401
    # a forged click on a plausible button, and a forged event
    click = {"type": "block_actions", "user": {"id": OWNER}, "actions": [{"action_id": ids.STOP}]}
    assert (await bot.send.interactive(click, secret="nope")).status == 401
    event = bot.send.event_body({"type": "app_home_opened", "user": OWNER, "tab": "home"})
    assert (await bot.send.post(json.dumps(event), "application/json", secret="nope")).status == 401
    await bot.settle()
    assert await bot.c.store.sessions_of(f"slack:{OWNER}") == []
    assert len(bot.api.calls) == calls and bot.api.responses == []
    # the same request, signed properly, is served
    assert (await bot.send.command("help")).status == 200


async def test_help_usage_errors_and_lists_are_ephemeral(bot: SlackBot) -> None:
    for text in ("", "help", "frobnicate now", "goal", "approve zz", "list"):
        sent = await bot.send.command(text, user="U7")
        assert sent.status == 200 and sent.body == ""  # the ack; the answer goes to response_url
    await bot.settle()
    told = bot.api.ephemerals_to("U7")
    assert len(told) == 6
    assert all(r.get("response_type") == "ephemeral" for r in bot.api.responses)
    assert "Commands:" in told[0] and "Commands:" in told[1]
    assert told[2].startswith("Unknown command 'frobnicate'") and "Commands:" in told[2]
    assert "goal" in told[3] and "Commands:" not in told[3].split("\n", 1)[0]
    assert "You have no sessions" in told[5]
    assert bot.api.of("chat.postMessage") == []  # nothing in the channel
    usage = bot.api.responses[2]["blocks"][-1]["text"]["text"]
    assert usage.startswith("```Commands:") and "&lt;goal; goal; ...&gt;" in usage


async def test_every_command_is_acknowledged_within_three_seconds_while_the_llm_is_slow(
    bot: SlackBot, llm: ScriptedLLM
) -> None:
    llm.script("task_list", Delay(4.0, then=tasks_reply("a", "b")))
    sent = await bot.send.command("goal plan slowly")
    assert sent.status == 200 and sent.seconds < 3.0
    await bot.adapter.deps.inflight.wait()  # type: ignore[union-attr]
    sid = next(m for m in bot.api.ephemerals_to(OWNER) if "Started session" in m).split("session ")[1][:6]
    for text in (f"status {sid}", "list", f"approve {sid}", "help", f"stop {sid}"):
        sent = await bot.send.command(text)
        assert sent.status == 200 and sent.seconds < 3.0, (text, sent.seconds)
    await bot.adapter.deps.inflight.wait()  # type: ignore[union-attr]
    told = bot.api.ephemerals_to(OWNER)
    assert f"Session {sid}: planning" in told[1]
    assert "no step waiting" in told[3] and f"Session {sid} stopped." in told[-1]
    assert len(llm.requests_of("task_list")) == 1  # the slow call was still under way throughout


async def test_a_rate_limited_post_is_retried_after_retry_after(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    bot.api.rate_limit("chat.postMessage", times=1, retry_after=1)
    sid = await start_goal(bot, "goal count to three")
    posts = bot.api.of("chat.postMessage")
    assert [c.status for c in posts[:2]] == [429, 200]
    assert posts[0].payload == posts[1].payload  # the same root message, sent again
    assert posts[1].at - posts[0].at >= 1.0  # after Retry-After
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    assert bot.step(sid, 1).buttons()


async def test_a_post_refused_for_good_pauses_the_session_and_nothing_is_lost(
    bot: SlackBot, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "kept.txt", "text": "kept"}),
        agent_reply("finish"),
    )
    bot.api.fail("chat.postMessage", "is_archived", when=lambda p: ids.APPROVE in json.dumps(p.get("blocks")))
    sid = await start_goal(bot, "goal count to three")
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED
    assert "is_archived" in (session.error or "") and "refused a message" in (session.reason or "")
    assert session.steps[0].status == StepStatus.PENDING  # the proposal is kept
    paused = bot.of_kind(sid, f"Session {sid} paused")
    assert paused and "is_archived" in paused[0].all_text()
    assert f"/autogpt approve {sid}" in paused[0].all_text()
    # the owner resumes it: the kept step runs
    await bot.send.command(f"approve {sid}")
    await bot.settle()
    assert (bot.settings.data_dir / "workspaces" / sid / "kept.txt").read_text() == "kept"


async def test_a_channel_the_app_is_not_in(bot: SlackBot, llm: ScriptedLLM) -> None:
    bot.api.not_member.add("C9")
    await bot.send.command("goal in a new channel", channel="C9")
    await bot.settle()
    assert bot.api.joined == ["C9"] and bot.api.roots("C9")
    # a private channel it cannot join: the user is told how to fix it, no session is left behind
    bot.api.not_member.add("G1")
    bot.api.fail("conversations.join", "method_not_supported_for_channel_type")
    await bot.send.command("goal in a private channel", channel="G1")
    await bot.settle()
    assert "/invite @AutoGPT" in bot.api.ephemerals_to(OWNER)[-1]
    assert len(await bot.c.store.sessions_of(f"slack:{OWNER}")) == 1


async def test_app_home_lists_sessions_with_a_stop_button(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await start_goal(bot, "goal count to three")
    assert (await bot.send.command('schedule "0 9 * * 1-5" summarise the news', user=OWNER)).status == 200
    await bot.settle()
    made = next(m for m in bot.api.ephemerals_to(OWNER) if "Schedule " in m and " made" in m)
    schedule_id = made.split("Schedule ", 1)[1][:6]
    event = {"type": "app_home_opened", "user": OWNER, "channel": "D1", "tab": "home", "event_ts": "1.2"}
    assert (await bot.send.event(event)).status == 200
    await bot.settle()
    published = bot.api.published[-1]
    assert published["user_id"] == OWNER and published["view"]["type"] == "home"
    text = json.dumps(published["view"])
    assert sid in text and "waiting for you" in text and "$0.0" in text and "Your schedules" in text
    assert schedule_id in text and "0 9 * * 1-5" in text and "next run" in text
    # another user sees only their own sessions
    await bot.send.event(dict(event, user="U5"))
    await bot.settle()
    assert sid not in json.dumps(bot.api.published[-1]["view"])

    await bot.send.click_home(published["view"], ids.HOME_STOP, button_id("stop", sid, 0), OWNER)
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.state == SessionState.STOPPED
    republished = bot.api.published[-1]
    assert republished["user_id"] == OWNER and f"Session {sid} stopped." in json.dumps(republished["view"])
    assert ids.HOME_STOP not in json.dumps(republished["view"])
    assert f"<@{OWNER}> stopped" in bot.step(sid, 1).all_text()
