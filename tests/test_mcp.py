"""MCP tool servers (MCP_SERVERS, MCP_CONFIG, bot/mcp_servers.py) against a local server written
with the SDK's server side (tests/fakes/mcp_server.py): a real stdio subprocess the bot starts
(in bubblewrap too), and a real streamable HTTP server on 127.0.0.1. Sessions run through the
real core, the scripted LLM and the test chat; the store is SQLite."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bot import policy
from bot.core import Core
from bot.mcp_servers import McpTool
from bot.models import Place, Session, SessionState, StepStatus
from bot.presenter.views import NoticeView
from bot.settings import ConfigError, Settings, load_settings
from bot.tools import ToolContext, ToolError
from bot.tools.files import STEP_FILES, workspace_of
from tests.conftest import make_settings
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.test_cli import cli
from tests.test_console_e2e import scripted_environ
from tests.test_policy import ME, PLACE

FAKE = Path(__file__).resolve().parent / "fakes" / "mcp_server.py"
TOKEN = "mcp-header-secret-5c2e9a71"
ENV_SECRET = "mcp-env-secret-8d1f3b"


def stdio(name: str = "demo", *args: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "command": sys.executable, "args": [str(FAKE), *args], **more}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HttpServer:
    """The fake server as a streamable HTTP server on 127.0.0.1, in a subprocess of its own."""

    def __init__(self, token: str) -> None:
        self.port = free_port()
        self.token = token
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(FAKE), "--http", str(self.port), "--token", self.token],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("the fake MCP HTTP server did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@pytest.fixture(scope="module")
def http_server() -> Iterator[HttpServer]:
    server = HttpServer(TOKEN)
    server.start()
    yield server
    server.stop()


@asynccontextmanager
async def core_with(settings: Settings) -> AsyncIterator[tuple[Core, TestPlatform]]:
    core = await Core.start(settings)
    platform = TestPlatform()
    core.add_platform(platform)
    try:
        yield core, platform
    finally:
        await core.close()


async def start(core: Core, text: str) -> str:
    outcome = await core.service.handle_text(ME, PLACE, text)
    assert outcome.ok and outcome.session_id, outcome.message
    await core.runner.idle(20)
    return outcome.session_id


async def stored(core: Core, sid: str) -> Session:
    session = await core.store.get(sid) or await core.archive.get(sid)
    assert session is not None
    return session


def offered(core: Core) -> set[str]:
    return {t.name for t in core.tools.available(core.settings)}


def notices(chat: TestPlatform, sid: str) -> list[str]:
    return [v.text for v in chat.of(sid, "notice") if isinstance(v, NoticeView)]


async def eventually(check: Callable[[], bool], within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.05)


def context(settings: Settings) -> ToolContext:
    sid = uuid.uuid4().hex[:8]
    session = Session(id=sid, owner="U1", place=Place(platform="test", channel="C1"), goals=["x"])
    workspace = workspace_of(settings.data_dir, sid)
    workspace.mkdir(parents=True, exist_ok=True)
    return ToolContext(session=session, settings=settings, workspace=workspace)


# ---------------------------------------------------------------------------- the settings


def test_servers_from_json_and_from_an_mcp_servers_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "MCP_SERVERS",
        json.dumps(
            [
                {"name": "demo", "command": "python", "args": ["server.py"], "env": {"KEY": ENV_SECRET}},
                {
                    "name": "docs",
                    "url": "https://mcp.example/mcp",
                    "headers": {"Authorization": f"Bearer {TOKEN}"},
                },
            ]
        ),
    )
    file = tmp_path / "mcp.json"
    file.write_text(json.dumps({"mcpServers": {"files": {"command": "npx", "args": ["-y", "fs"]}}}))
    monkeypatch.setenv("MCP_CONFIG", str(file))
    s = load_settings(_env_file=None)
    assert [(x.name, x.command, x.url) for x in s.mcp_server_list()] == [
        ("demo", "python", None),
        ("docs", None, "https://mcp.example/mcp"),
        ("files", "npx", None),
    ]
    from bot.redact import Redactor
    from bot.settings import masked

    shown = masked(s)["MCP_SERVERS"]
    assert TOKEN not in shown and ENV_SECRET not in shown and "https://mcp.example/mcp" in shown
    redactor = Redactor.of(s)
    assert (
        redactor.text(f"got {TOKEN} and {ENV_SECRET}")
        == "got [redacted MCP_SERVERS] and [redacted MCP_SERVERS]"
    )

    for bad, said in (
        ('[{"name": "x"}]', "either command"),
        ('[{"name": "a b", "command": "c"}]', "MCP_SERVERS[0][name]"),
        ('[{"name": "x", "url": "ftp://h"}]', "http:// or https://"),
        ('[{"name": "x", "command": "c", "tyop": 1}]', "MCP_SERVERS[0][tyop]"),
        ('[{"name": "x", "command": "c"}, {"name": "x", "command": "d"}]', "x is given twice"),
    ):
        monkeypatch.setenv("MCP_SERVERS", bad)
        with pytest.raises(ConfigError, match="MCP_SERVERS") as err:
            load_settings(_env_file=None)
        assert said in str(err.value)
    monkeypatch.setenv("MCP_SERVERS", "[]")
    file.write_text(json.dumps({"mcpServers": {"old": {"type": "sse", "url": "https://h/sse"}}}))
    with pytest.raises(ConfigError, match=r"MCP_CONFIG.*SSE servers are not supported"):
        load_settings(_env_file=None)
    monkeypatch.setenv("MCP_CONFIG", str(tmp_path / "missing.json"))
    with pytest.raises(ConfigError, match=r"MCP_CONFIG.*cannot read"):
        load_settings(_env_file=None)


def test_policy_patterns_apply_by_server() -> None:
    s = Settings(  # type: ignore[call-arg]
        _env_file=None,
        tool_policy={"demo__*": "ask", "demo__echo": "allow", "demo__del*": "deny", "*": "allow"},
    )
    assert policy.configured("demo__echo", s) == "allow"  # its own entry wins
    assert policy.configured("demo__delete_item", s) == "deny"  # the longest pattern
    assert policy.configured("demo__add", s) == "ask"
    assert policy.configured("docs__add", s) == "allow"  # from *
    assert policy.configured("write_to_file", s) == "allow"


# ---------------------------------------------------------------------------- stdio, end to end


async def test_tools_are_offered_with_the_prefix_and_run_in_a_session(
    tmp_path: Path, llm: ScriptedLLM
) -> None:
    settings = make_settings(tmp_path, llm, mcp_servers=[stdio()], tool_policy={"demo__*": "ask"})
    async with core_with(settings) as (core, chat):
        names = offered(core)
        assert {"demo__echo", "demo__add", "demo__delete_item", "demo__crash"} <= names
        assert "write_to_file" in names  # the built-in tools stay
        echo = core.tools.get("demo__echo", settings)
        assert isinstance(echo, McpTool) and not echo.outside_effects and echo.remote == "echo"
        delete = core.tools.get("demo__delete_item", settings)
        assert delete is not None and delete.outside_effects  # destructive: outside effects
        slow = core.tools.get("demo__slow", settings)
        assert slow is not None and slow.outside_effects  # no readOnlyHint: outside effects too

        llm.script(
            "execution_reply",
            agent_reply("demo__echo", {"text": "hello"}),
            agent_reply("demo__add", {"a": "two"}),
            agent_reply("demo__picture"),
            agent_reply("finish", {"reason": "done"}),
        )
        sid = await start(core, "goal say hello")
        prompt = json.dumps(llm.requests_of("execution_reply")[0]["messages"])
        assert 'demo__echo: Say the text back, args: \\"text\\": \\"<string>\\"' in prompt
        assert (
            'demo__add: Add two whole numbers, args: \\"a\\": \\"<integer>\\", \\"b\\": \\"<integer>\\"'
            in prompt
        )
        for _ in range(4):
            session = await stored(core, sid)
            if session.state == SessionState.AWAITING_APPROVAL:
                waiting = session.pending_step
                assert waiting is not None
                assert (await chat.press(core.service, sid, waiting.no, "approve", ME.user_id)).ok
                await core.runner.idle(20)
        session = await stored(core, sid)
        assert session.state == SessionState.FINISHED, session.reason
        first, second, third = session.steps[:3]
        assert first.status == StepStatus.DONE and first.result == "echo: hello"
        # the arguments are checked against the tool's JSON schema before anyone is asked
        assert second.status == StepStatus.INVALID
        assert any(
            n.startswith(
                "Invalid arguments for demo__add: args: 'b' is a required property; a: 'two' is not of type"
            )
            and 'Expected: demo__add: Add two whole numbers, args: "a": "<integer>"' in n
            for n in second.notes
        ), second.notes
        assert third.result is not None and third.result.startswith("a red dot\n[image: image/png, about ")
        # the step's result is shown in the thread, and the next prompt has it
        assert any("echo: hello" in json.dumps(v.model_dump()) for v in chat.of(sid, "result"))
        assert "echo: hello" in json.dumps(llm.requests_of("execution_reply")[1]["messages"])

        # a channel's profile says which servers are on there: the others' tools are not offered
        quiet = Place(platform="test", channel="C-quiet")
        manager = ME.model_copy(update={"manages_channel": True})
        for servers, on in (("none", False), ("demo", True)):
            assert (await core.service.handle_text(manager, quiet, f"profile set mcp_servers {servers}")).ok
            llm.script("execution_reply", agent_reply("demo__echo", {"text": "hi"}))
            outcome = await core.service.handle_text(ME, quiet, "goal say hi")
            assert outcome.ok and outcome.session_id, outcome.message
            await core.runner.idle(20)
            prompt = json.dumps(llm.requests_of("execution_reply")[-1]["messages"])
            assert ("demo__echo: Say the text back" in prompt) is on
            step = (await stored(core, outcome.session_id)).steps[0]
            assert (step.status == StepStatus.PENDING) is on, step
            assert on or "not allowed here" in step.notes[0]


async def test_read_only_runs_in_continuous_mode_and_destructive_waits(
    tmp_path: Path, llm: ScriptedLLM
) -> None:
    """`ask` (the default) in continuous mode: a read-only tool runs unasked, a destructive one
    (outside effects) waits for a human."""
    settings = make_settings(tmp_path, llm, mcp_servers=[stdio()], tool_policy={"demo__del*": "ask"})
    async with core_with(settings) as (core, _chat):
        llm.script(
            "execution_reply",
            agent_reply("demo__echo", {"text": "one"}),
            agent_reply("demo__delete_item", {"name": "report"}),
        )
        sid = await start(core, "goal --continuous 5 tidy up")
        session = await stored(core, sid)
        first = session.steps[0]
        assert first.status == StepStatus.DONE and first.result == "echo: one"
        assert first.decided_by == "continuous"
        waiting = session.pending_step
        assert waiting is not None and waiting.command.name == "demo__delete_item"
        assert session.state == SessionState.AWAITING_APPROVAL
        assert any("effects outside the session" in n for n in waiting.notes), waiting.notes
        text = (await core.service.handle_text(ME, PLACE, "help policy")).message
        assert "  demo__delete_item*: ask (from demo__del*)" in text and "  demo__echo: ask\n" in text
        # a pattern that denies: never offered
        core.settings.tool_policy = {"demo__*": "deny"}
        assert not any(n.startswith("demo__") for n in offered(core))
        assert any(t.name == "demo__echo" for t in core.tools.all())


async def test_a_server_that_fails_to_start_is_off_and_the_bot_still_works(
    tmp_path: Path, llm: ScriptedLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(
        tmp_path,
        llm,
        mcp_servers=[stdio("broken", "--fail"), {"name": "ghost", "command": str(tmp_path / "nothing")}],
        tool_policy={"write_to_file": "allow"},
    )
    async with core_with(settings) as (core, _chat):
        lines = core.mcp.status_lines()
        assert lines == [
            "broken: off (it stopped; it said: cannot start: no configuration)",
            f"ghost: off (it cannot be started: {tmp_path / 'nothing'} is not found)",
        ]
        assert not any("__" in n for n in offered(core))
        llm.script(
            "execution_reply",
            agent_reply("write_to_file", {"filename": "a.txt", "text": "x"}),
            agent_reply("finish"),
        )
        sid = await start(core, "goal write a file")
        session = await stored(core, sid)
        assert session.steps[0].status == StepStatus.DONE
        await asyncio.sleep(1.3)  # it is tried again after a second: not logged again
    downs = [
        r for r in caplog.records if "MCP server broken" in r.getMessage() and r.levelno == logging.WARNING
    ]
    assert len(downs) == 1, [r.getMessage() for r in downs]
    assert "its tools are withdrawn until it is back" in downs[0].getMessage()


async def test_a_server_that_crashes_mid_call_is_withdrawn_said_once_and_back_after_restart(
    tmp_path: Path, llm: ScriptedLLM, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(tmp_path, llm, mcp_servers=[stdio()], tool_policy={"demo__*": "allow"})
    async with core_with(settings) as (core, chat):
        llm.script(
            "execution_reply",
            agent_reply("demo__crash"),
            agent_reply("demo__echo", {"text": "are you there"}),
            agent_reply("finish", {"reason": "gave up"}),
        )
        sid = await start(core, "goal --continuous 5 break it")
        session = await stored(core, sid)
        crashed, retried = session.steps[:2]
        assert crashed.result is not None and crashed.result.startswith(
            "Error: demo__crash did not finish: the MCP server demo is down (it stopped; it said: "
            "crashing on purpose during a call to demo__crash)"
        ), crashed.result
        assert retried.status == StepStatus.INVALID  # withdrawn: refused before it runs
        assert any("demo__echo is not available now: the MCP server demo is down" in n for n in retried.notes)
        said = [n for n in notices(chat, sid) if "withdrawn" in n]
        assert len(said) == 1 and "crashing on purpose" in said[0]
        assert said[0].startswith("The tools of MCP server demo (demo__*) are withdrawn until it is back: ")

        # the bot starts it again: its tools are back
        echo = core.tools.get("demo__echo", settings)
        assert echo is not None
        await eventually(lambda: echo.withdrawn() is None)
        assert "demo__echo" in offered(core)
        llm.script("execution_reply", agent_reply("demo__echo", {"text": "back"}), agent_reply("finish"))
        again = await start(core, "goal --continuous 5 try again")
        assert (await stored(core, again)).steps[0].result == "echo: back"
    messages = [r.getMessage() for r in caplog.records if "MCP server demo" in r.getMessage()]
    assert len([m for m in messages if "is down" in m]) == 1, messages
    assert any("is back" in m for m in messages)


async def test_a_call_that_times_out_is_a_tool_error(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(tmp_path, llm, mcp_servers=[stdio()], mcp_timeout_s=1.0)
    async with core_with(settings) as (core, _chat):
        tool = core.tools.get("demo__slow", settings)
        assert tool is not None
        started = time.monotonic()
        with pytest.raises(ToolError, match=r"demo__slow did not finish within 1 s \(MCP_TIMEOUT_S\)"):
            await tool.run(context(settings), tool.validate({"seconds": 10}))
        assert time.monotonic() - started < 5
        echo = core.tools.get("demo__echo", settings)
        assert echo is not None and echo.withdrawn() is None  # a slow call is no outage
        assert await echo.run(context(settings), {"text": "still here"}) == "echo: still here"


async def test_a_5_mb_result_is_cut(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(
        tmp_path, llm, mcp_servers=[stdio()], tool_policy={"demo__*": "allow"}, max_file_bytes=2 * 1024 * 1024
    )
    async with core_with(settings) as (core, _chat):
        llm.script("execution_reply", agent_reply("demo__big", {"megabytes": 5}), agent_reply("finish"))
        sid = await start(core, "goal fetch everything")
        session = await stored(core, sid)
        result = session.steps[0].result
        assert result is not None and len(result) < settings.max_result_chars + 300
        assert "[... cut: the result has " in result
        kept = workspace_of(settings.data_dir, sid) / STEP_FILES / "step-1-result.txt"
        whole = kept.read_text()
        assert len(whole) < 1024 * 1024 + 300  # MAX_FILE_BYTES / 2, and the note
        assert whole.endswith(
            "[... cut: demo__big returned 5,242,880 characters; only the first 1,048,576 are kept "
            "(MAX_FILE_BYTES / 2)]"
        )
        second = json.dumps(llm.requests_of("execution_reply")[1]["messages"])
        assert len(second) < 100_000


# ---------------------------------------------------------------------------- streamable HTTP


async def test_an_http_server_with_a_secret_header(
    tmp_path: Path, llm: ScriptedLLM, http_server: HttpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = make_settings(
        tmp_path,
        llm,
        mcp_servers=[
            {"name": "docs", "url": http_server.url, "headers": {"Authorization": f"Bearer {TOKEN}"}},
            {"name": "nokey", "url": http_server.url, "headers": {"Authorization": "Bearer wrong-token-123"}},
        ],
        tool_policy={"docs__*": "allow"},
    )
    async with core_with(settings) as (core, chat):
        lines = core.mcp.status_lines()
        assert lines[0].startswith("docs: on (9 tools: docs__echo, docs__add, ")
        assert lines[1] == "nokey: off (it answered HTTP 401 Unauthorized)"
        assert not any(n.startswith("nokey__") for n in offered(core))
        llm.script(
            "execution_reply",
            agent_reply("docs__echo", {"text": "over http"}),
            agent_reply("docs__whoami"),
            agent_reply("finish", {"reason": "done"}),
        )
        sid = await start(core, "goal --continuous 5 ask the docs server")
        session = await stored(core, sid)
        assert session.steps[0].result == "echo: over http"
        # the server echoes the header: the secret is redacted wherever it goes
        assert session.steps[1].result == "you sent: [redacted MCP_SERVERS]"
        shown = json.dumps([m.current.model_dump(mode="json") for m in chat.messages])
        assert "over http" in shown and TOKEN not in shown
        assert TOKEN not in json.dumps(llm.requests_of("execution_reply"))
        help_text = (await core.service.handle_text(ME, PLACE, "help policy")).message
        assert TOKEN not in help_text
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "nokey" in logged and TOKEN not in logged and "wrong-token-123" not in logged


@pytest.mark.slow
async def test_an_http_server_that_goes_away_comes_back(tmp_path: Path, llm: ScriptedLLM) -> None:
    server = HttpServer("another-token-77")
    server.start()
    try:
        settings = make_settings(
            tmp_path,
            llm,
            mcp_servers=[
                {"name": "docs", "url": server.url, "headers": {"Authorization": "Bearer another-token-77"}}
            ],
        )
        async with core_with(settings) as (core, _chat):
            echo = core.tools.get("docs__echo", settings)
            assert echo is not None and echo.withdrawn() is None
            server.stop()
            with pytest.raises(ToolError, match="docs__echo did not finish: the MCP server docs is down"):
                await echo.run(context(settings), {"text": "anyone?"})
            assert "docs__echo" not in offered(core)
            server.start()
            await eventually(lambda: echo.withdrawn() is None, within=20)
            assert await echo.run(context(settings), {"text": "again"}) == "echo: again"
    finally:
        server.stop()


# ---------------------------------------------------------------------------- the sandbox


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
async def test_mcp_sandbox_runs_a_stdio_server_in_bubblewrap(tmp_path: Path, llm: ScriptedLLM) -> None:
    folder = tmp_path / "mcp" / "boxed"  # DATA_DIR/mcp/NAME: the server's own folder
    folder.mkdir(parents=True)
    shutil.copy(FAKE, folder / "mcp_server.py")
    secret = tmp_path / "secret.txt"
    secret.write_text("the bot's own data")
    settings = make_settings(
        tmp_path,
        llm,
        mcp_sandbox=True,
        mcp_servers=[
            {
                "name": "boxed",
                "command": sys.executable,
                "args": ["mcp_server.py"],
                "env": {"GREETING": ENV_SECRET},
            },
            {"name": "elsewhere", "command": sys.executable, "args": ["x.py"], "cwd": str(tmp_path)},
        ],
    )
    async with core_with(settings) as (core, _chat):
        boxed, elsewhere = core.mcp.status_lines()
        assert boxed.startswith("boxed: on (9 tools"), boxed
        assert elsewhere == (
            "elsewhere: off (cwd cannot be used with MCP_SANDBOX: put the server's files in "
            "DATA_DIR/mcp/NAME)"
        )
        where = core.tools.get("boxed__where", settings)
        assert where is not None
        out = await where.run(context(settings), {"secret_file": str(secret)})
        assert isinstance(out, str)
        assert "cwd=/workspace uid=1000 file=cannot read it (No such file or directory)" in out, out
        env = out.split("env=", 1)[1]
        assert "GREETING" in env and "OPENAI_API_KEY" not in env and "PYTEST_CURRENT_TEST" not in env
        mine = await core.tools.get("boxed__where", settings).run(
            context(settings), {"secret_file": "mcp_server.py"}
        )  # type: ignore[union-attr]
        assert "MCPServer" in str(mine)  # its own folder is its workspace


# ---------------------------------------------------------------------------- check-config and the console


@pytest.mark.slow
def test_check_config_lists_each_server(tmp_path: Path) -> None:
    servers = [
        stdio(),
        stdio("broken", "--fail"),
        {"name": "docs", "url": "http://127.0.0.1:9/mcp", "headers": {"Authorization": f"Bearer {TOKEN}"}},
    ]
    proc = cli(
        tmp_path,
        "check-config",
        MCP_SERVERS=json.dumps(servers),
        TOOL_POLICY="demo__*=ask",
        MCP_TIMEOUT_S="5",
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "#   MCP tool servers:" in out
    assert "#     demo: on (9 tools: demo__echo, demo__add, demo__delete_item, " in out
    assert "#     broken: off (it stopped; it said: cannot start: no configuration)" in out
    assert "#     docs: off (" in out
    assert "#   demo__delete_item*: ask (from demo__*)" in out and "#   demo__echo: ask (from demo__*)" in out
    assert TOKEN not in out + proc.stderr


@pytest.mark.slow
def test_the_console_gets_mcp_tools(tmp_path: Path, llm: ScriptedLLM) -> None:
    llm.script(
        "execution_reply",
        agent_reply("demo__add", {"a": 2, "b": 3}),
        agent_reply("finish", {"reason": "added"}),
    )
    env = scripted_environ(tmp_path, llm, MCP_SERVERS=json.dumps([stdio()]))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "adapters.cli",
            "console",
            "--continuous",
            "--continuous-limit",
            "3",
            "add two numbers",
        ],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "NEXT ACTION: COMMAND = demo__add" in proc.stdout
    assert "SYSTEM: Command demo__add returned: 5" in proc.stdout
