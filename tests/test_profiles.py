"""Channel profiles and goal templates through the core: the real stores (Redis and SQLite),
the scripted LLM, the test chat platform; and `check-config` listing the profiles."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.core import Core
from bot.decisions import Decision, Transition, decide
from bot.models import Actor, Place, Session, SessionProfile, SessionState, StepStatus, Usage
from bot.presenter.views import ProfileView, Shown
from bot.settings import Settings
from tests.conftest import started_core
from tests.fakes.chat import TestPlatform
from tests.fakes.discord_api import ADMIN as DISCORD_ADMIN
from tests.fakes.discord_api import CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.fakes.discord_api import OWNER as DISCORD_OWNER
from tests.fakes.discord_api import STRANGER as DISCORD_STRANGER
from tests.fakes.discord_api import Message as DiscordMessage
from tests.fakes.discord_bot import DiscordBot, discord_settings
from tests.fakes.llm_server import ScriptedLLM, agent_reply, tasks_reply
from tests.fakes.slack_api import running_bot, start_goal
from tests.test_cli import cli

PLACE = Place(platform="test", channel="C1", team="T1")
ELSEWHERE = Place(platform="test", channel="C2", team="T1")
OWNER = Actor(platform="test", user_id="U1", name="alice")
STRANGER = Actor(platform="test", user_id="U2", name="bob")
MANAGER = Actor(platform="test", user_id="U3", name="carol", manages_channel=True)
ADMIN = Actor(platform="test", user_id="U9", name="root", is_admin=True)


async def say(core: Core, actor: Actor, text: str, place: Place = PLACE) -> Shown | object:
    return await core.service.handle_text(actor, place, text)


async def started(core: Core, actor: Actor, text: str, place: Place = PLACE) -> str:
    outcome = await core.service.handle_text(actor, place, text)
    assert outcome.ok and outcome.session_id, outcome.message
    await core.runner.idle(10)
    return outcome.session_id


# ---------------------------------------------------------------------------- profile set / show


async def test_profile_show_set_unset_and_who_may(core: Core) -> None:
    shown = await core.service.handle_text(STRANGER, PLACE, "profile")
    assert isinstance(shown, Shown) and isinstance(shown.view, ProfileView)
    assert not shown.view.may_change and not any(f.set for f in shown.view.fields)
    assert "Nothing is set" in shown.message and "Only channel admins and bot admins" in shown.message
    assert "budget per session (budget): $1.00 (the setting)" in shown.message

    refused = await core.service.handle_text(STRANGER, PLACE, "profile set budget 0.25")
    assert not refused.ok and "Only channel admins and bot admins" in refused.message
    assert await core.store.get_profile("test:T1:C1") is None

    for actor, text in (
        (MANAGER, "profile set budget $0.25"),
        (ADMIN, 'profile set role "a careful poet"'),
        (MANAGER, "profile set name Poet"),
        (MANAGER, "profile set smart_llm gpt-4o-mini"),
        (MANAGER, "profile set continuous_limit 3"),
        (MANAGER, "profile set memory_scope CHANNEL"),
        (MANAGER, "profile set tool_policy list_files=allow, delete_file=deny"),
        (MANAGER, "profile set mcp_servers docs, github docs"),
    ):
        outcome = await core.service.handle_text(actor, PLACE, text)
        assert outcome.ok, (text, outcome.message)
        assert isinstance(outcome, Shown) and outcome.view.note
    profile = await core.store.get_profile("test:T1:C1")
    assert profile is not None
    assert profile.budget_usd == 0.25 and profile.ai_role == "a careful poet" and profile.ai_name == "Poet"
    assert profile.smart_llm == "gpt-4o-mini" and profile.continuous_limit == 3
    assert profile.memory_scope == "channel"
    assert profile.tool_policy == {"list_files": "allow", "delete_file": "deny"}
    assert profile.mcp_servers == ["docs", "github"] and profile.updated_by == "carol"
    shown = await core.service.handle_text(STRANGER, PLACE, "profile")
    assert isinstance(shown, Shown)
    values = {f.key: (f.value, f.set) for f in shown.view.fields}
    assert values["budget"] == ("$0.25", True) and values["mcp_servers"] == ("docs, github", True)
    assert values["fast_llm"] == ("gpt-4o-mini (the setting)", False)
    assert "Last changed by carol" in shown.message

    unset = await core.service.handle_text(MANAGER, PLACE, "profile unset budget")
    assert unset.ok and "unset" in unset.message
    profile = await core.store.get_profile("test:T1:C1")
    assert profile is not None and profile.budget_usd is None and profile.ai_name == "Poet"
    # another channel has its own (none)
    other = await core.service.handle_text(STRANGER, ELSEWHERE, "profile")
    assert isinstance(other, Shown) and not any(f.set for f in other.view.fields)


@pytest.mark.parametrize("store_kind", ["sqlite"])
@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("profile set budget lots", "not an amount in USD"),
        ("profile set budget -1", "more than $0"),
        ("profile set budget nan", "more than $0"),
        ("profile set continuous_limit 0", "not a cycle limit"),
        ("profile set memory_scope team", "not a memory scope"),
        ("profile set smart_llm gpt 4o", "not a model name"),
        ("profile set tool_policy web_search=maybe", "is not command=allow|ask|deny"),
        ("profile set tool_policy web_search", "is not command=allow|ask|deny"),
        ("profile set mcp_servers ../etc", "not an MCP server name"),
        ("profile set name " + "x" * 81, "the limit is 80"),
        ("profile set colour red", "is not a profile key"),
    ],
)
async def test_bad_profile_values_are_refused_clearly(core: Core, text: str, says: str) -> None:
    outcome = await core.service.handle_text(ADMIN, PLACE, text)
    assert not outcome.ok and says in outcome.message, outcome.message
    assert "Traceback" not in outcome.message and str(core.settings.data_dir) not in outcome.message
    assert await core.store.get_profile("test:T1:C1") is None


def test_resuming_at_the_budget_adds_the_profiles_budget_not_the_settings(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path, session_budget_usd=5.0)  # type: ignore[call-arg]
    session = Session(
        id="k3f9qa",
        owner="U1",
        place=PLACE,
        goals=["g"],
        state=SessionState.PAUSED,
        pause_kind="limit",
        budget_usd=0.5,
        profile=SessionProfile(channel="test:T1:C1", budget_usd=0.5),
        usage=Usage(cost_usd=0.49),
    )
    owner = Actor(platform="test", user_id="U1")
    resumed = decide(session, owner, Decision(action="resume"), settings, datetime.now(UTC))
    assert isinstance(resumed, Transition) and resumed.session.budget_usd == pytest.approx(0.99)
    session.profile = None  # a session started elsewhere gets the setting's allotment
    resumed = decide(session, owner, Decision(action="resume"), settings, datetime.now(UTC))
    assert isinstance(resumed, Transition) and resumed.session.budget_usd == pytest.approx(5.49)


async def test_a_profiles_fast_model_gets_the_fast_token_limit(settings: Settings, llm: ScriptedLLM) -> None:
    async with started_core(settings, fast_token_limit=1000, max_goal_chars=20_000) as (core, _):
        assert (await core.service.handle_text(ADMIN, PLACE, "profile set fast_llm gpt-4.1-mini")).ok
        llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
        await started(core, OWNER, "goal " + "describe every word of this long goal " * 400)
        creation = llm.requests_of("task_list")[0]
        assert creation["model"] == "gpt-4.1-mini"
        assert len(json.dumps(creation["messages"])) < 4 * 1000  # fitted to FAST_TOKEN_LIMIT


# ---------------------------------------------------------------------------- sessions use it


async def test_a_session_started_in_the_channel_takes_its_profile(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    for text in (
        "profile set name Poet",
        "profile set role a careful poet",
        "profile set budget 0.5",
        "profile set fast_llm gpt-4.1-mini",
        "profile set smart_llm gpt-4.1",
        "profile set continuous_limit 2",
        "profile set memory_scope user",
        "profile set tool_policy list_files=allow,delete_file=deny",
        "profile set mcp_servers docs",
    ):
        assert (await core.service.handle_text(ADMIN, PLACE, text)).ok
    llm.script("task_list", tasks_reply("look"), tasks_reply("look"))
    llm.script(
        "execution_reply",
        agent_reply("delete_file", {"filename": "x"}),  # denied here: not offered, invalid
        agent_reply("list_files", {"directory": "."}),  # allowed here: runs without asking
        agent_reply("finish", {"reason": "done"}),
    )
    sid = await started(core, OWNER, "goal look around")
    session = await core.store.get(sid) or await core.archive.get(sid)
    assert session is not None
    assert session.ai_name == "Poet" and session.ai_role == "a careful poet" and session.budget_usd == 0.5
    assert session.profile is not None and session.profile.channel == "test:T1:C1"
    assert session.profile.memory_scope == "user" and session.profile.mcp_servers == ["docs"]
    assert chat.headers[-1].ai_name == "Poet"
    # the profile's models were asked; the approval policy is the profile's on top of the setting's
    assert {r["model"] for r in llm.requests_of("execution_reply")} == {"gpt-4.1"}
    assert {r["model"] for r in llm.requests_of("task_list")} == {"gpt-4.1-mini"}
    prompt = json.dumps(llm.requests_of("execution_reply")[0]["messages"])
    assert "delete_file" not in prompt and "list_files" in prompt
    steps = session.steps
    assert steps[0].status == StepStatus.INVALID and "not allowed here" in steps[0].notes[0]
    assert steps[1].decided_by == "policy" and steps[1].status == StepStatus.DONE
    assert {"gpt-4.1", "gpt-4.1-mini"} <= session.usage.by_model.keys()  # (and the embeddings' model)
    assert sum(u.cost_usd for u in session.usage.by_model.values()) == pytest.approx(session.usage.cost_usd)

    # --name and --continuous N of the command win for that session; --continuous alone takes
    # the profile's limit
    llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "ok"}))
    sid = await started(core, OWNER, 'goal --continuous --name "Scout" go')
    session = await core.store.get(sid)
    assert session is not None and session.ai_name == "Scout" and session.ai_role == "a careful poet"
    assert session.continuous_limit == 2
    # a session elsewhere takes the settings
    llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "ok"}))
    sid = await started(core, OWNER, "goal --continuous go", ELSEWHERE)
    session = await core.store.get(sid)
    assert session is not None and session.profile is None and session.ai_name == "AutoGPT"
    assert session.continuous_limit == core.settings.continuous_limit and session.budget_usd is None


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_an_admins_deny_wins_over_a_channels_allow(settings: Settings, llm: ScriptedLLM) -> None:
    async with started_core(settings, tool_policy={"delete_file": "deny"}) as (core, _):
        assert (
            await core.service.handle_text(ADMIN, PLACE, "profile set tool_policy delete_file=allow,*=allow")
        ).ok
        llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
        llm.script(
            "execution_reply",
            agent_reply("delete_file", {"filename": "x"}),
            agent_reply("finish", {"reason": "ok"}),
        )
        sid = await started(core, OWNER, "goal go")
        session = await core.store.get(sid) or await core.archive.get(sid)
        assert session is not None
        assert session.steps[0].status == StepStatus.INVALID
        assert "not allowed here (TOOL_POLICY)" in session.steps[0].notes[0]
        assert session.steps[1].decided_by == "policy"  # finish: allowed by the channel's *=allow


# ---------------------------------------------------------------------------- templates


async def finished_session(core: Core, llm: ScriptedLLM, goals: str = "write a poem; check it") -> str:
    llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "ok"}))
    sid = await started(core, OWNER, f"goal --continuous --name Poet {goals}")
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.FINISHED
    return sid


async def test_templates_save_run_list_delete(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    sid = await finished_session(core, llm)
    assert (await core.service.handle_text(OWNER, PLACE, "templates")).message.startswith("No templates yet")
    refused = await core.service.handle_text(STRANGER, ELSEWHERE, f"template save poems {sid}")
    assert not refused.ok and refused.message == f"No session {sid}."  # not hers, not her channel
    refused = await core.service.handle_text(STRANGER, PLACE, f"template save poems {sid}")
    assert not refused.ok and "Only the owner" in refused.message
    saved = await core.service.handle_text(OWNER, PLACE, f"template save Poems {sid}")
    assert saved.ok and "2 goals" in saved.message and "template run poems" in saved.message
    template = await core.store.get_template("test:T1:poems")
    assert template is not None and template.goals == ["write a poem", "check it"]
    assert template.ai_name == "Poet" and template.ai_role is None and template.source == sid

    # someone else cannot replace it; the owner and an admin can
    other = await finished_session(core, llm, "another")
    assert not (await core.service.handle_text(STRANGER, PLACE, f"template save poems {other}")).ok
    replaced = await core.service.handle_text(ADMIN, PLACE, f"template save poems {other}")
    assert replaced.ok and "(replaced)" in replaced.message
    assert not (await core.service.handle_text(OWNER, PLACE, f"template save poems {sid}")).ok  # root's now
    assert (await core.service.handle_text(ADMIN, PLACE, f"template save poems {sid}")).ok
    listing = await core.service.handle_text(STRANGER, PLACE, "templates")
    assert "poems  2 goals  by root  write a poem" in listing.message

    # run: a session with the template's goals and name, in the channel where it is typed
    llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "ok"}))
    run = await core.service.handle_text(
        STRANGER, PLACE.model_copy(update={"thread": "t1"}), "template run poems"
    )
    assert run.ok and run.session_id, run.message
    await core.runner.idle(10)
    session = await core.store.get(run.session_id)
    assert session is not None and session.goals == ["write a poem", "check it"] and session.ai_name == "Poet"
    assert session.owner == "U2" and chat.headers[-1].goals == ["write a poem", "check it"]
    assert not (await core.service.handle_text(OWNER, PLACE, "template run nope")).ok

    assert not (await core.service.handle_text(STRANGER, PLACE, "template delete poems")).ok
    assert not (await core.service.handle_text(OWNER, PLACE, "template delete poems")).ok  # root's
    assert (await core.service.handle_text(ADMIN, PLACE, "template delete poems")).ok
    assert await core.store.get_template("test:T1:poems") is None


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_template_save_in_a_sessions_thread_and_only_once_it_ended(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await started(core, OWNER, "goal look around; report")
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.AWAITING_APPROVAL
    thread = session.place  # the thread the session lives in
    early = await core.service.handle_text(OWNER, thread, "template save look")
    assert not early.ok and "once it has ended" in early.message
    assert (await core.service.handle_text(OWNER, thread, f"stop {sid}")).ok
    saved = await core.service.handle_text(OWNER, thread, "template save look")
    assert saved.ok and saved.session_id == sid
    nowhere = await core.service.handle_text(OWNER, PLACE, "template save look")
    assert not nowhere.ok and "Which session?" in nowhere.message


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_a_schedule_runs_a_template_as_it_is_then(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    sid = await finished_session(core, llm, "first goal")
    assert (await core.service.handle_text(OWNER, PLACE, f"template save daily {sid}")).ok
    assert not (await core.service.handle_text(OWNER, PLACE, 'schedule "every 2h" template nope')).ok
    made = await core.service.handle_text(OWNER, PLACE, 'schedule "every 2h" template daily')
    assert made.ok and "template daily" in made.message, made.message
    (schedule,) = await core.schedules.of("test:U1")
    assert schedule.template == "daily" and schedule.goals == ["first goal"]
    assert "template daily" in (await core.service.handle_text(OWNER, PLACE, "schedules")).message
    # the template changes; the next run takes it as it is then, with the channel's profile
    other = await finished_session(core, llm, "second goal; third goal")
    assert (await core.service.handle_text(OWNER, PLACE, f"template save daily {other}")).ok
    assert (await core.service.handle_text(ADMIN, PLACE, "profile set continuous_limit 4")).ok
    llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "ok"}))
    due = datetime.now(UTC) - timedelta(seconds=1)
    fired = await core.service.fire(schedule, due)
    assert fired is not None
    await core.runner.idle(10)
    run = await core.store.get(fired)
    assert run is not None and run.goals == ["second goal", "third goal"] and run.ai_name == "Poet"
    assert run.continuous_limit == 4 and run.schedule_id == schedule.id
    # the template is gone: the run has the goals the schedule was made with, and says so
    assert (await core.service.handle_text(OWNER, PLACE, "template delete daily")).ok
    llm.script("task_list", tasks_reply("a"), tasks_reply("a"))
    llm.script("execution_reply", agent_reply("finish", {"reason": "ok"}))
    current = await core.schedules.get(schedule.id)
    assert current is not None
    fired = await core.service.fire(current, due + timedelta(hours=2, seconds=-1))
    assert fired is not None
    await core.runner.idle(10)
    run = await core.store.get(fired)
    assert run is not None and run.goals == ["first goal"]
    notices = [v.text for v in chat.of(fired, "notice")]
    assert any("Template daily is gone" in n for n in notices), notices


# ---------------------------------------------------------------------------- check-config


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_check_config_lists_the_channel_profiles(core: Core, tmp_path: Path) -> None:
    data = core.settings.data_dir
    none = cli(tmp_path, "check-config", OPENAI_API_KEY="sk-x", DATA_DIR=str(tmp_path / "empty"))
    assert none.returncode == 0 and "# Channel profiles: none (no session store yet)" in none.stdout
    assert not (tmp_path / "empty").exists()  # check-config makes no store
    assert (await core.service.handle_text(ADMIN, PLACE, "profile set budget 0.5")).ok
    assert (await core.service.handle_text(ADMIN, ELSEWHERE, "profile set tool_policy web_search=allow")).ok
    proc = cli(tmp_path, "check-config", OPENAI_API_KEY="sk-x", DATA_DIR=str(data))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "# Channel profiles (2):" in lines
    assert "#   test:T1:C1: budget per session: $0.50" in lines
    assert "#   test:T1:C2: tool policy: web_search=allow" in lines


def test_check_config_says_when_the_store_cannot_be_read(tmp_path: Path) -> None:
    proc = cli(
        tmp_path, "check-config", OPENAI_API_KEY="sk-x", REDIS_URL="redis://:pw-for-redis@127.0.0.1:1/0"
    )
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("# Channel profiles"))
    assert "could not be read" in line and "pw-for-redis" not in proc.stdout


# ---------------------------------------------------------------------------- Slack and Discord


@pytest.mark.parametrize("store_kind", ["redis"])
async def test_profiles_in_slack_and_the_home_tab(settings: Settings, llm: ScriptedLLM) -> None:
    async with running_bot(settings) as bot:
        # Slack does not say who manages a channel: only bot admins change a profile there
        for user, text in (
            ("U1", "profile set budget 0.5"),
            ("UADMIN", "profile set budget 0.5"),
            ("UADMIN", 'profile set role "a <careful> poet"'),
            ("U1", "profile"),
        ):
            assert (await bot.send.command(text, user=user)).status == 200
            await bot.settle()
        refused, budget, _, shown = bot.api.responses[-4:]
        assert refused["text"].startswith("Only channel admins and bot admins")
        assert "Budget per session set to $0.50" in json.dumps(budget["blocks"])
        text = json.dumps(shown["blocks"], ensure_ascii=False)
        assert "*Profile of <#C1>*" in text and "a &lt;careful&gt; poet" in text
        assert "_gpt-4o (the setting)_" in text and "Last changed by <@UADMIN>" in text
        assert "Only channel admins and bot admins can change it." in text
        profile = await bot.c.store.get_profile("slack:T0TEST:C1")
        assert profile is not None and profile.budget_usd == 0.5 and profile.ai_role == "a <careful> poet"

        llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
        sid = await start_goal(bot, "goal look around")
        session = await bot.c.store.get(sid)
        assert session is not None and session.budget_usd == 0.5 and session.ai_role == "a <careful> poet"

        # a mention in the session's thread: `template save NAME` takes that thread's session
        await bot.send.command(f"stop {sid}")
        await bot.settle()
        mention = {
            "type": "app_mention",
            "user": "U1",
            "channel": "C1",
            "thread_ts": session.place.thread,
            "ts": "1700000000.000900",
            "text": "<@UBOT> template save looks",
            "event_ts": "1700000000.000900",
        }
        assert (await bot.send.event(mention)).status == 200
        await bot.settle()
        assert any("Template looks saved" in m for m in bot.api.ephemerals_to("U1")), bot.api.ephemerals_to(
            "U1"
        )
        assert await bot.c.store.get_template("slack:T0TEST:looks") is not None

        event = {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home", "event_ts": "1.2"}
        assert (await bot.send.event(event)).status == 200
        await bot.settle()
        home = json.dumps(bot.api.published[-1]["view"], ensure_ascii=False)
        assert "Channel profiles" in home and "*<#C1>*" in home and "budget per session: $0.50" in home


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_channel_managers_change_profiles_in_discord(settings: Settings, llm: ScriptedLLM) -> None:
    async with FakeDiscord() as api:
        bot = DiscordBot(settings, api, discord_settings(api))
        await bot.start()
        try:
            key = f"discord:{GUILD_ID}:{CHANNEL_ID}"
            # the guild's owner manages every channel (Discord says so); a member without Manage
            # Channels does not
            said = await api.say(DISCORD_STRANGER, "profile set name Scout")
            await bot.settle()
            (answer,) = replies(api, said)
            assert answer.content.startswith("Only channel admins and bot admins")
            said = await api.say(DISCORD_OWNER, "profile set name Scout")
            await bot.settle()
            (answer,) = replies(api, said)
            embed = answer.embeds[0]
            assert embed["title"] == "Profile of this channel"
            assert (
                "Agent name set to Scout" in embed["description"]
                and "**agent name** (`name`): Scout" in embed["description"]
            )
            used = await api.slash(DISCORD_OWNER, "autogpt", command="profile set continuous_limit 4")
            await used.answered()
            await bot.settle()
            assert used.ephemeral and used.original is not None
            assert "Continuous limit set to 4" in used.original.embeds[0]["description"]
            refused = await api.slash(DISCORD_STRANGER, "autogpt", command="profile unset name")
            await refused.answered()
            await bot.settle()
            assert refused.private_texts()[0].startswith("Only channel admins and bot admins")
            admin = await api.slash(DISCORD_ADMIN, "autogpt", command="profile unset continuous_limit")
            await admin.answered()
            await bot.settle()
            profile = await bot.c.store.get_profile(key)
            assert profile is not None and profile.ai_name == "Scout" and profile.continuous_limit is None
        finally:
            await bot.stop()
        assert api.problems() == []


def replies(api: FakeDiscord, said: DiscordMessage) -> list[DiscordMessage]:
    return [
        m
        for m in api.messages.values()
        if (m.current.get("message_reference") or {}).get("message_id") == str(said.id)
    ]


def test_the_profiles_memory_scope_and_policy_are_the_sessions() -> None:
    from bot.memory import scope_key
    from bot.models import ChannelProfile, Session
    from bot.profiles import apply, merged_policy, session_settings

    profile = ChannelProfile(
        key="test:T1:C1", platform="test", team="T1", channel="C1", memory_scope="user", fast_llm="m-fast"
    )
    fields = apply({"owner": "U1", "place": PLACE, "goals": ["g"], "ai_name": "Mine"}, profile)
    session = Session(id="k3f9qa", **fields)
    assert session.ai_name == "Mine" and session.profile is not None
    assert scope_key(session, "session") == "user:test:U1"  # the profile's, not MEMORY_SCOPE's
    assert (
        scope_key(Session(id="k3f9qa", owner="U1", place=PLACE, goals=["g"]), "session") == "session:k3f9qa"
    )
    settings = Settings(_env_file=None, tool_policy={"execute_shell": "deny", "demo__*": "deny", "*": "ask"})  # type: ignore[call-arg]
    words = {"execute_shell": "allow", "demo__x": "allow", "web_search": "allow", "*": "allow"}
    assert merged_policy(settings, words) == {
        "execute_shell": "deny",  # an admin's deny wins
        "demo__*": "deny",
        "demo__x": "deny",  # denied by the admin's pattern
        "web_search": "allow",
        "*": "allow",
    }
    assert session_settings(settings, session).fast_llm == "m-fast"
    plain = Session(id="k3f9qa", owner="U1", place=PLACE, goals=["g"])
    assert session_settings(settings, plain) is settings  # nothing to change: no copy
