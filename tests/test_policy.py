"""The approval policy per command (TOOL_POLICY) and "Always allow <command> here": allow runs
without a human even step by step, deny is never offered, ask keeps today's behaviour; approvals
given in advance and continuous mode never pass a command with outside effects unless it is
allowed; a session's grant is recorded with who and when, shown in status, and an admin's deny
still wins. Real stores, the scripted LLM, the test chat."""

from __future__ import annotations

import asyncio
import json

import pytest

from bot import policy
from bot.core import Core
from bot.models import Actor, Place, Session, SessionState, StepStatus
from bot.settings import ConfigError, Settings, load_settings
from bot.tools import default_registry
from tests.conftest import started_core
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import ScriptedLLM, agent_reply

OWNER = "U1"
PLACE = Place(platform="test", channel="C1")
ME = Actor(platform="test", user_id=OWNER, name="owner")
STRANGER = Actor(platform="test", user_id="U2", name="stranger")


async def start(core: Core, text: str) -> str:
    outcome = await core.service.handle_text(ME, PLACE, text)
    assert outcome.ok and outcome.session_id, outcome.message
    await core.runner.idle(15)
    return outcome.session_id


async def stored(core: Core, sid: str) -> Session:
    session = await core.store.get(sid)
    assert session is not None
    return session


def write(name: str, text: str = "x") -> dict[str, object]:
    return agent_reply("write_to_file", {"filename": name, "text": text})


def offered_in_prompt(llm: ScriptedLLM) -> str:
    return json.dumps(llm.requests_of("execution_reply")[-1]["messages"])


# ---------------------------------------------------------------------------- the setting


def test_tool_policy_is_read_from_a_comma_list_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOL_POLICY", "web_search=allow, execute_shell=ASK,*=deny")
    assert load_settings(_env_file=None).tool_policy == {
        "web_search": "allow",
        "execute_shell": "ask",
        "*": "deny",
    }
    monkeypatch.setenv("TOOL_POLICY", '{"read_file": "allow"}')
    assert load_settings(_env_file=None).tool_policy == {"read_file": "allow"}
    for bad in ("web_search=maybe", "web_search", "=allow"):
        monkeypatch.setenv("TOOL_POLICY", bad)
        with pytest.raises(ConfigError, match="TOOL_POLICY"):
            load_settings(_env_file=None)


def test_a_commands_word() -> None:
    s = Settings(_env_file=None, tool_policy={"web_search": "allow", "delete_file": "deny", "*": "deny"})  # type: ignore[call-arg]
    assert policy.configured("web_search", s) == "allow"
    assert policy.configured("read_file", s) == "deny"  # from *
    assert policy.configured("finish", s) == "ask"  # always offered
    assert policy.configured("anything", Settings(_env_file=None)) == "ask"  # type: ignore[call-arg]
    names = {t.name for t in default_registry().available(s)}
    assert names == {"web_search", "finish"}


# ---------------------------------------------------------------------------- allow, deny, ask


async def test_deny_is_never_offered_and_refused_if_proposed(settings: Settings, llm: ScriptedLLM) -> None:
    async with started_core(settings, tool_policy={"delete_file": "deny"}) as (core, _chat):
        llm.script("execution_reply", agent_reply("delete_file", {"filename": "a.txt"}), write("a.txt"))
        sid = await start(core, "goal tidy up")
        prompt = offered_in_prompt(llm)
        assert "write_to_file" in prompt and "delete_file" not in json.dumps(
            llm.requests_of("execution_reply")[0]["messages"]
        )
        session = await stored(core, sid)
        first = session.steps[0]
        assert first.status == StepStatus.INVALID
        assert any("not allowed here (TOOL_POLICY)" in n for n in first.notes)
        assert session.pending_step is not None and session.pending_step.command.name == "write_to_file"


