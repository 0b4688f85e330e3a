"""Usage reports and the audit export: spend recorded per model, the archive's report columns
(and an archive from before them), `usage` for users and admins through the core, Slack and
Discord (their fakes), the Slack Home tab's chart, and `autogpt-bot usage` / `export`."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr

from adapters.slack import ids
from bot.core import Core
from bot.llm.client import add_usage
from bot.models import (
    Actor,
    ModelUsage,
    Place,
    Session,
    SessionState,
    Usage,
)
from bot.presenter import wording
from bot.presenter.views import Shown, UsageView
from bot.settings import Settings
from bot.store import Archive
from bot.usage import UsageQuery, report
from tests.conftest import started_core
from tests.fakes.discord_api import OWNER as DISCORD_OWNER
from tests.fakes.discord_api import STRANGER as DISCORD_STRANGER
from tests.fakes.discord_api import FakeDiscord
from tests.fakes.discord_bot import DiscordBot, discord_settings
from tests.fakes.llm_server import ScriptedLLM, agent_reply, tasks_reply
from tests.fakes.slack_api import running_bot, start_goal
from tests.test_cli import cli

NOW = datetime.now(UTC)
PLACE = Place(platform="test", channel="C1", team="T1")
ALICE = Actor(platform="test", user_id="U1", name="alice")
BOB = Actor(platform="test", user_id="U2", name="bob")
ROOT = Actor(platform="test", user_id="U9", name="root", is_admin=True)


def spent(**models: tuple[int, int, int, float]) -> Usage:
    """A usage made of per-model parts: name=(calls, prompt, completion, usd)."""
    total = Usage()
    for name, (calls, prompt, completion, usd) in models.items():
        part = Usage(calls=calls, prompt_tokens=prompt, completion_tokens=completion, cost_usd=usd)
        total = add_usage(total, part.priced_as(name.replace("_", "-")))
    return total


def session(
    sid: str,
    owner: str,
    channel: str,
    usage: Usage,
    days_ago: float = 0,
    platform: str = "test",
    state: SessionState = SessionState.FINISHED,
    cycles: int = 2,
) -> Session:
    created = NOW - timedelta(days=days_ago)
    return Session(
        id=sid,
        owner=owner,
        owner_name={"U1": "alice", "U2": "bob"}.get(owner, owner),
        place=Place(platform=platform, channel=channel, team="T1"),
        goals=[f"goal of {sid}"],
        state=state,
        cycles=cycles,
        usage=usage,
        created_at=created,
        updated_at=created,
        finished_at=created if state.terminal else None,
    )


async def seed(core: Core) -> None:
    """Alice: two sessions in C1 (one under way, in the store), one in C2 40 days ago; Bob: one
    in C2; someone on another platform."""
    await core.archive.save(
        session("aaaaaa", "U1", "C1", spent(gpt_4o=(2, 1000, 100, 0.02), gpt_4o_mini=(4, 2000, 200, 0.002)))
    )
    await core.archive.save(session("bbbbbb", "U2", "C2", spent(gpt_4o=(1, 500, 50, 0.01)), days_ago=2))
    await core.archive.save(session("cccccc", "U1", "C2", spent(gpt_4o=(1, 10, 10, 1.0)), days_ago=40))
    await core.archive.save(session("dddddd", "U1", "C1", spent(gpt_4o=(9, 9, 9, 9.0)), platform="other"))
    await core.store.create(
        session("eeeeee", "U1", "C1", spent(gpt_4o=(1, 100, 10, 0.005)), state=SessionState.RUNNING, cycles=1)
    )


@pytest.fixture(params=["sqlite", "postgresql"])
async def core(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[Core]:
    """The started core, with the archive on SQLite (the default) or on PostgreSQL (ARCHIVE_URL,
    a fresh schema): the reports read both the same."""
    updates = (
        {"archive_url": SecretStr(request.getfixturevalue("pg_url"))} if request.param == "postgresql" else {}
    )
    async with started_core(settings, **updates) as (c, _):
        yield c


def rows(view: UsageView, name: str) -> dict[str, tuple[int, int, float]]:
    return {r.key: (r.sessions, r.calls, round(r.cost_usd, 6)) for r in getattr(view, name)}


# ---------------------------------------------------------------------------- spend per model


def test_usage_adds_up_per_model() -> None:
    a = Usage(calls=1, prompt_tokens=10, completion_tokens=1, cost_usd=0.5).priced_as("m1")
    b = Usage(calls=2, prompt_tokens=20, completion_tokens=2, cost_usd=0.25).priced_as("m2")
    c = Usage(calls=1, cost_usd=0.25).priced_as("m1")
    total = add_usage(add_usage(a, b), c)
    assert total.calls == 4 and total.cost_usd == 1.0 and total.prompt_tokens == 30
    assert total.by_model == {
        "m1": ModelUsage(calls=2, prompt_tokens=10, completion_tokens=1, cost_usd=0.75),
        "m2": ModelUsage(calls=2, prompt_tokens=20, completion_tokens=2, cost_usd=0.25),
    }
    assert total.priced_as("m3") is total  # already per model
    assert Usage().priced_as("m1") == Usage()  # nothing used, nothing recorded
    # a session stored before spend per model was recorded still reads
    old = Session.model_validate_json(
        '{"id": "k3f9qa", "owner": "U1", "place": {"platform": "test", "channel": "C1"}, "goals": ["g"],'
        ' "usage": {"calls": 3, "prompt_tokens": 1, "completion_tokens": 1, "cost_usd": 0.1}}'
    )
    assert old.usage.by_model == {} and old.usage.cost_usd == 0.1 and old.profile is None


async def test_a_session_records_its_spend_per_model(core: Core, llm: ScriptedLLM) -> None:
    llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "ok"}))
    outcome = await core.service.handle_text(ALICE, PLACE, "goal --continuous write a poem")
    assert outcome.ok and outcome.session_id
    await core.runner.idle(10)
    archived = await core.archive.get(outcome.session_id)
    assert archived is not None and archived.state == SessionState.FINISHED
    parts = archived.usage.by_model
    assert {"gpt-4o", "gpt-4o-mini"} <= parts.keys()  # execution on SMART_LLM, the task list on FAST_LLM
    assert sum(p.calls for p in parts.values()) == archived.usage.calls
    assert sum(p.cost_usd for p in parts.values()) == pytest.approx(archived.usage.cost_usd)
    shown = await core.service.handle_text(ALICE, PLACE, "usage")
    assert isinstance(shown, Shown) and isinstance(shown.view, UsageView)
    assert shown.view.total.sessions == 1 and shown.view.unpriced == 0
    assert {"gpt-4o", "gpt-4o-mini"} <= {r.key for r in shown.view.by_model}


# ---------------------------------------------------------------------------- who sees what


async def test_a_user_sees_their_own_usage_and_an_admin_everyones(core: Core) -> None:
    await seed(core)
    mine = await core.service.handle_text(ALICE, PLACE, "usage")
    assert isinstance(mine, Shown) and mine.ok
    view = mine.view
    assert isinstance(view, UsageView) and view.mine and view.days == 30
    assert view.total.sessions == 2 and view.total.cycles == 3 and view.total.calls == 7  # the live one too
    assert view.total.cost_usd == pytest.approx(0.027) and view.by_user == []
    assert rows(view, "by_model") == {"gpt-4o": (2, 3, 0.025), "gpt-4o-mini": (1, 4, 0.002)}
    assert rows(view, "by_channel") == {"C1": (2, 7, 0.027)}
    assert mine.message.startswith("Your usage, last 30 days") and "gpt-4o-mini" in mine.message
    assert sum(d.cost_usd for d in view.daily) == pytest.approx(0.027) and len(view.daily) == 30
    assert view.daily[-1].day == NOW.date()

    refused = await core.service.handle_text(ALICE, PLACE, "usage --user U2")
    assert (
        not refused.ok and refused.message == "Only admins can see another user's usage; `usage` shows yours."
    )
    assert (await core.service.handle_text(ALICE, PLACE, "usage --user U1")).ok  # herself
    longer = await core.service.handle_text(ALICE, PLACE, "usage --days 60")
    assert isinstance(longer, Shown) and longer.view.total.sessions == 3

    everyone = await core.service.handle_text(ROOT, PLACE, "usage")
    assert isinstance(everyone, Shown) and isinstance(everyone.view, UsageView)
    view = everyone.view
    assert view.everyone and not view.mine and view.total.sessions == 3  # not the other platform's
    assert rows(view, "by_user") == {"U1": (2, 7, 0.027), "U2": (1, 1, 0.01)}
    assert {r.label for r in view.by_user} == {"alice", "bob"}
    assert rows(view, "by_channel") == {"C1": (2, 7, 0.027), "C2": (1, 1, 0.01)}
    assert everyone.message.startswith("Usage of everyone, last 30 days")
    assert "By user:" in everyone.message and "By channel:" in everyone.message

    bob = await core.service.handle_text(ROOT, PLACE, "usage --user <@U2>")
    assert isinstance(bob, Shown) and bob.view.total.sessions == 1 and bob.view.user_label == "bob"
    assert bob.message.startswith("Usage of bob")
    here = await core.service.handle_text(
        ROOT, PLACE.model_copy(update={"channel": "C2"}), "usage --channel here"
    )
    assert isinstance(here, Shown) and here.view.channel == "C2" and here.view.total.sessions == 1
    assert here.view.by_channel == [] and here.message.startswith("Usage of everyone in C2")
    nobody = await core.service.handle_text(ROOT, PLACE, "usage --user U7 --days 1")
    assert isinstance(nobody, Shown) and "No sessions in this period." in nobody.message


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_an_archive_from_before_the_report_columns_is_read(settings: Settings, tmp_path: Path) -> None:
    path = settings.data_dir / "archive.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = session("ffffff", "U1", "C1", Usage(calls=3, prompt_tokens=30, completion_tokens=3, cost_usd=0.3))
    data = json.loads(old.model_dump_json())
    del data["usage"]["by_model"], data["profile"]  # as an older version stored it
    with sqlite3.connect(path) as db:  # the schema of the version before
        db.executescript(
            "CREATE TABLE archive (id TEXT PRIMARY KEY, user_key TEXT NOT NULL, platform TEXT NOT NULL,"
            " state TEXT NOT NULL, goals TEXT NOT NULL, cycles INTEGER NOT NULL, cost_usd REAL NOT NULL,"
            " created_at REAL NOT NULL, finished_at REAL NOT NULL, data TEXT NOT NULL);"
        )
        db.execute(
            "INSERT INTO archive VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                "ffffff",
                "test:U1",
                "test",
                "finished",
                '["g"]',
                2,
                0.3,
                NOW.timestamp(),
                NOW.timestamp(),
                json.dumps(data),
            ),
        )
    db.close()
    archive = Archive(path)
    await archive.open()
    try:
        got = await archive.get("ffffff")
        assert got is not None and got.usage.cost_usd == 0.3 and got.usage.by_model == {}
        (record,) = await archive.usage_since(NOW - timedelta(days=1))
        assert record.channel == "C1" and record.owner_name == "alice" and record.usage.calls == 3
        await archive.save(session("gggggg", "U2", "C2", spent(gpt_4o=(1, 1, 1, 0.1))))
    finally:
        await archive.close()
    async with started_core(settings) as (core, _):  # opened again: the columns are there already
        shown = await core.service.handle_text(ROOT, PLACE, "usage")
        assert isinstance(shown, Shown) and isinstance(shown.view, UsageView)
        assert shown.view.unpriced == 1 and shown.view.total.sessions == 2
        assert rows(shown.view, "by_model") == {wording.NOT_RECORDED: (1, 3, 0.3), "gpt-4o": (1, 1, 0.1)}
        assert "1 session from before spend per model was recorded: counted under" in shown.message


async def test_the_report_of_many_rows_keeps_the_biggest(core: Core) -> None:
    for i in range(20):
        await core.archive.save(
            session(f"s{i:05d}", f"U{i}", f"C{i}", spent(gpt_4o=(1, 1, 1, 0.01 * (i + 1))))
        )
    view = await report(core.store, core.archive, UsageQuery(platform="test"))
    assert (
        len(view.by_user) == 15 and view.by_user[0].key == "U19" and view.by_user[-1].label == "6 other users"
    )
    assert view.by_user[-1].sessions == 6 and sum(r.sessions for r in view.by_user) == 20


# ---------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_usage_and_export_on_the_command_line(
    settings: Settings, llm: ScriptedLLM, tmp_path: Path
) -> None:
    async with started_core(settings) as (core, chat):
        await seed(core)
        llm.script("task_list", tasks_reply("a"), tasks_reply("a"), tasks_reply("a"))
        llm.script(
            "execution_reply",
            agent_reply("list_files", {"directory": "."}),
            agent_reply("delete_file", {"filename": "x"}),
            agent_reply("write_to_file", {"filename": "y", "text": "y"}),
        )
        started = await core.service.handle_text(ALICE, PLACE, "goal look around")
        assert started.session_id
        sid = started.session_id
        await core.runner.idle(10)
        assert (await chat.press(core.service, sid, 1, "approve", "U1")).ok
        await core.runner.idle(10)
        feedback = '=HYPERLINK("http://evil") keep the files'
        assert (await core.service.handle_text(ALICE, PLACE, f"feedback {sid} {feedback}")).ok
        await core.runner.idle(10)
        assert (await core.service.handle_text(ROOT, PLACE, f"stop {sid}")).ok
        await core.runner.idle(10)
    env = {"OPENAI_API_KEY": "sk-x", "DATA_DIR": str(settings.data_dir)}

    used = cli(tmp_path, "usage", **env)
    assert used.returncode == 0, used.stderr
    assert used.stdout.startswith("Usage of everyone, last 30 days")
    assert "other:" in used.stdout and "test:alice" in used.stdout  # every platform, named
    assert "gpt-4o-mini" in used.stdout and "Spend per day:" in used.stdout
    one = cli(tmp_path, "usage", "--user", "test:U2", "--days", "7", **env)
    assert one.returncode == 0 and one.stdout.startswith("Usage of bob, last 7 days")
    assert cli(tmp_path, "usage", "--days", "0", **env).returncode == 2

    since = f"{NOW:%Y-%m-%d}"
    out = cli(tmp_path, "export", "--since", since, "--format", "jsonl", **env)
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert out.stderr.strip().startswith(f"Exported {len(records)} records since {since} 00:00 UTC")
    mine = [r for r in records if r["session"] == sid]
    kinds = [r["kind"] for r in mine]
    assert kinds[0] == "session_started" and "session_ended" in kinds and kinds[-1] == "spend"
    decisions = [
        (r["step"], r["command"], r["actor_id"], r["action"]) for r in mine if r["kind"] == "decision"
    ]
    assert decisions == [
        (1, "list_files", "U1", "approved"),
        (2, "delete_file", "U1", "gave feedback"),
        (3, "write_to_file", "U9", "stopped"),
    ]
    fed = next(r for r in mine if r["kind"] == "decision" and r["step"] == 2)
    assert fed["detail"] == feedback and fed["actor"] == "alice" and fed["time"]
    ran = [r for r in mine if r["kind"] == "command"]
    assert [(r["step"], r["action"]) for r in ran] == [(1, "done")] and ran[0]["args"] == '{"directory": "."}'
    ended = next(r for r in mine if r["kind"] == "session_ended")
    assert ended["action"] == "stopped" and ended["detail"] == "stopped by root"
    models = {r["model"] for r in mine if r["kind"] == "spend"}
    assert {"gpt-4o", "gpt-4o-mini"} <= models
    assert {r["session"] for r in records} == {sid, "aaaaaa", "eeeeee", "dddddd"}  # since today: not
    # bbbbbb (finished 2 days ago) nor cccccc (40 days ago)
    assert "sk-x" not in out.stdout

    target = tmp_path / "audit.csv"
    out = cli(tmp_path, "export", "--since", since, "--format", "csv", "--output", str(target), **env)
    assert out.returncode == 0 and out.stdout == "" and str(target) in out.stderr
    table = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert len(table) == len(records) and table[0].keys() == records[0].keys()
    fed_row = next(r for r in table if r["kind"] == "decision" and r["step"] == "2" and r["session"] == sid)
    assert fed_row["detail"] == "'" + feedback  # a spreadsheet does not run it

    bad = cli(tmp_path, "export", "--since", "last week", **env)
    assert (
        bad.returncode == 2
        and bad.stderr.strip() == "--since 'last week' is not a date: use YYYY-MM-DD, e.g. 2026-01-31"
    )
    nowhere = cli(
        tmp_path, "export", "--since", since, "--output", str(tmp_path / "no" / "dir" / "x.csv"), **env
    )
    assert nowhere.returncode == 2 and "Cannot write" in nowhere.stderr
    dead = cli(tmp_path, "usage", OPENAI_API_KEY="sk-x", REDIS_URL="redis://:pw-x@127.0.0.1:1/0")
    assert (
        dead.returncode == 1 and "Cannot read the session store" in dead.stderr and "pw-x" not in dead.stderr
    )


# ---------------------------------------------------------------------------- Slack and Discord


@pytest.mark.parametrize("store_kind", ["redis"])
async def test_usage_in_slack_and_the_home_tabs_chart(settings: Settings, llm: ScriptedLLM) -> None:
    async with running_bot(settings) as bot:
        llm.script("execution_reply", agent_reply("finish", {"reason": "ok"}))
        sid = await start_goal(bot, "goal write a poem")
        await bot.send.click(bot.step(sid, 1), ids.APPROVE, "U1")
        await bot.settle()
        await bot.c.archive.save(
            session("hhhhhh", "U1", "C1", spent(gpt_4o=(1, 1, 1, 0.5)), days_ago=3, platform="slack")
        )
        await bot.c.archive.save(
            session("iiiiii", "U5", "C2", spent(gpt_4o=(1, 1, 1, 0.1)), platform="slack")
        )
        for user, text in (("U1", "usage"), ("U1", "usage --user U5"), ("UADMIN", "usage --days 7")):
            assert (await bot.send.command(text, user=user)).status == 200
        await bot.settle()
        mine, refused, everyone = bot.api.responses[-3:]
        assert mine["response_type"] == "ephemeral"
        blocks = json.dumps(mine["blocks"], ensure_ascii=False)
        assert "*Your usage, last 30 days" in blocks and "*Spent*" in blocks and "*By model*" in blocks
        assert "`gpt-4o`" in blocks and "```" in blocks and "┤" in blocks  # the chart, in a code block
        assert "<@U5>" not in blocks
        assert refused["text"].startswith("Only admins can see another user's usage")
        blocks = json.dumps(everyone["blocks"], ensure_ascii=False)
        assert "*Usage of everyone, last 7 days" in blocks and "<@U5>" in blocks and "<#C2>" in blocks

        event = {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home", "event_ts": "1.2"}
        assert (await bot.send.event(event)).status == 200
        await bot.settle()
        home = bot.api.published[-1]["view"]
        texts = json.dumps(home, ensure_ascii=False)
        assert wording.HOME_USAGE in texts and "2 sessions" in texts and "$0.5" in texts
        chart = next(b for b in home["blocks"] if b["type"] == "section" and "└" in b["text"]["text"])
        lines = chart["text"]["text"].strip("`").splitlines()
        assert len(lines) == 6 and lines[0].lstrip().startswith("$0.5")  # 4 rows, the axis, the days
        assert len(lines[-2]) - len(lines[-2].lstrip("$0 └")) == 30 or lines[-2].count("─") == 30
        assert wording.HOME_PROFILES in texts and "No channel has a profile yet" in texts
        assert sid in texts  # the sessions are still there


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_usage_in_discord_is_an_embed(settings: Settings, llm: ScriptedLLM) -> None:
    async with FakeDiscord() as api:
        bot = DiscordBot(settings, api, discord_settings(api))
        await bot.start()
        try:
            await bot.c.archive.save(
                session("jjjjjj", str(DISCORD_OWNER), "1", spent(gpt_4o=(2, 10, 10, 0.3)), platform="discord")
            )
            used = await api.slash(DISCORD_OWNER, "autogpt", command="usage")
            await used.answered()
            await bot.settle()
            assert used.ephemeral and used.original is not None
            (embed,) = used.original.embeds
            assert embed["description"].startswith("**Your usage, last 30 days")
            assert "**Spent** $0.3000" in embed["description"]
            fields = {f["name"]: f["value"] for f in embed["fields"]}
            assert "`gpt-4o` · 2 calls" in fields["By model"] and "┤" in fields["Spend per day"]
            other = await api.slash(DISCORD_STRANGER, "autogpt", command=f"usage --user <@{DISCORD_OWNER}>")
            await other.answered()
            await bot.settle()
            assert other.private_texts()[0].startswith("Only admins can see another user's usage")
            said = await api.say(DISCORD_OWNER, "usage --days 2")
            await bot.settle()
            (answer,) = [
                m
                for m in api.messages.values()
                if (m.current.get("message_reference") or {}).get("message_id") == str(said.id)
            ]
            assert answer.embeds[0]["description"].startswith("**Your usage, last 2 days")
        finally:
            await bot.stop()
        assert api.problems() == []
