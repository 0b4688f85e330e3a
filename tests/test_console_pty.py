"""`autogpt-bot` as a person meets it: a subprocess in a pseudo-terminal (pexpect) where a terminal
matters (Ctrl-C, the spinner, colours, a resume), and plain subprocesses for the rest: continuing a
session a limit paused, `list` and `stop`, a start the LLM does not answer, a session another
process still holds, what `--resume` says of an ended session, `.env` and the help, AutoGPT's
`--ai-settings`, and `run` with nothing to run.

Every run uses the SQLite store in its own temporary folder and the scripted LLM server."""

from __future__ import annotations

import io
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pexpect
import pytest

from adapters.console.platform import ConsoleRenderer
from bot.models import SessionState
from bot.presenter.views import SummaryView
from bot.store import make_store
from tests.conftest import make_settings
from tests.fakes.llm_server import Delay, ScriptedLLM, agent_reply
from tests.test_console_e2e import scripted_environ

EXIT_FINISHED, EXIT_ERROR, EXIT_CONFIG, EXIT_STOPPED, EXIT_LIMIT, EXIT_WAITING = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130
SESSION_LINE = re.compile(r"Session ([a-z0-9]{6}) \(")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CLOSED_PORT_URL = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there


def environ(tmp_path: Path, llm: ScriptedLLM, **extra: str) -> dict[str, str]:
    return scripted_environ(tmp_path, llm, llm_timeout=5, **extra)


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def session_id(self) -> str:
        m = SESSION_LINE.search(self.out)
        assert m, f"no session id in:\n{self.out}\n{self.err}"
        return m.group(1)


@pytest.fixture
def cli(tmp_path: Path, llm: ScriptedLLM) -> Callable[..., Run]:
    """`autogpt-bot ARGS` as a subprocess with `stdin` as its whole input (not a terminal)."""

    def run(*args: str, stdin: str = "", env: dict[str, str] | None = None, **extra: str) -> Run:
        proc = subprocess.run(
            [sys.executable, "-m", "adapters.cli", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
            env=env or environ(tmp_path, llm, **extra),
        )
        assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        return Run(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def terminal(tmp_path: Path, llm: ScriptedLLM) -> Iterator[Callable[..., pexpect.spawn]]:
    """`autogpt-bot ARGS` in a pseudo-terminal; closed (killed if need be) after the test."""
    children: list[pexpect.spawn] = []

    def spawn(*args: str, color: bool = False, **extra: str) -> pexpect.spawn:
        env = environ(tmp_path, llm, **extra)
        if color:
            env.pop("NO_COLOR", None)
        child = pexpect.spawn(
            sys.executable,
            ["-m", "adapters.cli", *args],
            cwd=str(tmp_path),
            env=env,
            encoding="utf-8",
            timeout=20,
            dimensions=(50, 200),
        )
        children.append(child)
        return child

    yield spawn
    for child in children:
        if child.isalive():
            child.kill(signal.SIGKILL)
        child.close(force=True)


def ended(child: pexpect.spawn, within: float = 10.0) -> tuple[int, str]:
    """Wait for the child to end; (exit code, everything it printed since the last expect)."""
    child.expect(pexpect.EOF, timeout=within)
    child.close()
    code = child.exitstatus if child.exitstatus is not None else 128 + (child.signalstatus or 0)
    return code, child.before


def plain(text: str) -> str:
    return ANSI.sub("", text).replace("\r", "")


# ---------------------------------------------------------------------------- in a terminal


def test_ctrl_c_at_a_prompt_exits_at_once_with_the_resume_command(terminal, llm: ScriptedLLM) -> None:
    """Item 3: input was read in a worker thread, so Ctrl-C waited for the next Enter."""
    llm.script("execution_reply", agent_reply("write_to_file", {"filename": "a.txt", "text": "x"}))
    child = terminal("console", "write a")
    child.expect("Input: ")
    sid = SESSION_LINE.search(plain(child.before)).group(1)  # type: ignore[union-attr]
    started = time.monotonic()
    child.sendcontrol("c")
    code, rest = ended(child, within=8)
    took = time.monotonic() - started
    text = plain(rest)
    assert code == EXIT_INTERRUPTED, text
    assert took < 5, f"Ctrl-C took {took:.1f} s"
    assert (
        f"Interrupted. Session {sid} is saved; continue it with: autogpt-bot console --resume {sid}" in text
    )
    assert "--resume ID" not in text and "Sessions are saved" not in text
    assert "Traceback" not in text


def test_ctrl_c_before_any_session_says_none_was_started(terminal) -> None:
    child = terminal("console")
    child.expect("Name your AI")
    child.sendcontrol("c")
    code, rest = ended(child, within=8)
    text = plain(rest)
    assert code == EXIT_INTERRUPTED, text
    assert "Interrupted. No session was started." in text
    assert "--resume" not in text and "Sessions are saved" not in text


def test_ctrl_c_right_after_approving_a_write_is_not_reported_interrupted(
    terminal, llm: ScriptedLLM, tmp_path: Path
) -> None:
    """Item 5: the command's result is recorded as soon as it returns, so a Ctrl-C at once after
    `y` leaves a recorded result, not an "Interrupted" step, for the next --resume."""
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "w.txt", "text": "written"}),
        Delay(3.0, agent_reply("finish", {"reason": "done"})),  # the think after the write is slow
        agent_reply("finish", {"reason": "done"}),
    )
    child = terminal("console", "write w")
    child.expect("Input: ")
    sid = SESSION_LINE.search(plain(child.before)).group(1)  # type: ignore[union-attr]
    child.send("y\r")
    # the approval is taken (the command runs, or has run): Ctrl-C at once
    child.expect(["Running write_to_file", "Thinking", "returned"])
    child.sendcontrol("c")
    code, rest = ended(child, within=8)
    assert code == EXIT_INTERRUPTED, plain(rest)
    assert (tmp_path / "data" / "workspaces" / sid / "w.txt").read_text() == "written"

    again = terminal("console", "--resume", sid)
    again.expect("Input: ")
    shown = plain(again.before)
    assert "Interrupted" not in shown, shown
    assert "NEXT ACTION: COMMAND = finish" in shown
    again.send("y\r")
    code, rest = ended(again)
    assert code == EXIT_FINISHED, plain(rest)
    assert "Interrupted" not in plain(rest)


