"""Attacks on the sandbox from inside, for every backend this machine has: bubblewrap always (CI
installs it; a machine without it fails here, it does not skip), Docker when an engine answers
(skipped with the reason otherwise).

Each attack runs through the real tool (`execute_shell`, `execute_python_code`) with the bot's
secrets in its settings and in the process environment, and must be contained: it ends with a
result the agent can read, and the bot goes on unaffected.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from bot import sandbox
from bot.models import Place, Session
from bot.sandbox.base import NOBODY, SandboxError
from bot.settings import Settings
from bot.tools import ToolContext, ToolOutput, default_registry
from bot.tools.files import workspace_of

KEY = "sk-attack-test-0123456789abcdef"
BOT_TOKEN = "xoxb-attack-test-token-0123456789"
REDIS_PASSWORD = "redis-pw-attack-0123456789"
SECRETS = (KEY, BOT_TOKEN, REDIS_PASSWORD)
TIMEOUT_S = 2.0
PROCESSES = 48


@pytest.fixture(params=["bwrap", "docker"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    name = str(request.param)
    sandbox.forget()
    if name == "docker":
        from bot.sandbox.docker import DockerSandbox

        try:
            DockerSandbox.connect(Settings(data_dir=tmp_path, sandbox="docker"))
        except SandboxError as exc:
            pytest.skip(f"no Docker engine answers here ({exc})")
    yield name
    sandbox.forget()


@pytest.fixture
def settings(tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    # the bot's secrets, where a careless sandbox would pass them on: its environment...
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0")
    # ... and its settings
    s = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        execute_local_commands=True,
        sandbox=backend,  # type: ignore[arg-type]
        sandbox_timeout_s=TIMEOUT_S,
        sandbox_max_processes=PROCESSES,
        sandbox_memory_mb=512,
        max_file_bytes=1024 * 1024,
    )
    assert s.openai_api_key is not None and s.openai_api_key.get_secret_value() == KEY
    (s.data_dir / "store.sqlite3").parent.mkdir(parents=True)
    (s.data_dir / "store.sqlite3").write_text(f"the bot's own data {KEY}")
    return s


def context(settings: Settings, session_id: str = "attack", step_no: int = 1) -> ToolContext:
    session = Session(id=session_id, owner="U1", place=Place(platform="test", channel="C1"), goals=["x"])
    workspace = workspace_of(settings.data_dir, session_id)
    workspace.mkdir(parents=True, exist_ok=True)
    return ToolContext(session=session, settings=settings, workspace=workspace, step_no=step_no)


async def run(settings: Settings, tool: str, **args: Any) -> ToolOutput:
    found = default_registry().get(tool, settings)
    assert found is not None, f"{tool} is not offered: {sandbox.select(settings).reason}"
    out = await found.run(context(settings), found.validate(args))
    assert isinstance(out, ToolOutput)
    for secret in SECRETS:
        assert secret not in out.text and all(secret.encode() not in f.content for f in out.files)
    return out


def shell(settings: Settings, command: str) -> Any:
    return run(settings, "execute_shell", command_line=command)


# ---------------------------------------------------------------------------- the bot's secrets


async def test_env_shows_no_setting_of_the_bot(settings: Settings) -> None:
    out = await shell(settings, "env")
    names = {line.split("=", 1)[0] for line in out.text.splitlines() if "=" in line}
    assert names <= {"PATH", "HOME", "LANG", "TMPDIR", "PWD", "SHLVL", "_", "HOSTNAME"}, names
    assert "HOME=/workspace" in out.text


async def test_no_process_it_can_see_has_the_bot_environment(settings: Settings) -> None:
    """Every /proc/*/environ it can read, its parent's and PID 1's included (bubblewrap's own
    process is PID 1 inside: it must itself have started with a clean environment)."""
    out = await shell(
        settings,
        "echo parent=$PPID; for f in /proc/[0-9]*/environ; do echo \"== $f\"; tr '\\0' '\\n' < $f; done",
    )
    assert "== /proc/1/environ" in out.text
    transcript = out.files[0].content.decode()
    for name in ("OPENAI_API_KEY", "SLACK_BOT_TOKEN", "REDIS_URL", "PYTEST_CURRENT_TEST", "VIRTUAL_ENV"):
        assert name not in transcript


# ---------------------------------------------------------------------------- the network


