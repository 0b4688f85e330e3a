"""Live progress in a channel thread: a status line on the session's task list message, shown
within a second of a phase starting when the phase lasts, cleared when it ends, never for fast
phases, and never more than about one edit a second of that message. Against the fake Slack,
with the real slack-bolt and slack_sdk, and the scripted LLM made slow where a phase must last."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from adapters.slack import ids
from adapters.slack.progress import MIN_GAP_S, Pacer
from bot.adapter import Inflight
from bot.settings import Settings
from tests.conftest import make_settings
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply, tasks_reply
from tests.fakes.slack_api import ApiCall, Posted, SlackBot, running_bot, start_goal

OWNER = "U1"
MARK = ":hourglass_flowing_sand:"
SLOW = 1.5


@pytest.fixture
def store_kind() -> str:
    return "sqlite"  # progress is the adapter's: one store is enough


@pytest.fixture
async def bot(settings: Settings, llm: ScriptedLLM) -> AsyncIterator[SlackBot]:
    async with running_bot(settings) as slack:
        yield slack


def task_list(bot: SlackBot, sid: str) -> Posted:
    found = bot.of_kind(sid, "Task list")
    assert len(found) == 1, [m.text for m in bot.thread(sid)]
    return found[0]


def edits(bot: SlackBot, message: Posted) -> list[ApiCall]:
    """The accepted chat.update calls of one message, in order."""
    return [
        c for c in bot.api.of("chat.update") if c.payload.get("ts") == message.ts and c.response.get("ok")
    ]


def status_of(call: ApiCall) -> str | None:
    """The status line a chat.update put on the task list (None: none)."""
    for block in call.payload.get("blocks") or []:
        for el in block.get("elements") or []:
            if isinstance(el, dict) and str(el.get("text", "")).startswith(MARK):
                return str(el["text"])
    return None


def assert_paced(calls: list[ApiCall]) -> None:
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(g >= MIN_GAP_S - 0.1 for g in gaps), gaps  # about one edit a second at most


async def test_thinking_shows_on_the_task_list_within_a_second_and_is_cleared(
    bot: SlackBot, llm: ScriptedLLM
) -> None:
    llm.script("task_list", tasks_reply("write the poem", "check it"))
    llm.script("execution_reply", Delay(SLOW, then=agent_reply("list_files", {"directory": "."})))
    sid = await start_goal(bot)  # settles: planning, then thinking (slow), then step 1 waits
    tasks = task_list(bot, sid)
    asked = next(r for r in llm.requests if r.kind == "execution_reply").at
    calls = edits(bot, tasks)
    shown = [c for c in calls if status_of(c) is not None]
    assert shown, [c.payload for c in calls]
    assert "Thinking..." in str(status_of(shown[0])) and "since <!date^" in str(status_of(shown[0]))
    assert shown[0].at - asked < 1.0, shown[0].at - asked
    # the task list is shown as a plan, its status line under it
    blocks = shown[0].payload["blocks"]
    assert blocks[0]["type"] == "plan" and blocks[-1]["type"] == "context"
    assert [t["status"] for t in blocks[0]["tasks"]] == ["in_progress", "pending"]
    # cleared once the step is posted: the last version has no status line, and soon after
    step = bot.step(sid, 1)
    posted = next(c for c in bot.api.of("chat.postMessage") if c.response.get("ts") == step.ts).at
    cleared = [c for c in calls if c.at > shown[0].at and status_of(c) is None]
    assert cleared and cleared[0].at - posted < 1.3, [c.at - posted for c in cleared]
    assert MARK not in json.dumps(task_list(bot, sid).blocks)
    assert_paced(calls)
    session = await bot.c.store.get(sid)
    assert session is not None and "Thinking" not in session.model_dump_json()  # never stored


async def test_fast_phases_show_nothing(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "x"}),
        agent_reply("finish", {"reason": "done"}),
    )
    sid = await start_goal(bot)
    await bot.send.click(bot.step(sid, 1), ids.APPROVE, OWNER)
    await bot.settle()
    await bot.send.click(bot.step(sid, 2), ids.APPROVE, OWNER)
    await bot.settle()
    assert bot.of_kind(sid, f"Session {sid} finished")
    for call in bot.api.of("chat.update"):
        assert status_of(call) is None, call.payload


async def test_a_slow_llm_edits_the_task_list_at_most_once_a_second(bot: SlackBot, llm: ScriptedLLM) -> None:
    """Thinking and the task list's update run side by side after a result, both slow: the words
    change several times, the message is edited about once a second at most, latest wins."""
    llm.delay = 0.6
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "a.txt", "text": "x"}),
        agent_reply("list_files", {"directory": "."}),
    )
    sid = await start_goal(bot)
    await bot.send.click(bot.step(sid, 1), ids.APPROVE, OWNER)
    await bot.settle()
    calls = edits(bot, task_list(bot, sid))
    assert len(calls) >= 2
    assert_paced(calls)
    assert status_of(calls[-1]) is None  # nothing left up
    assert any("Thinking..." in str(status_of(c)) for c in calls)


@pytest.fixture
def shell_settings(tmp_path: Path, llm: ScriptedLLM) -> Settings:
    return make_settings(tmp_path, llm, execute_local_commands=True, sandbox="bwrap")


async def test_a_long_command_shows_running_and_is_cleared(
    shell_settings: Settings, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("execute_shell", {"command_line": f"sleep {SLOW}; echo slept"}),
        agent_reply("finish", {"reason": "done"}),
    )
    async with running_bot(shell_settings) as bot:
        sid = await start_goal(bot)
        tasks = task_list(bot, sid)
        clicked = time.monotonic()
        await bot.send.click(bot.step(sid, 1), ids.APPROVE, OWNER)
        await bot.settle()
        calls = edits(bot, tasks)
        running = [c for c in calls if "Running execute_shell..." in str(status_of(c))]
        assert running, [status_of(c) for c in calls]
        assert running[0].at - clicked < 1.0, running[0].at - clicked
        result = bot.of_kind(sid, "Result of step 1")
        assert result and "slept" in result[0].all_text()
        posted = next(c for c in bot.api.of("chat.postMessage") if c.response.get("ts") == result[0].ts).at
        after = [c for c in calls if c.at > running[0].at and "Running" not in str(status_of(c))]
        assert after and after[0].at - posted < 1.3
        assert status_of(calls[-1]) is None
        assert_paced(calls)


async def test_the_pacer_coalesces_and_skips_what_is_over_fast() -> None:
    shown: list[tuple[float, str | None]] = []

    async def show(text: str | None) -> None:
        shown.append((time.monotonic(), text))

    inflight = Inflight()
    pacer = Pacer(inflight)

    async def idle() -> None:
        await asyncio.sleep(0)  # the pacer's task starts (and counts itself in) at the next turn
        await inflight.wait()

    start = time.monotonic()
    pacer.want("s", "a", show)  # over in 0.1 s: never shown
    await asyncio.sleep(0.1)
    pacer.want("s", None, show)
    await idle()
    assert shown == []
    for word in ("b", "c", "d", "e"):  # the words change fast: the latest is shown, once
        pacer.want("s", word, show)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.6)
    assert [t for _, t in shown] == ["e"] and shown[0][0] - start < 1.0
    pacer.want("s", None, show)
    pacer.want("s", "f", show)  # back before the clearing was due: no clear-and-show
    await asyncio.sleep(1.2)  # shown once the second since "e" is over
    pacer.want("s", None, show)
    await idle()
    texts = [t for _, t in shown]
    assert texts == ["e", "f", None], texts
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(shown)]
    assert all(g >= MIN_GAP_S - 0.05 for g in gaps), gaps