def test_resume_after_a_limit_in_a_terminal(terminal, llm: ScriptedLLM, tmp_path: Path) -> None:
    """Item 1, as a person meets it: a continuous run stops at its limit (exit 4); --resume shows
    what was spent and asks; `y` gives one more allotment (the next step is proposed, with the
    spinner while it thinks and colours), `n` then stops it."""
    llm.script(
        "execution_reply",
        agent_reply("append_to_file", {"filename": "log.txt", "text": "1\n"}),
        agent_reply("append_to_file", {"filename": "log.txt", "text": "2\n"}),
        Delay(0.6, agent_reply("append_to_file", {"filename": "log.txt", "text": "3\n"})),
    )
    first = terminal("console", "--continuous", "--continuous-limit", "2", "count", color=True)
    code, out = ended(first, within=15)
    text = plain(out)
    assert code == EXIT_LIMIT, text
    sid = SESSION_LINE.search(text).group(1)  # type: ignore[union-attr]
    assert "continuous limit reached: 2 of 2 cycles used" in text
    assert "\x1b[" in out  # coloured on a terminal

    child = terminal("console", "--resume", sid, color=True)
    child.expect("one more allotment")
    shown = plain(child.before)
    assert f"Resuming session {sid} (paused)." in shown
    assert "Cycles: 2, spent $" in shown  # what was spent, before the choice
    child.expect("Input: ")
    child.send("y\r")
    child.expect("Input: ")
    asked = child.before
    assert "⠋" in asked or any(f in asked for f in "⠙⠹⠸⠼⠴⠦⠧⠇⠏"), "no spinner while thinking"
    assert "NEXT ACTION: COMMAND = append_to_file" in plain(asked)
    child.send("n\r")
    code, rest = ended(child)
    assert code == EXIT_STOPPED, plain(rest)
    assert (tmp_path / "data" / "workspaces" / sid / "log.txt").read_text() == "1\n2\n"
    assert len(llm.requests_of("execution_reply")) == 3


# ---------------------------------------------------------------------------- item 1: limits