async def test_it_reaches_neither_redis_nor_a_local_server(settings: Settings) -> None:
    touched: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        touched.append("connected")
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        code = (
            "import socket\n"
            f"for port in (6379, {port}):\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', port), timeout=2).close()\n"
            "        print('REACHED', port)\n"
            "    except OSError as exc:\n"
            "        print('BLOCKED', port, exc)\n"
            "try:\n"
            "    socket.create_connection(('1.1.1.1', 53), timeout=2)\n"
            "    print('REACHED the internet')\n"
            "except OSError as exc:\n"
            "    print('BLOCKED internet', exc)\n"
        )
        out = await run(settings, "execute_python_code", code=code)
    finally:
        server.close()
        await server.wait_closed()
    assert "REACHED" not in out.text and out.text.count("BLOCKED") == 3, out.text
    assert touched == []
    r = aioredis.Redis.from_url("redis://127.0.0.1:6379/0")
    try:
        assert await r.ping()  # and the bot's Redis is fine
    finally:
        await r.aclose()


# ---------------------------------------------------------------------------- the file system


async def test_it_writes_nothing_outside_its_workspace(settings: Settings) -> None:
    marker = f"autogpt-escape-{os.getpid()}-{time.monotonic_ns()}"
    out = await shell(
        settings,
        f"for p in /etc/{marker} /{marker} /usr/{marker} ../{marker} /workspace/../{marker} /tmp/{marker}; "
        f'do (echo x > "$p") 2>/dev/null && echo "WROTE $p" || echo "refused $p"; done',
    )
    assert out.text.count("refused") == 5, out.text
    assert f"WROTE /tmp/{marker}" in out.text  # its own private /tmp...
    assert not await asyncio.to_thread(Path("/tmp", marker).exists)  # ... which is not this machine's
    assert not await asyncio.to_thread(lambda: [*settings.data_dir.rglob(marker), *Path("/").glob(marker)])


async def test_it_reads_neither_shadow_nor_the_bots_data(settings: Settings) -> None:
    data = settings.data_dir.resolve()
    other = workspace_of(settings.data_dir, "other")
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("another session's file")
    out = await shell(
        settings,
        f"cat /etc/shadow; cat {data}/store.sqlite3; ls {data}; cat ../other/notes.txt; "
        f"cat /workspace/../other/notes.txt; ls /",
    )
    assert "another session" not in out.text and KEY not in out.text and "the bot's own data" not in out.text
    assert "root:" not in out.text
    assert f"cat: {data}/store.sqlite3: No such file" in out.text


# ---------------------------------------------------------------------------- limits


def _sampler(uid: int, stop: threading.Event, peak: list[int]) -> None:
    """The most processes `uid` had at once, read from /proc while `stop` is not set."""
    while not stop.is_set():
        count = 0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        count += 1
                except OSError:
                    continue
        peak[0] = max(peak[0], count)
        time.sleep(0.02)


async def test_a_fork_bomb_is_contained(settings: Settings) -> None:
    peak = [0]
    stop = threading.Event()
    watch = os.geteuid() == 0 and settings.sandbox == "bwrap"  # as root, commands run as nobody
    sampler = threading.Thread(target=_sampler, args=(NOBODY, stop, peak), daemon=True)
    if watch:
        sampler.start()
    try:
        out = await shell(settings, "bomb() { bomb | bomb & }; bomb; sleep 30")
    finally:
        stop.set()
    # stopped at the time limit, or ended at once when the bomb had filled its process allowance
    # before the shell could start `sleep` (a race the machine's load decides): contained either way
    assert "Stopped: it ran longer than 2 s" in out.text or "It probably ran into a limit" in out.text
    assert "process" in out.text  # it is told it ran into the process limit
    if watch:
        sampler.join()
        assert 0 < peak[0] <= PROCESSES + 2, peak
    proc = await asyncio.create_subprocess_exec("true")  # this process can still start one
    assert await proc.wait() == 0
    again = await shell(settings, "echo still fine")
    assert "exit code 0" in again.text and "still fine" in again.text


async def test_an_infinite_loop_is_killed_at_the_time_limit(settings: Settings) -> None:
    started = time.monotonic()
    out = await run(settings, "execute_python_code", code="while True:\n    pass\n")
    assert time.monotonic() - started < TIMEOUT_S + 5
    assert "Stopped: it ran longer than 2 s (SANDBOX_TIMEOUT_S) and was killed" in out.text