async def test_allow_runs_without_a_human_step_by_step(settings: Settings, llm: ScriptedLLM) -> None:
    async with started_core(settings, tool_policy={"write_to_file": "allow"}) as (core, chat):
        llm.script(
            "execution_reply",
            write("a.txt", "1"),
            write("b.txt", "2"),
            agent_reply("read_file", {"filename": "a.txt"}),
        )
        sid = await start(core, "goal write two files")
        session = await stored(core, sid)
        assert [s.status for s in session.steps] == [StepStatus.DONE, StepStatus.DONE, StepStatus.PENDING]
        assert [s.decided_by for s in session.steps[:2]] == ["policy", "policy"]
        assert session.steps[0].decision == "allowed by TOOL_POLICY"
        assert not session.continuous and session.state == SessionState.AWAITING_APPROVAL
        view = chat.step_message(sid, 1).current
        assert [o.action for o in view.options] == []  # no longer the last step
        assert [o.action for o in chat.step_message(sid, 3).current.options][:2] == ["approve", "approve_n"]


async def test_ask_in_continuous_mode_runs_commands_without_outside_effects(
    settings: Settings, llm: ScriptedLLM
) -> None:
    """`*=ask` is today's behaviour: a continuous run gives the approval in advance, except for a
    command with effects outside the session."""
    async with started_core(settings, tool_policy={"*": "ask"}, execute_local_commands=True) as (core, _):
        llm.script(
            "execution_reply", write("a.txt"), agent_reply("execute_shell", {"command_line": "cat a.txt"})
        )
        sid = await start(core, "goal --continuous 5 write and show")
        session = await stored(core, sid)
        assert session.steps[0].decided_by == "continuous" and session.steps[0].status == StepStatus.DONE
        waiting = session.pending_step
        assert waiting is not None and waiting.command.name == "execute_shell"
        assert any("effects outside the session" in n for n in waiting.notes)


async def test_allow_lets_continuous_mode_run_a_command_with_outside_effects(
    settings: Settings, llm: ScriptedLLM
) -> None:
    async with started_core(
        settings, tool_policy={"execute_shell": "allow"}, execute_local_commands=True
    ) as (core, _):
        llm.script(
            "execution_reply",
            write("a.txt", "hello"),
            agent_reply("execute_shell", {"command_line": "cat a.txt"}),
            agent_reply("finish", {"reason": "shown"}),
        )
        sid = await start(core, "goal --continuous 5 write and show")
        session = await stored(core, sid)
        assert session.state == SessionState.FINISHED
        assert session.steps[1].decided_by == "policy" and "hello" in (session.steps[1].result or "")