def test_resume_with_continuous_limit_grants_that_many_more_cycles(cli, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        *[agent_reply("append_to_file", {"filename": "n.txt", "text": f"{i}\n"}) for i in range(6)],
    )
    first = cli("console", "--continuous", "--continuous-limit", "3", "count")
    assert first.code == EXIT_LIMIT, first.out + first.err
    sid = first.session_id
    assert "continuous limit reached: 3 of 3 cycles used" in first.out

    second = cli("console", "--resume", sid, "--continuous", "--continuous-limit", "2")
    assert second.code == EXIT_LIMIT, second.out + second.err
    assert "Cycles: 3, spent $" in second.out  # what was spent, shown first
    assert f"Session {sid} resumed continuously." in second.out
    assert "continuous limit reached: 5 of 5 cycles used" in second.out
    assert len(llm.requests_of("execution_reply")) == 5


def test_resume_after_the_budget_with_y_goes_on(cli, llm: ScriptedLLM) -> None:
    prices = json.dumps({"gpt-4o": [4.0, 4.0], "gpt-4o-mini": [0.0, 0.0]})
    llm.script(
        "execution_reply",
        *[agent_reply("append_to_file", {"filename": "b.txt", "text": f"{i}\n"}) for i in range(8)],
    )
    first = cli("console", "--continuous", "spend", SESSION_BUDGET_USD="0.02", MODEL_PRICES=prices)
    assert first.code == EXIT_LIMIT, first.out + first.err
    assert "session budget reached" in first.out
    before = len(llm.requests_of("execution_reply"))

    second = cli("console", "--resume", first.session_id, stdin="y\nn\n", MODEL_PRICES=prices)
    assert second.code == EXIT_STOPPED, second.out + second.err
    assert "one more allotment" in second.out
    assert "NEXT ACTION: COMMAND = append_to_file" in second.out  # it went on
    assert len(llm.requests_of("execution_reply")) == before + 1


# ---------------------------------------------------------------------------- item 2: slots


