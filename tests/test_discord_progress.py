"""Discord: live progress ("typing" in a session's thread while the engine works) and Components V2
layouts (DISCORD_COMPONENTS_V2), end to end with the real discord.py client against the fake
Discord, and each view's layout against Discord's limits for such messages."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import adapter as discord_adapter
from adapters.discord import render
from adapters.discord.limits import V2_COMPONENTS, V2_TEXT
from bot.models import SessionState
from bot.settings import Settings
from tests.fakes.discord_api import OWNER, DiscordBot, FakeDiscord, Message, discord_settings
from tests.fakes.discord_api import check_message as check
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply, tasks_reply
from tests.test_discord_render import long_views

V2 = 1 << 15


@pytest.fixture
def store_kind() -> str:
    return "sqlite"  # the store plays no part here


@pytest.fixture(autouse=True)
def restore_endpoints() -> object:
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    yield
    Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved


@contextlib.asynccontextmanager
async def running(settings: Settings, **discord: Any) -> AsyncIterator[DiscordBot]:
    async with FakeDiscord() as api:
        bot = DiscordBot(settings, api, discord_settings(api, **discord))
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()
        assert api.problems() == []


async def start_goal(bot: DiscordBot, text: str = "goal list my files") -> str:
    said = await bot.api.say(OWNER, text)
    for _ in range(300):
        for m in bot.api.messages.values():
            if (m.current.get("message_reference") or {}).get("message_id") == str(said.id):
                if found := re.search(r"Session `(\w+)`", m.content):
                    return found.group(1)
        await asyncio.sleep(0.02)
    raise AssertionError("no session was started")


async def approve(bot: DiscordBot, message: Message) -> None:
    clicked = await bot.api.click(message, "Approve", OWNER)
    await clicked.answered()
    await bot.settle()


def posted_at(api: FakeDiscord, channel: int, words: str) -> float:
    """When the bot posted the first message to `channel` whose body holds `words`."""
    return next(
        r.at
        for r in api.requests
        if r.method == "POST" and r.path == f"/channels/{channel}/messages" and words in json.dumps(r.body)
    )


# ------------------------------------------------------------------------------ typing


async def test_typing_while_thinking_repeated_and_not_after(
    settings: Settings, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord_adapter, "TYPING_EVERY_S", 0.4)
    llm.script("execution_reply", Delay(1.8, then=agent_reply("list_files", {"directory": "."})))
    async with running(settings) as bot:
        sid = await start_goal(bot)
        await bot.settle()
        thread = bot.thread_id(sid)
        [asked] = [r.at for r in llm.requests if r.kind == "execution_reply"]
        step_posted = posted_at(bot.api, thread, f"autogpt:approve:{sid}:1")
        typing = bot.api.typing_in(thread)
        # started within a second of the thinking phase (the LLM call), then said again while it lasted
        first = next(t for t in typing if t > asked - 1.0)
        assert first - asked < 1.0, (typing, asked)
        during = [t for t in typing if asked - 0.5 < t < step_posted]
        assert len(during) >= 3, (during, asked, step_posted)
        assert all(b - a < 0.4 + 0.35 for a, b in itertools.pairwise(during)), during
        # nothing once the phase ended (the step's message was posted, the session waits)
        assert all(t < step_posted + 0.3 for t in typing), (typing, step_posted)
        session = await bot.c.store.get(sid)
        assert session is not None and session.state == SessionState.AWAITING_APPROVAL
        before = len(bot.api.typing)
        await asyncio.sleep(1.0)  # 2.5 intervals
        assert len(bot.api.typing) == before
        assert not bot.adapter._typing  # type: ignore[union-attr]


async def test_typing_refused_is_no_reason_to_stop(
    settings: Settings, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(discord_adapter, "TYPING_EVERY_S", 0.3)
    llm.script("execution_reply", Delay(1.0, then=agent_reply("list_files", {"directory": "."})))
    async with running(settings) as bot:
        bot.api.fail("POST", r"/channels/\d+/typing", status=403, code=50013, times=100)
        started = time.monotonic()
        sid = await start_goal(bot)
        await bot.settle()
        assert any(r.path.endswith("/typing") for r in bot.api.failed)
        assert bot.step(sid, 1).buttons() and time.monotonic() - started < 10


# ------------------------------------------------------------------------------ Components V2


async def test_a_session_in_components_v2(settings: Settings, llm: ScriptedLLM) -> None:
    llm.script("task_list", tasks_reply("draw it", "save it"), tasks_reply("save it"), tasks_reply())
    llm.script(
        "execution_reply",
        agent_reply("generate_image", {"prompt": "a fox", "size": 256}, text="I will draw a fox"),
        agent_reply("write_to_file", {"filename": "fox.txt", "text": "a fox"}, reasoning="keep a note"),
        agent_reply("finish", {"reason": "fox drawn"}),
    )
    async with running(settings) as bot:
        sid = await start_goal(bot, "goal draw a fox")
        await bot.settle()
        # the root message stays an embed with content (it answers the mention)
        assert not bot.root(sid).v2 and bot.root(sid).field("Mode") == "step by step"
        [tasks] = bot.of_kind(sid, "Task list")
        assert tasks.v2 and "draw it" in tasks.all_text()

        step1 = bot.step(sid, 1)
        assert step1.flags & V2 and step1.current["content"] == "" and step1.current["embeds"] == []
        [container] = step1.current["components"]
        assert container["type"] == 17 and container["accent_color"] == render.BLURPLE
        texts = step1.texts()
        assert texts[0].startswith("## Step 1 · generate_image\n")
        assert "**Thoughts**\nI will draw a fox" in texts and "**Reasoning**\nbecause" in texts
        assert "**Plan**\n- step" in texts and "**Criticism**\nnone" in texts
        command = step1.field("Command")
        assert "`generate_image`" in command and '"a fox"' in command
        # the decision buttons are in the same layout, their ids as with embeds
        assert [b["label"] for b in step1.buttons()][:2] == ["Approve", "Approve next 5"]
        assert [c["type"] for c in container["components"]][-3:] == [14, 1, 1]  # six buttons: two rows
        assert step1.buttons()[0]["custom_id"] == f"autogpt:approve:{sid}:1"

        await approve(bot, step1)
        assert all(v.get("flags", 0) & V2 for v in step1.versions) and step1.edits >= 1
        assert step1.buttons() == [] and "Alice approved" in step1.all_text()
        assert not any(v.get("embeds") or v.get("content") for v in step1.versions)
        # the image is shown in the result's layout, attached to it
        [result] = bot.of_kind(sid, "Result of step 1")
        assert result.v2
        [png] = [n for n in result.files if n.endswith(".png")]
        assert result.gallery() == [f"attachment://{png}"] and result.files[png].startswith(b"\x89PNG")
        gallery = next(c for c in result.current["components"][0]["components"] if c["type"] == 12)
        media = gallery["items"][0]["media"]
        assert media["content_type"] == "image/png" and media["attachment_id"]
        assert result.embed["image"]["url"] == f"attachment://{png}"  # as the embed showed it

        step2 = bot.step(sid, 2)
        assert step2.v2 and step2.field("Reasoning") == "keep a note"
        await approve(bot, step2)
        [written] = bot.of_kind(sid, "Result of step 2")
        assert written.v2 and "fox.txt" in written.all_text()
        await approve(bot, bot.step(sid, 3))
        session = await bot.c.store.get(sid)
        assert session is not None and session.state == SessionState.FINISHED
        [summary] = bot.of_kind(sid, f"Session finished ({sid})")
        assert summary.v2 and "fox drawn" in summary.all_text() and summary.field("Cycles") == "3"
        assert summary.field("Spent") == f"${session.usage.cost_usd:.4f}"
        assert tasks.edits >= 1 and all(v.get("flags", 0) & V2 for v in tasks.versions)
        # every message of the thread (but none of the root) is a layout; no typing left running
        assert all(m.v2 for m in bot.thread(sid))
        assert not bot.adapter._typing  # type: ignore[union-attr]


async def test_long_step_in_components_v2_attaches_and_shows_the_command(
    settings: Settings, llm: ScriptedLLM
) -> None:
    big = "x" * 5000
    llm.script(
        "execution_reply",
        agent_reply(
            "write_to_file", {"filename": "big.txt", "text": big}, text="t" * 3000, plan="- p\n" * 900
        ),
        agent_reply("finish"),
    )
    async with running(settings) as bot:
        sid = await start_goal(bot)
        await bot.settle()
        step1 = bot.step(sid, 1)
        assert step1.v2 and sum(len(t) for t in step1.texts()) <= V2_TEXT
        assert step1.field("Thoughts").endswith("…")
        assert json.loads(step1.files["step-1-write_to_file.json"])["text"] == big
        assert step1.shown_files() == ["attachment://step-1-write_to_file.json"]
        await approve(bot, step1)
        # the edit keeps showing the file posted with the step
        assert step1.edits >= 1 and step1.shown_files() == ["attachment://step-1-write_to_file.json"]
        assert (bot.settings.data_dir / "workspaces" / sid / "big.txt").read_text() == big


async def test_components_v2_off_is_embeds_as_before(settings: Settings, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("generate_image", {"prompt": "a fox", "size": 256}),
        agent_reply("finish", {"reason": "fox drawn"}),
    )
    async with running(settings, components_v2=False) as bot:
        sid = await start_goal(bot)
        await bot.settle()
        step1 = bot.step(sid, 1)
        assert not step1.flags & V2 and step1.current["embeds"] and step1.field("Thoughts") == "thinking"
        assert [c["type"] for c in step1.current["components"]] == [1, 1]  # two rows of buttons (5 a row)
        await approve(bot, step1)
        [result] = bot.of_kind(sid, "Result of step 1")
        [png] = [n for n in result.files if n.endswith(".png")]
        assert not result.v2 and result.current["embeds"][0]["image"]["url"] == f"attachment://{png}"
        assert all(not m.v2 for m in bot.thread(sid))


async def test_switching_components_v2_on_and_off_between_restarts(
    settings: Settings, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("list_files", {"directory": "."}),
        agent_reply("list_files", {"directory": "."}),
        agent_reply("finish"),
    )
    async with running(settings, components_v2=False) as bot:
        sid = await start_goal(bot)
        await bot.settle()
        step1 = bot.step(sid, 1)
        assert not step1.v2
        # turned on: the embed step is made a layout when it is edited (content and embeds emptied)
        bot.discord = discord_settings(bot.api, components_v2=True)
        await bot.restart()
        await approve(bot, step1)
        assert step1.v2 and step1.current["embeds"] == [] and "Alice approved" in step1.all_text()
        step2 = bot.step(sid, 2)
        assert step2.v2
        # turned off again: a layout cannot become an embed; Discord refuses, the edit is a layout
        bot.discord = discord_settings(bot.api, components_v2=False)
        await bot.restart()
        await approve(bot, step2)
        assert step2.v2 and "Alice approved" in step2.all_text() and step2.buttons() == []
        # refused once per message (step 2 and the task list), then edited as a layout at once
        refused = {v.split(":")[0] for v in bot.api.violations if "cannot have content or embeds" in v}
        assert len(refused) == len(bot.api.violations) == 2, bot.api.violations
        assert all(m.v2 for m in bot.of_kind(sid, "Task list"))
        bot.api.violations.clear()  # the refusal was the point
        assert not bot.step(sid, 3).v2


# ------------------------------------------------------------------------------ limits


@pytest.mark.parametrize("n", [0, 1, 50, 1000, 4097, 20_000, 1_000_000])
def test_every_view_fits_components_v2_limits(n: int) -> None:
    renderer = render.DiscordRenderer(components_v2=True)
    for view in long_views(n):
        for posted in (True, False):
            msg = renderer.step(view, attach_args=posted) if view.kind == "step" else renderer.render(view)  # type: ignore[arg-type]
            if view.kind == "header":
                assert not msg.v2
                continue
            assert msg.v2 and msg.content is None and msg.embeds == []
            assert msg.view is not None
            components = msg.view.to_components()
            names = {a.filename for a in msg.attachments}
            if not posted and view.kind == "step":  # an edit: the files sent with the step stay
                names |= {f"step-{view.step_no}-{view.command}.json"}  # type: ignore[union-attr]
            payload = {"flags": V2, "components": components}
            problems = check(payload, "message", files=len(msg.attachments), attachments=names)
            assert problems == [], (view.kind, problems)
            assert msg.view.total_children_count <= V2_COMPONENTS
            assert msg.view.content_length() <= V2_TEXT  # type: ignore[attr-defined]


def test_the_fake_refuses_what_discord_refuses_in_components_v2() -> None:
    text = {"type": 10, "content": "hi"}
    assert check({"flags": V2, "content": "x", "components": [text]}, "m")
    assert check({"flags": V2, "embeds": [{"title": "x"}], "components": [text]}, "m")
    assert check({"components": [text]}, "m")  # a V2 type without the flag
    assert check({"flags": V2, "components": [{"type": 10, "content": "x" * 4001}]}, "m")
    assert check({"flags": V2, "components": [text] * 41}, "m")
    assert check(
        {"flags": V2, "components": [{"type": 17, "components": [{"type": 17, "components": [text]}]}]}, "m"
    )
    assert check({"flags": V2, "components": [{"type": 9, "components": [text]}]}, "m")  # no accessory
    gallery = {"type": 12, "items": [{"media": {"url": "attachment://a.png"}}]}
    assert check({"flags": V2, "components": [gallery]}, "m", attachments={"b.png"})
    assert check({"flags": V2, "components": [gallery]}, "m", attachments={"a.png"}) == []
    file = {"type": 13, "file": {"url": "https://example.com/a.txt"}}
    assert check({"flags": V2, "components": [file]}, "m")
