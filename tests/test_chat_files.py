"""Files in and out of chat, end to end on Slack (HTTP mode, the fake Web API serving the files
users share) and Discord (the fake gateway and CDN), with the scripted LLM behind the agent:

- a file attached to a goal or posted in a session's thread by its owner is saved in the
  workspace and the agent is told its name, type and size in the next cycle; audio is
  transcribed (and charged); images are shown to the model with SMART_LLM_VISION; a stranger's
  file, an oversized file and a file for an ended session are not taken;
- generate_image's picture is posted as an image; `files ID` lists a workspace and `file ID NAME`
  uploads one file into the thread (owner and admins only);
- `goal --speak` posts each cycle's speak line and the summary as audio (espeak-ng).
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import wave
from collections.abc import AsyncIterator
from typing import Any

import pytest
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.slack import ids
from bot.models import SessionState
from bot.settings import Settings
from tests.fakes.discord import CHANNEL_ID, INTENT_MESSAGE_CONTENT, FakeDiscord
from tests.fakes.discord import OWNER as D_OWNER
from tests.fakes.discord import STRANGER as D_STRANGER
from tests.fakes.discord_bot import DiscordBot, discord_settings
from tests.fakes.llm_server import ScriptedLLM, agent_reply, png_bytes
from tests.fakes.slack_api import BOT_USER, SlackBot, running_bot, start_goal

OWNER = "U1"
STRANGER = "U2"
pytestmark = pytest.mark.parametrize("store_kind", ["sqlite"])


def wav_bytes(seconds: float = 6.0, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def prompt_text(body: dict[str, Any]) -> str:
    return json.dumps(body["messages"], ensure_ascii=False)


@pytest.fixture
async def bot(settings: Settings, llm: ScriptedLLM) -> AsyncIterator[SlackBot]:
    async with running_bot(settings) as slack:
        yield slack


# ------------------------------------------------------------------------------ Slack: files in


async def test_slack_goal_attachment_and_thread_files_reach_the_agent(
    bot: SlackBot, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("read_file", {"filename": "uploads/notes.txt"}),
        agent_reply("list_files", {"directory": "uploads"}),
        agent_reply("finish", {"reason": "done"}),
    )
    api = bot.api
    shared = api.share("notes.txt", b"hello from the user", "text/plain")
    mention = {
        "type": "app_mention",
        "channel": "C1",
        "user": OWNER,
        "text": f"<@{BOT_USER}> goal summarise notes.txt",
        "ts": api._ts(),
        "files": [shared],
    }
    assert (await bot.send.event(mention)).status == 200
    await bot.settle()
    started = [m for m in api.ephemerals_to(OWNER) if "Started session" in m]
    assert started and "Saved uploads/notes.txt" in started[0], api.ephemerals_to(OWNER)
    sid = started[0].split("Started session ", 1)[1][:6]
    workspace = bot.settings.data_dir / "workspaces" / sid
    assert (workspace / "uploads" / "notes.txt").read_bytes() == b"hello from the user"
    assert api.downloads == [(shared["id"], "Bearer xoxb-test-token")]  # with the bot token
    first = prompt_text(llm.requests_of("execution_reply")[0])
    assert "uploads/notes.txt (text/plain, 19 bytes)" in first

    # in the thread: the owner's audio memo is saved and transcribed; a stranger's file is not taken
    step1 = bot.step(sid, 1)
    memo = api.share("memo.wav", wav_bytes(6.0), "audio/wav")
    await bot.send.reply(step1, "", user=OWNER, files=[memo], subtype="file_share")
    await bot.send.reply(
        step1, "", user=STRANGER, files=[api.share("x.txt", b"nope", "text/plain")], subtype="file_share"
    )
    # Slack sends only the id now and then: the bot asks files.info
    late = api.share("late.txt", b"late", "text/plain", with_url=False)
    await bot.send.reply(step1, "", user=OWNER, files=[late], subtype="file_share")
    await bot.settle()
    assert not (workspace / "uploads" / "x.txt").exists() and len(api.downloads) == 3
    assert (workspace / "uploads" / "late.txt").read_bytes() == b"late"
    notices = [m.all_text() for m in bot.thread(sid) if "Saved uploads/memo.wav" in m.all_text()]
    assert notices and "heard memo.wav" in notices[0]  # the transcript, said in the thread
    session = await bot.c.store.get(sid)
    assert session is not None  # the two posts are handled side by side: in either order
    assert sorted(i.name for i in session.inbox) == ["uploads/late.txt", "uploads/memo.wav"]
    memo_item = next(i for i in session.inbox if i.name == "uploads/memo.wav")
    assert memo_item.transcript is not None and memo_item.transcript.startswith("heard memo.wav")
    transcription = llm.requests_of("transcription")
    assert len(transcription) == 1
    assert session.usage.cost_usd >= 0.1 * 0.006 - 1e-9  # a tenth of a minute of whisper-1

    # the next cycle's prompt tells the agent; then the inbox is empty again
    await bot.send.click(step1, ids.APPROVE, OWNER)
    await bot.settle()
    second = prompt_text(llm.requests_of("execution_reply")[1])
    assert "uploads/memo.wav (audio/wav" in second and "heard memo.wav" in second
    assert "uploads/late.txt" in second and "x.txt" not in second
    session = await bot.c.store.get(sid)
    assert session is not None and session.inbox == [] and session.steps[1].shared is not None
    # still in the history a cycle later
    await bot.send.click(bot.step(sid, 2), ids.APPROVE, OWNER)
    await bot.settle()
    assert "heard memo.wav" in prompt_text(llm.requests_of("execution_reply")[2])


async def test_slack_refuses_big_files_and_files_for_ended_sessions(
    settings: Settings, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    async with running_bot(settings.model_copy(update={"max_file_bytes": 1000})) as bot:
        sid = await start_goal(bot)
        api = bot.api
        step1 = bot.step(sid, 1)
        big = api.share("big.bin", b"x" * 5000, "application/octet-stream")
        await bot.send.reply(step1, "", user=OWNER, files=[big], subtype="file_share")
        await bot.settle()
        told = api.ephemerals_to(OWNER)
        assert any("big.bin was not taken" in t and "MAX_FILE_BYTES" in t for t in told), told
        assert api.downloads == []  # refused by its announced size, never fetched
        await bot.send.command(f"stop {sid}")
        await bot.settle()
        await bot.send.reply(
            step1, "", user=OWNER, files=[api.share("a.txt", b"a", "text/plain")], subtype="file_share"
        )
        await bot.settle()
        assert any("has ended" in t for t in api.ephemerals_to(OWNER))
        assert not (bot.settings.data_dir / "workspaces" / sid / "uploads" / "a.txt").exists()


async def test_slack_images_are_shown_to_a_vision_model(settings: Settings, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}), agent_reply("finish", {}))
    async with running_bot(settings.model_copy(update={"smart_llm_vision": True})) as bot:
        sid = await start_goal(bot)
        picture = png_bytes(8, 8)
        shot = bot.api.share("shot.png", picture, "image/png")
        await bot.send.reply(bot.step(sid, 1), "", user=OWNER, files=[shot], subtype="file_share")
        await bot.settle()
        await bot.send.click(bot.step(sid, 1), ids.APPROVE, OWNER)
        await bot.settle()
        body = llm.requests_of("execution_reply")[-1]
        parts = [m["content"] for m in body["messages"] if isinstance(m["content"], list)]
        assert len(parts) == 1
        image = next(p for p in parts[0] if p["type"] == "image_url")
        assert image["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(picture).decode()
        assert "uploads/shot.png (image/png" in parts[0][0]["text"]


# ------------------------------------------------------------------------------ Slack: files out


async def test_slack_generated_image_posted_and_files_commands(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("generate_image", {"prompt": "a red fox", "size": 256}))
    sid = await start_goal(bot, "goal draw a fox")
    await bot.send.click(bot.step(sid, 1), ids.APPROVE, OWNER)
    await bot.settle()
    api = bot.api
    pngs = [u for u in api.uploads.values() if u.filename.endswith(".png")]
    assert len(pngs) == 1 and pngs[0].content is not None and pngs[0].content.startswith(b"\x89PNG")
    assert pngs[0].completed is not None and pngs[0].completed.get("thread_ts") == bot.root(sid).ts
    session = await bot.c.store.get(sid)
    assert session is not None and session.usage.cost_usd >= 0.04  # one dall-e-3 image
    name = session.steps[0].result.split("Saved the image as ", 1)[1].split(" ", 1)[0]  # type: ignore[union-attr]

    await bot.send.command(f"files {sid}")
    await bot.settle()
    listing = api.ephemerals_to(OWNER)[-1]
    assert name in listing and "Files of session" in listing
    before = len(api.uploads)
    await bot.send.command(f"file {sid} {name}")
    await bot.settle()
    assert len(api.uploads) == before + 1 and "Uploaded" in api.ephemerals_to(OWNER)[-1]
    # strangers get nothing; paths out of the workspace are refused
    await bot.send.command(f"file {sid} {name}", user=STRANGER)
    await bot.send.command(f"file {sid} ../../settings.db")
    await bot.send.command(f"file {sid} nothing.txt")
    await bot.settle()
    assert len(api.uploads) == before + 1
    assert (
        "Only the owner" in api.ephemerals_to(STRANGER)[-1] or "No session" in api.ephemerals_to(STRANGER)[-1]
    )
    told = api.ephemerals_to(OWNER)[-2:]
    assert "outside the workspace" in told[0] and "No file 'nothing.txt'" in told[1]
    assert all(str(bot.settings.data_dir) not in t for t in api.ephemerals_to(OWNER))


@pytest.mark.skipif(shutil.which("espeak-ng") is None and not os.environ.get("CI"), reason="no espeak-ng")
async def test_slack_speak_posts_audio_each_cycle_and_the_summary(bot: SlackBot, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("list_files", {"directory": "."}, speak="Listing the files now"),
        agent_reply("finish", {"reason": "all done"}, speak="Finished"),
    )
    sid = await start_goal(bot, "goal --speak list my files")
    await bot.send.click(bot.step(sid, 1), ids.APPROVE, OWNER)
    await bot.settle()
    await bot.send.click(bot.step(sid, 2), ids.APPROVE, OWNER)
    await bot.settle()
    session = await bot.c.store.get(sid)
    assert session is not None and session.speak and session.state == SessionState.FINISHED
    audio = sorted(u.filename for u in bot.api.uploads.values() if u.filename.endswith(".wav"))
    assert audio == ["step-1.wav", "step-2.wav", "summary.wav"]
    for u in bot.api.uploads.values():
        if u.filename.endswith(".wav"):
            assert u.content is not None and u.content[:4] == b"RIFF"
    assert (bot.settings.data_dir / "workspaces" / sid / "speech" / "step-1.wav").is_file()


# ------------------------------------------------------------------------------ Discord


@pytest.fixture
async def dbot(settings: Settings, llm: ScriptedLLM) -> AsyncIterator[DiscordBot]:
    saved = Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY
    async with FakeDiscord(allow_privileged=INTENT_MESSAGE_CONTENT) as api:
        bot = DiscordBot(settings, api, discord_settings(api, message_content=True))
        await bot.start()
        try:
            yield bot
        finally:
            await bot.stop()
            Route.BASE, DiscordWebSocket.DEFAULT_GATEWAY = saved
        assert api.problems() == []


async def test_discord_attachments_in_and_an_image_out(dbot: DiscordBot, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("generate_image", {"prompt": "a fox", "size": 256}),
        agent_reply("list_files", {"directory": "uploads"}),
    )
    api = dbot.api
    said = await api.say(
        D_OWNER, "goal draw what brief.txt says", files={"brief.txt": (b"a fox", "text/plain")}
    )
    await dbot.settle()
    sessions = await dbot.c.store.sessions_of(f"discord:{D_OWNER}")
    assert len(sessions) == 1, [m.content for m in api.in_channel(CHANNEL_ID)]
    sid = sessions[0].id
    workspace = dbot.settings.data_dir / "workspaces" / sid
    assert (workspace / "uploads" / "brief.txt").read_bytes() == b"a fox"
    assert "uploads/brief.txt (text/plain, 5 bytes)" in prompt_text(llm.requests_of("execution_reply")[0])
    assert said.id

    # the generated image is shown in the result's embed, attached to it
    step1 = dbot.step(sid, 1)
    clicked = await api.click(step1, "Approve", D_OWNER)
    await clicked.answered()
    await dbot.settle()
    result = dbot.of_kind(sid, "Result of step 1")
    assert len(result) == 1
    embed = result[0].embed
    png = [n for n in result[0].files if n.endswith(".png")]
    assert len(png) == 1 and embed["image"]["url"] == f"attachment://{png[0]}"
    assert result[0].files[png[0]].startswith(b"\x89PNG")

    # a file posted in the thread by the owner is taken; a stranger's is not
    thread = dbot.thread_id(sid)
    await api.say(D_OWNER, "", channel=thread, mention=False, files={"more.txt": (b"more", "text/plain")})
    await api.say(D_STRANGER, "", channel=thread, mention=False, files={"evil.txt": (b"evil", "text/plain")})
    await dbot.settle()
    assert (workspace / "uploads" / "more.txt").read_bytes() == b"more"
    assert not (workspace / "uploads" / "evil.txt").exists()

    # file ID NAME uploads into the session's thread
    await api.say(D_OWNER, f"file {sid} uploads/more.txt")
    await dbot.settle()
    uploaded = [m for m in dbot.thread(sid) if "more.txt" in m.files]
    assert len(uploaded) == 1 and uploaded[0].files["more.txt"] == b"more"