@pytest.mark.slow  # nine runs of the command line
def test_list_stop_and_resume_n_free_the_slots(cli, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", *[agent_reply("write_to_file", {"filename": "s.txt", "text": "x"})] * 4)
    ids = []
    for goal in ("one", "two", "three"):
        r = cli("console", goal)
        assert r.code == EXIT_WAITING, r.out + r.err
        ids.append(r.session_id)
    refused = cli("console", "four")
    assert refused.code == EXIT_ERROR
    assert "You already have 3 open sessions" in refused.err

    listed = cli("list")
    assert listed.code == EXIT_FINISHED, listed.err
    for sid, goal in zip(ids, ("one", "two", "three"), strict=True):
        line = next(x for x in listed.out.splitlines() if x.startswith(sid))
        assert (
            "waiting for you" in line and goal in line and "$0." in line and re.search(r"\d+[smhd]\b", line)
        )
    assert "awaiting_approval" not in listed.out

    stopped = cli("stop", ids[0])
    assert stopped.code == EXIT_FINISHED, stopped.out + stopped.err
    assert f"Session {ids[0]} stopped" in stopped.out
    by_n = cli("console", "--resume", ids[1], stdin="n\n")
    assert by_n.code == EXIT_STOPPED, by_n.out + by_n.err

    listed = cli("list")
    states = {line.split()[0]: line for line in listed.out.splitlines()[1:]}
    assert "stopped" in states[ids[0]] and "stopped" in states[ids[1]]
    assert "1 open of at most 3" in listed.out
    assert cli("console", "four").code == EXIT_WAITING
    unknown = cli("stop", "zzzzzz")
    assert unknown.code == EXIT_ERROR and "No session zzzzzz" in unknown.err


# ---------------------------------------------------------------------------- items 2 and 8: no LLM


def test_a_start_the_llm_does_not_answer_is_an_error_and_keeps_no_slot(cli) -> None:
    r = cli("console", "a goal", OPENAI_BASE_URL=CLOSED_PORT_URL, LLM_TIMEOUT="3")
    assert r.code == EXIT_ERROR, r.out + r.err
    both = r.out + r.err
    assert both.count("connection refused") == 1, both  # the reason, once
    assert "Input:" not in r.out  # nothing to decide: it did not start
    listed = cli("list")
    assert f"{r.session_id}  stopped" in listed.out
    assert "0 open of at most 3" in listed.out


# ---------------------------------------------------------------------------- item 6: ended sessions


def test_resume_of_a_finished_session_says_so(cli, llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script(
        "execution_reply",
        agent_reply("write_to_file", {"filename": "done.txt", "text": "x"}),
        agent_reply("finish", {"reason": "all done"}),
    )
    first = cli("console", "finish it", stdin="y\ny\n")
    assert first.code == EXIT_FINISHED, first.out + first.err
    sid = first.session_id
    workspace = (tmp_path / "data" / "workspaces" / sid).resolve()
    assert f"Its files are in {workspace}" in first.out  # the end-of-session summary says where
    in_docker = Path("/.dockerenv").exists()
    assert ("docker compose cp autogpt-bot:" in first.out) == in_docker

    again = cli("console", "--resume", sid)
    assert again.code == EXIT_FINISHED, again.out + again.err
    assert again.out.strip() == f"Session {sid} has already finished (all done); nothing to resume."


def test_resume_says_the_state_in_words(cli, llm: ScriptedLLM) -> None:
    llm.script("execution_reply", agent_reply("write_to_file", {"filename": "a.txt", "text": "x"}))
    first = cli("console", "wait")
    assert first.code == EXIT_WAITING
    again = cli("console", "--resume", first.session_id)
    assert f"Resuming session {first.session_id} (waiting for you)." in again.out
    assert "awaiting_approval" not in again.out


def test_the_summary_says_how_to_copy_files_out_of_a_container(tmp_path: Path) -> None:
    out = io.StringIO()
    workspaces = tmp_path / "data" / "workspaces"
    (workspaces / "abc123").mkdir(parents=True)
    (workspaces / "abc123" / "f.txt").write_text("x")
    renderer = ConsoleRenderer(out, color=False, workspaces=workspaces, docker=True)
    renderer.summary(
        SummaryView(
            session_id="abc123",
            outcome="finished",
            reason="done",
            cycles=1,
            cost_usd=0.0,
            prompt_tokens=0,
            completion_tokens=0,
        )
    )
    text = out.getvalue()
    assert f"Its files are in {workspaces / 'abc123'}" in text
    assert f"docker compose cp autogpt-bot:{workspaces / 'abc123'} ./abc123" in text


# ---------------------------------------------------------------------------- item 7: a held lease


async def test_resume_of_a_session_a_dead_process_holds(cli, llm: ScriptedLLM, tmp_path: Path) -> None:
    llm.script("execution_reply", agent_reply("write_to_file", {"filename": "a.txt", "text": "x"}))
    first = cli("console", "held")
    assert first.code == EXIT_WAITING
    sid = first.session_id
    # a process approved it, took the lease, and died while running it
    store = make_store(make_settings(tmp_path / "data", llm))
    await store.open()
    try:
        await store.update(sid, lambda s: setattr(s, "state", SessionState.RUNNING))
        assert await store.acquire_lease(sid, "engine-that-died", 40)  # not renewed since (LEASE_SECONDS=60)
    finally:
        await store.close()
    again = cli("console", "--resume", sid, LEASE_SECONDS="60")
    assert again.code == EXIT_ERROR, again.out + again.err
    m = re.search(
        r"still held by a process that stopped answering; it will be free in (\d+) seconds", again.err
    )
    assert m, again.err
    assert 10 <= int(m.group(1)) <= 40
    assert "or is gone" not in again.err


# ---------------------------------------------------------------------------- item 9: the command line


def test_dotenv_path_is_said_and_unknown_keys_warned_once(cli, tmp_path: Path, llm: ScriptedLLM) -> None:
    none = cli("check-config")
    assert none.code == 0, none.err
    assert f"# Settings file: no .env file in {tmp_path.resolve()}" in none.out
    (tmp_path / ".env").write_text("SMART_LLM_MODEL=gpt-4\nNOT_A_SETTING=1\n")
    r = cli("check-config")
    assert r.code == 0, r.err
    assert f"# Settings file: read {(tmp_path / '.env').resolve()}" in r.out
    warnings = [x for x in r.err.splitlines() if x.startswith("Warning: ")]
    assert len(warnings) == 2, r.err
    assert any("SMART_LLM_MODEL" in x and "SMART_LLM" in x for x in warnings)
    assert any("NOT_A_SETTING" in x for x in warnings)
    listed = cli("list")
    assert listed.err.count("Warning: SMART_LLM_MODEL") == 1


def test_no_llm_message_says_which_env_file(tmp_path: Path, llm: ScriptedLLM, cli) -> None:
    env = environ(tmp_path, llm)
    del env["OPENAI_API_KEY"], env["OPENAI_BASE_URL"]
    r = cli("console", "goal", env=env)
    assert r.code == EXIT_CONFIG
    assert "No LLM is configured" in r.err
    assert f"no .env file in {tmp_path.resolve()}" in r.err
    assert len(r.err.strip().splitlines()) == 1


def test_version_help_and_usage(cli) -> None:
    version = cli("--version")
    assert version.code == 0
    assert version.out.strip() == f"autogpt-bot {metadata.version('autogpt-bot')}"
    top = cli("--help")
    assert "exit codes:" in top.out
    for code in ("0", "1", "2", "3", "4", "5", "130"):
        assert re.search(rf"^\s+{code}\s+\S", top.out, re.MULTILINE), code
    assert "list" in top.out and "stop" in top.out
    run = cli("run", "--help")
    assert "SLACK_BOT_TOKEN" in run.out and "DISCORD_BOT_TOKEN" in run.out and "console" in run.out
    empty = cli("console", "")
    assert empty.code == EXIT_CONFIG
    assert "a goal cannot be empty" in empty.err and "Name your AI" not in empty.out


def test_ai_settings_file(cli, llm: ScriptedLLM, tmp_path: Path) -> None:
    prices = json.dumps({"gpt-4o": [4.0, 4.0], "gpt-4o-mini": [0.0, 0.0]})
    (tmp_path / "ai_settings.yaml").write_text(
        "ai_name: Counter\nai_role: an AI that counts\nai_goals:\n  - count to ten\n  - stop at ten\n"
        "api_budget: 0.015\n"
    )
    llm.script(
        "execution_reply",
        *[agent_reply("append_to_file", {"filename": "c.txt", "text": f"{i}\n"}) for i in range(8)],
    )
    r = cli("console", "--ai-settings", "ai_settings.yaml", "--continuous", MODEL_PRICES=prices)
    assert r.code == EXIT_LIMIT, r.out + r.err
    assert "Counter is an AI that counts" in r.out
    assert "  1. count to ten\n  2. stop at ten" in r.out
    assert "spent of $0.0150" in r.out  # its api_budget is the session's budget


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("ai_goals: [unclosed\n", "is not valid YAML (line"),
        ("- a\n- b\n", "must be a mapping"),
        ("ai_goals: just one string\n", "ai_goals: Input should be a valid list"),
        ("api_budget: lots\n", "api_budget: Input should be a valid number"),
        ("ai_goal: [a]\n", "ai_goal: unknown key"),
    ],
)
def test_ai_settings_errors_are_one_line(cli, tmp_path: Path, content: str, said: str) -> None:
    (tmp_path / "ai.yaml").write_text(content)
    r = cli("console", "--ai-settings", "ai.yaml")
    assert r.code == EXIT_CONFIG, r.out + r.err
    assert len(r.err.strip().splitlines()) == 1 and said in r.err, r.err
    missing = cli("console", "--ai-settings", "nope.yaml")
    assert missing.code == EXIT_CONFIG and "Cannot read nope.yaml" in missing.err


# ---------------------------------------------------------------------------- item 10: nothing to run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_run_without_chat_or_terminal_says_what_to_configure_and_serves_unhealthy(
    tmp_path: Path, llm: ScriptedLLM
) -> None:
    port = free_port()
    env = environ(tmp_path, llm, OPS_PORT=str(port), OPS_HOST="127.0.0.1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "run"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        body: dict[str, Any] | None = None
        deadline = time.monotonic() + 15
        while body is None and time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
                pytest.fail("/healthz answered 200")
            except urllib.error.HTTPError as exc:
                assert exc.code == 503
                body = json.loads(exc.read())
            except OSError:
                time.sleep(0.1)
        assert body is not None, "no /healthz"
        assert body["status"] == "not configured"
        assert body["reason"].startswith("not configured: ") and "no chat adapter" in body["reason"]
        assert proc.poll() is None  # still serving
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "Name your AI" not in out
    paragraph = err.strip()
    assert "SLACK_BOT_TOKEN" in paragraph and "DISCORD_BOT_TOKEN" in paragraph and "/healthz" in paragraph
    assert "Traceback" not in err
