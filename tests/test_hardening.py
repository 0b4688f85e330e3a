"""Hardening of the core, each test a defect an attack run found: approvals in advance that
covered a shell command, commands that saw the bot's keys, a provider's error that showed the key,
sessions shown to strangers, files and stored steps without bounds, server paths in tool errors.
Real stores, the scripted LLM (the real openai client), the test chat platform."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bot.core import Core
from bot.models import Actor, Place, Session, SessionState, StepStatus
from bot.settings import Settings
from tests.conftest import started_core
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import Error, ScriptedLLM, agent_reply

OWNER = "U1"
PLACE = Place(platform="test", channel="C1")
ME = Actor(platform="test", user_id=OWNER, name="owner")
KEY = "sk-test-secret"  # tests/conftest.py make_settings


async def start(core: Core, text: str, actor: Actor = ME, place: Place = PLACE) -> str:
    outcome = await core.service.handle_text(actor, place, text)
    assert outcome.ok and outcome.session_id, outcome.message
    await core.runner.idle(15)
    return outcome.session_id


async def stored(core: Core, sid: str) -> Session:
    session = await core.store.get(sid)
    assert session is not None
    return session


def chat_text(chat: TestPlatform) -> str:
    return json.dumps(
        [
            [m.view.model_dump(mode="json"), *[e.model_dump(mode="json") for e in m.edits]]
            for m in chat.messages
        ]
    )


# ---------------------------------------------------------------------------- approvals


async def test_approve_next_n_does_not_cover_a_command_with_outside_effects(
    llm: ScriptedLLM, settings: Settings
) -> None:
    async with started_core(settings, execute_local_commands=True) as (core, chat):
        llm.script(
            "execution_reply",
            agent_reply("write_to_file", {"filename": "a.txt", "text": "a"}),
            agent_reply("execute_shell", {"command_line": "cat a.txt"}),
            agent_reply("append_to_file", {"filename": "a.txt", "text": "b"}),
            agent_reply("finish"),
        )
        sid = await start(core, "goal write and read back")
        assert (await chat.press(core.service, sid, 1, "approve_n", OWNER)).ok  # this and the next 4
        await core.runner.idle(15)
        session = await stored(core, sid)
        assert session.state == SessionState.AWAITING_APPROVAL, (session.state, session.reason)
        waiting = session.pending_step
        assert waiting is not None and waiting.no == 2 and waiting.command.name == "execute_shell"
        assert any("approvals given in advance do not cover it" in n for n in waiting.notes)
        view = chat.steps(sid)[1]
        assert view.status == "pending" and "Waiting for a human" in (view.note or "")
        assert not (core.settings.data_dir / "workspaces" / sid / "a.txt").read_text().endswith("b")
        # the owner approves this step; the approvals given in advance still cover the rest
        assert (await chat.press(core.service, sid, 2, "approve", OWNER)).ok
        await core.runner.idle(15)
        session = await stored(core, sid)
        assert session.state == SessionState.FINISHED, (session.state, session.reason)
        assert [s.decided_by for s in session.steps[2:]] == ["auto", "auto"]
        assert (core.settings.data_dir / "workspaces" / sid / "a.txt").read_text() == "ab"


# ---------------------------------------------------------------------------- secrets


async def test_commands_the_agent_runs_see_no_setting_of_the_bot(
    llm: ScriptedLLM, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-from-the-environment")
    monkeypatch.setenv("TOOL_VAR", "allowed-value")
    monkeypatch.setenv("OTHER_VAR", "not-listed")
    async with started_core(
        settings,
        execute_local_commands=True,
        tool_policy={"execute_shell": "allow"},
        shell_env_allowlist=["TOOL_VAR", "SLACK_BOT_TOKEN"],  # a setting of the bot is never passed
    ) as (core, _chat):
        llm.script(
            "execution_reply", agent_reply("execute_shell", {"command_line": "env"}), agent_reply("finish")
        )
        sid = await start(core, "goal --continuous 3 show the environment")
        session = await stored(core, sid)
        result = session.steps[0].result or ""
        names = {line.split("=", 1)[0] for line in result.splitlines()[1:] if "=" in line}
        assert names <= {"PATH", "HOME", "LANG", "TMPDIR", "TOOL_VAR", "PWD", "SHLVL", "_"}, names
        assert "HOME=/workspace" in result and "TOOL_VAR=allowed-value" in result
        assert "xoxb-from-the-environment" not in result and "OTHER_VAR" not in result and KEY not in result


async def test_a_provider_error_that_echoes_the_key_is_redacted_everywhere(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("task_list", Error(400, f"Incorrect API key provided: {KEY}. Find your key at ..."))
    sid = await start(core, "goal anything")
    session = await stored(core, sid)
    assert session.state == SessionState.PAUSED
    assert "[redacted OPENAI_API_KEY]" in (session.reason or "") and KEY not in (session.reason or "")
    status = await core.service.handle_text(ME, PLACE, f"status {sid}")
    assert "[redacted OPENAI_API_KEY]" in status.message and KEY not in status.message
    assert KEY not in chat_text(chat) and "[redacted OPENAI_API_KEY]" in chat_text(chat)


# ---------------------------------------------------------------------------- privacy


async def test_a_session_is_shown_only_to_those_who_may_see_it(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply", agent_reply("write_to_file", {"filename": "plan.txt", "text": "secret plan"})
    )
    sid = await start(core, "goal draft the secret merger plan")
    unknown = "zzzzzz"
    stranger = Actor(platform="test", user_id="U9", name="stranger")
    elsewhere = Place(platform="test", channel="C9")
    # a stranger in another channel: the same answer as for an id that does not exist
    for command in ("status {}", "stop {}", "approve {}", "feedback {} do it", "pause {}", "resume {}"):
        probe = await core.service.handle_text(stranger, elsewhere, command.format(sid))
        missing = await core.service.handle_text(stranger, elsewhere, command.format(unknown))
        assert probe.message == missing.message.replace(unknown, sid), (command, probe.message)
        assert "merger" not in probe.message and "write_to_file" not in probe.message
    assert (await stored(core, sid)).state == SessionState.AWAITING_APPROVAL  # nothing changed
    # anyone in the session's own channel can read its thread anyway: status shows it
    here = await core.service.handle_text(stranger, PLACE, f"status {sid}")
    assert here.ok and "merger" in here.message
    refused = await core.service.handle_text(stranger, PLACE, f"stop {sid}")
    assert not refused.ok and "Only owner or an admin" in refused.message
    # the owner and an admin, from anywhere
    for actor in (ME, Actor(platform="test", user_id="U8", is_admin=True)):
        seen = await core.service.handle_text(actor, elsewhere, f"status {sid}")
        assert seen.ok and "merger" in seen.message and "plan.txt" in seen.message


# ---------------------------------------------------------------------------- bounds


async def test_file_writes_are_capped_per_file_and_per_workspace(
    llm: ScriptedLLM, settings: Settings
) -> None:
    async with started_core(settings, max_file_bytes=2048, workspace_quota_mb=5000 / 1024 / 1024) as (
        core,
        _,
    ):
        llm.script(
            "execution_reply",
            agent_reply("write_to_file", {"filename": "big.txt", "text": "x" * 3000}),
            agent_reply("write_to_file", {"filename": "a.txt", "text": "a" * 2000}),
            agent_reply("append_to_file", {"filename": "a.txt", "text": "a" * 100}),
            agent_reply("write_to_file", {"filename": "b.txt", "text": "b" * 2000}),
            agent_reply("write_to_file", {"filename": "c.txt", "text": "c" * 2000}),
            agent_reply("finish"),
        )
        sid = await start(core, "goal --continuous 10 fill the disk")
        session = await stored(core, sid)
        results = [s.result or "" for s in session.steps[:5]]
        assert "MAX_FILE_BYTES" in results[0] and "big.txt" in results[0]
        assert results[1].startswith("File a.txt written") and "MAX_FILE_BYTES" in results[2]
        assert results[3].startswith("File b.txt written") and "WORKSPACE_QUOTA_MB" in results[4]
        workspace = core.settings.data_dir / "workspaces" / sid
        assert sorted(p.name for p in workspace.iterdir() if p.is_file()) == ["a.txt", "b.txt"]
        assert (workspace / "a.txt").stat().st_size == 2000


async def test_long_arguments_and_results_live_in_files_not_in_the_session(
    llm: ScriptedLLM, settings: Settings
) -> None:
    big = "".join(f"line {i}\n" for i in range(40_000))  # 348 kB
    async with started_core(settings, session_budget_usd=100.0) as (core, _chat):
        llm.script(
            "execution_reply",
            agent_reply("write_to_file", {"filename": "big.txt", "text": big}),
            agent_reply("read_file", {"filename": "big.txt"}),
            agent_reply("list_files", {"directory": "."}),
            agent_reply("finish"),
        )
        sid = await start(core, "goal --continuous 5 copy a long text")
        session = await stored(core, sid)
        assert session.state == SessionState.FINISHED, session.reason
        workspace = core.settings.data_dir / "workspaces" / sid
        assert (workspace / "big.txt").read_text() == big  # the command ran with the whole text
        write, read = session.steps[0], session.steps[1]
        assert write.args_file == ".autogpt/step-1-args.json"
        assert len(json.dumps(write.command.args)) < core.settings.max_args_chars + 200
        assert any("used whole from .autogpt/step-1-args.json" in n for n in write.notes)
        assert read.result is not None and len(read.result) < core.settings.max_result_chars + 200
        assert ".autogpt/step-2-result.txt" in read.result
        assert (workspace / ".autogpt" / "step-2-result.txt").read_text() == big
        assert await core.store.stored_bytes(sid) < 60_000
        assert session.steps[2].result == "big.txt"  # the engine's own files are not listed


def server_paths(data_dir: Path) -> set[str]:
    return {str(data_dir), os.path.realpath(data_dir), "/tmp/"}


async def test_tool_errors_name_paths_relative_to_the_workspace(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "f.txt", "text": "x"}),
        agent_reply("write_to_file", {"filename": "f.txt/g.txt", "text": "y"}),  # under a file
        agent_reply("write_to_file", {"filename": ".", "text": "z"}),  # the workspace itself
        agent_reply("finish"),
    )
    sid = await start(core, "goal --continuous 5 write in odd places")
    session = await stored(core, sid)
    errors = [s.result or "" for s in session.steps[1:3]]
    assert all(e.startswith("Error") for e in errors), errors
    assert "File exists: f.txt" in errors[0] and "is a directory" in errors[1]
    roots = server_paths(core.settings.data_dir)
    seen = [*errors, chat_text(chat), json.dumps(llm.requests_of("execution_reply"))]
    for text in seen:
        for root in roots:
            assert root not in text, (root, text[:300])
    assert all(s.status == StepStatus.DONE for s in session.steps[:3])


async def test_feedback_over_the_size_limit_is_refused_where_it_was_given(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    llm.script("execution_reply", agent_reply("list_files", {"directory": "."}))
    sid = await start(core, "goal look around")
    outcome = await chat.press(core.service, sid, 1, "feedback", OWNER, text="no " * 3000)
    assert not outcome.ok and "9,000 characters long; the limit is 4,000" in outcome.message
    session = await stored(core, sid)
    assert session.pending_step is not None and session.pending_step.no == 1  # nothing changed


async def test_help_on_one_command_is_that_commands_help(core: Core) -> None:
    from bot.grammar import USAGE, help_text

    one = await core.service.handle_text(ME, PLACE, "help goal")
    assert one.ok and one.message == help_text("goal") and one.message != USAGE
    assert one.message.startswith("goal ")
    everything = await core.service.handle_text(ME, PLACE, "help")
    assert everything.message == USAGE