async def test_a_10_gb_allocation_fails(settings: Settings) -> None:
    out = await run(settings, "execute_python_code", code="data = bytearray(10 * 2**30)\nprint(len(data))")
    assert "MemoryError" in out.text
    assert "probably ran into a limit: it needed more than 512 MB of memory (SANDBOX_MEMORY_MB)" in out.text


async def test_a_1_gb_file_stops_at_the_file_limit(settings: Settings) -> None:
    code = "with open('big.bin', 'wb') as f:\n    for _ in range(1024):\n        f.write(b'x' * 2**20)\n"
    out = await run(settings, "execute_python_code", code=code)
    assert "File too large" in out.text and "MAX_FILE_BYTES" in out.text
    dd = await shell(settings, "dd if=/dev/zero of=big2.bin bs=1M count=1024")
    assert "Stopped: it tried to write a file larger than 1.0 MB (MAX_FILE_BYTES)" in dd.text
    workspace = workspace_of(settings.data_dir, "attack")
    for name in ("big.bin", "big2.bin"):
        assert (workspace / name).stat().st_size <= settings.max_file_bytes


async def test_endless_output_stops_at_the_output_limit(settings: Settings) -> None:
    out = await shell(settings, "yes")
    assert "Stopped: it printed more than" in out.text
    assert len(out.text) < settings.max_result_chars + 1000
    assert len(out.files[0].content) <= settings.max_file_bytes + 1000


# ---------------------------------------------------------------------------- what works


async def test_a_python_program_writes_a_csv_into_the_workspace(settings: Settings) -> None:
    code = (
        "import csv\n"
        "with open('prices.csv', 'w', newline='') as f:\n"
        "    w = csv.writer(f)\n"
        "    w.writerow(['app', 'price'])\n"
        "    w.writerow(['notes', 4.99])\n"
        "print('wrote prices.csv')\n"
    )
    out = await run(settings, "execute_python_code", code=code)
    assert "exit code 0" in out.text and "wrote prices.csv" in out.text
    assert "The code is saved as .autogpt/step-1-code.py" in out.text
    workspace = workspace_of(settings.data_dir, "attack")
    assert (workspace / "prices.csv").read_text().splitlines() == ["app,price", "notes,4.99"]
    assert out.files[0].name == ".autogpt/step-1-output.txt"
    assert (workspace / ".autogpt/step-1-output.txt").read_bytes() == out.files[0].content
    again = await run(settings, "execute_python_file", filename=".autogpt/step-1-code.py")
    assert "wrote prices.csv" in again.text


async def test_stdout_stderr_and_the_exit_code_come_back(settings: Settings) -> None:
    out = await shell(settings, "echo to-out; echo to-err >&2; exit 3")
    assert "exit code 3" in out.text
    assert "STDOUT:\nto-out" in out.text and "STDERR:\nto-err" in out.text
    assert not out.ok


async def test_a_python_file_gets_its_arguments(settings: Settings) -> None:
    workspace = workspace_of(settings.data_dir, "attack")
    workspace.mkdir(parents=True, exist_ok=True)
    (workspace / "echo.py").write_text("import sys\nprint(sys.argv[1:])\n")
    out = await run(settings, "execute_python_file", filename="echo.py", args="one 'two three'")
    assert "['one', 'two three']" in out.text
    with pytest.raises(Exception, match="outside the workspace"):
        await run(settings, "execute_python_file", filename="../../etc/passwd")


def test_the_tools_are_off_without_a_sandbox(tmp_path: Path) -> None:
    """SANDBOX=docker with no engine: the execution tools are not offered, and why is said."""
    sandbox.forget()
    s = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        execute_local_commands=True,
        sandbox="docker",
    )
    old = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = f"tcp://127.0.0.1:{_free_port()}"
    try:
        chosen = sandbox.select(s)
        names = {t.name for t in default_registry().available(s)}
    finally:
        if old is None:
            del os.environ["DOCKER_HOST"]
        else:
            os.environ["DOCKER_HOST"] = old
        sandbox.forget()
    assert chosen.sandbox is None and "SANDBOX=docker" in chosen.reason
    assert not names & {"execute_python_code", "execute_python_file", "execute_shell"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