async def test_approve_next_n_does_not_pass_an_asking_command_with_outside_effects(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    core.settings.execute_local_commands = True
    llm.script(
        "execution_reply",
        write("a.txt"),
        write("b.txt"),
        agent_reply("execute_shell", {"command_line": "ls"}),
    )
    sid = await start(core, "goal write and list")
    assert (await chat.press(core.service, sid, 1, "approve_n", OWNER)).ok
    await core.runner.idle(15)
    session = await stored(core, sid)
    assert [s.decided_by for s in session.steps[:2]] == [OWNER, "auto"]
    assert session.pending_step is not None and session.pending_step.command.name == "execute_shell"
    assert session.approvals_left > 0  # kept for the steps after it


# ---------------------------------------------------------------------------- always allow here


async def test_always_allow_here(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        write("a.txt", "1"),
        write("b.txt", "2"),
        agent_reply("read_file", {"filename": "a.txt"}),
    )
    sid = await start(core, "goal write files")
    labels = [o.label for o in chat.step_message(sid, 1).view.options]
    assert "Always allow write_to_file here" in labels

    # only the owner (or an admin) may
    refused = await chat.press(core.service, sid, 1, "allow_tool", STRANGER.user_id)
    assert not refused.ok and "Only owner or an admin" in refused.message
    assert (await stored(core, sid)).grants == []

    outcome = await chat.press(core.service, sid, 1, "allow_tool", OWNER)
    assert outcome.ok and "write_to_file now runs without asking" in outcome.message
    await core.runner.idle(15)
    session = await stored(core, sid)
    [grant] = session.grants
    assert grant.tool == "write_to_file" and grant.by == OWNER and grant.at is not None
    assert session.steps[0].decision == "approved, and always allowed write_to_file here"
    second = session.steps[1]
    assert second.decided_by == "policy" and second.decision == f"always allowed here by {OWNER}"
    assert second.status == StepStatus.DONE
    waiting = session.pending_step
    assert waiting is not None and waiting.command.name == "read_file"  # another command still asks

    status = await core.service.handle_text(ME, PLACE, f"status {sid}")
    assert f"Always allowed here: write_to_file (by {OWNER}, " in status.message
    # the grant is this session's only
    llm.script("execution_reply", write("c.txt"))
    other = await start(core, "goal another")
    assert (await stored(core, other)).pending_step is not None


async def test_typed_allow_names_the_waiting_command(core: Core, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", write("a.txt"), agent_reply("finish"))
    sid = await start(core, "goal write")
    wrong = await core.service.handle_text(ME, PLACE, f"allow {sid} execute_shell")
    assert not wrong.ok and "proposes write_to_file, not execute_shell" in wrong.message
    right = await core.service.handle_text(ME, PLACE, f"allow {sid} write_to_file")
    assert right.ok, right.message
    await core.runner.idle(15)
    session = await stored(core, sid)
    assert [g.tool for g in session.grants] == ["write_to_file"]
    finish = session.pending_step
    assert finish is not None and finish.command.name == "finish"
    refused = await core.service.handle_text(ME, PLACE, f"allow {sid}")
    assert not refused.ok and "finish cannot be always allowed" in refused.message


async def test_two_always_allow_clicks_grant_once(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", write("a.txt"), agent_reply("finish"))
    sid = await start(core, "goal write")
    first, second = await asyncio.gather(
        chat.press(core.service, sid, 1, "allow_tool", OWNER),
        chat.press(core.service, sid, 1, "allow_tool", OWNER),
    )
    assert sorted([first.ok, second.ok]) == [False, True]
    assert "already decided" in (second.message if first.ok else first.message)
    await core.runner.idle(15)
    assert len((await stored(core, sid)).grants) == 1


async def test_an_admins_deny_wins_over_a_grant(settings: Settings, llm: ScriptedLLM) -> None:
    async with started_core(settings) as (core, chat):
        llm.script("execution_reply", write("a.txt"))
        sid = await start(core, "goal write")
        assert (await chat.press(core.service, sid, 1, "allow_tool", OWNER)).ok
        await core.runner.idle(15)
    async with started_core(settings, tool_policy={"write_to_file": "deny"}) as (core, _):
        session = await stored(core, sid)
        assert [g.tool for g in session.grants] == ["write_to_file"]
        assert policy.word_for("write_to_file", core.settings, session) == "deny"
        assert policy.word_for("write_to_file", settings, session) == "allow"


async def test_the_finish_step_offers_no_always_allow(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("finish"))
    sid = await start(core, "goal nothing")
    assert "allow_tool" not in [o.action for o in chat.step_message(sid, 1).view.options]


# ---------------------------------------------------------------------------- what admins see


async def test_help_policy_shows_the_effective_policy(settings: Settings) -> None:
    async with started_core(
        settings, tool_policy={"web_search": "allow", "delete_file": "deny", "nonsense": "ask"}
    ) as (core, _):
        text = (await core.service.handle_text(ME, PLACE, "help policy")).message
    assert "TOOL_POLICY = web_search=allow,delete_file=deny,nonsense=ask" in text
    assert "  web_search: allow" in text and "  delete_file: deny" in text and "  read_file: ask" in text
    assert "Names in TOOL_POLICY that are no command: nonsense" in text
