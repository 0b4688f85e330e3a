"""The Docker backend against a local Docker Engine (tests/fakes/docker_engine.py): the real
Docker SDK talks HTTP to it, and it runs each container's command for real (in bubblewrap), so
what comes back (exit codes, output, files in the workspace) is what the command did."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import bot.sandbox
from bot.sandbox.base import NOBODY, Limits, RunRequest, RunResult, SandboxError
from bot.sandbox.docker import LABEL, DockerSandbox
from bot.settings import Settings
from bot.tools.files import workspace_of
from tests.fakes.docker_engine import ENGINE_VERSION, FakeDockerEngine

SECRET = "sk-bot-secret-never-in-a-container"
SESSION = "k3f9qa"


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDockerEngine]:
    with FakeDockerEngine() as fake:
        monkeypatch.setenv("DOCKER_HOST", fake.docker_host)
        for name in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # in the bot's environment, never a command's
        bot.sandbox.forget()
        yield fake
        bot.sandbox.forget()


def make(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "sandbox": "docker"}
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg]


def request(settings: Settings, *argv: str, session: str = SESSION, **limits: Any) -> RunRequest:
    workspace = workspace_of(settings.data_dir, session)
    workspace.mkdir(parents=True, exist_ok=True)
    return RunRequest(
        argv=list(argv),
        workspace=workspace,
        env={"LANG": "C.UTF-8"},
        limits=Limits.of(settings).model_copy(update={"timeout_s": 10.0, **limits}),
        network=settings.sandbox_network,
        session_id=session,
    )


async def run(settings: Settings, *argv: str, **limits: Any) -> RunResult:
    with closing(DockerSandbox.connect(settings)) as sandbox:
        return await sandbox.run(request(settings, *argv, **limits))


def assert_all_removed(engine: FakeDockerEngine) -> None:
    assert engine.containers == {}
    assert sorted(engine.removed) == sorted(engine.made)


# ---------------------------------------------------------------------------- the container


async def test_the_container_sees_its_workspace_and_nothing_else(
    engine: FakeDockerEngine, tmp_path: Path
) -> None:
    settings = make(tmp_path, sandbox_memory_mb=300, sandbox_cpus=0.5, sandbox_max_processes=40)
    result = await run(settings, "true")
    assert result.ok, result

    (config,) = engine.created
    host = config["HostConfig"]
    workspace = workspace_of(settings.data_dir, SESSION).resolve()
    assert host["Mounts"] == [
        {"Target": "/workspace", "Source": str(workspace), "Type": "bind", "ReadOnly": False}
    ]
    assert not host.get("Binds") and not config.get("Volumes") and not host.get("VolumesFrom")
    assert not host.get("Privileged") and not host.get("CapAdd") and not host.get("Devices")
    assert config["WorkingDir"] == "/workspace"
    expected_user = f"{NOBODY}:{NOBODY}" if os.geteuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    assert config["User"] == expected_user and config["User"].split(":")[0] not in ("", "0", "root")
    assert config["NetworkDisabled"] is True and host["NetworkMode"] == "none"
    assert host["Memory"] == host["MemorySwap"] == 300 * 1024 * 1024
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 40
    limits = {u["Name"]: (u["Soft"], u["Hard"]) for u in host["Ulimits"]}
    assert limits["core"] == (0, 0)
    assert limits["fsize"] == (settings.max_file_bytes,) * 2
    assert limits["nofile"][1] <= 1024
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert "size=" in host["Tmpfs"]["/tmp"]
    assert host["LogConfig"]["Type"] == "json-file" and int(host["LogConfig"]["Config"]["max-size"]) > 0
    assert sorted(config["Env"]) == ["HOME=/workspace", "LANG=C.UTF-8"]
    assert SECRET not in str(config) and "OPENAI_API_KEY" not in str(config)
    assert config["Labels"] == {LABEL: SESSION}
    assert SESSION in engine.routes("create")[0].query["name"]
    assert_all_removed(engine)


async def test_the_network_only_when_allowed(engine: FakeDockerEngine, tmp_path: Path) -> None:
    assert (await run(make(tmp_path, sandbox_network=True), "true")).ok
    config = engine.created[-1]
    assert not config.get("NetworkDisabled") and config["HostConfig"]["NetworkMode"] != "none"


async def test_the_engine_finds_the_workspace_where_sandbox_docker_data_dir_says(
    engine: FakeDockerEngine, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "engine-view").symlink_to(tmp_path / "data")  # DATA_DIR as the engine's machine sees it
    settings = make(tmp_path, sandbox_docker_data_dir=tmp_path / "engine-view")
    result = await run(settings, "sh", "-c", "echo hello > note.txt")
    assert result.ok, result
    source = engine.created[-1]["HostConfig"]["Mounts"][0]["Source"]
    assert source == str(tmp_path / "engine-view" / "workspaces" / SESSION)
    assert (workspace_of(settings.data_dir, SESSION) / "note.txt").read_text() == "hello\n"

    wrong = make(tmp_path, sandbox_docker_data_dir=tmp_path / "nowhere")
    with pytest.raises(SandboxError, match="SANDBOX_DOCKER_DATA_DIR") as caught:
        await run(wrong, "true")
    assert str(tmp_path) not in str(caught.value)
    assert engine.containers == {}


# ---------------------------------------------------------------------------- what comes back


async def test_a_python_program_writes_a_csv_into_the_workspace(
    engine: FakeDockerEngine, tmp_path: Path
) -> None:
    settings = make(tmp_path)
    program = (
        "import csv, sys\n"
        "with open('people.csv', 'w', newline='') as f:\n"
        "    csv.writer(f).writerows([('name', 'age'), ('Ada', 36), ('Alan', 41)])\n"
        "print('rows: 3')\n"
        "print('a warning', file=sys.stderr)\n"
    )
    result = await run(settings, "python3", "-c", program)
    assert result.ok and result.backend == "docker", result
    assert result.stdout == b"rows: 3\n" and result.stderr == b"a warning\n"
    assert result.duration_s > 0
    written = workspace_of(settings.data_dir, SESSION) / "people.csv"
    assert written.read_text().splitlines() == ["name,age", "Ada,36", "Alan,41"]
    if os.geteuid() == 0:  # the command ran as nobody, on a workspace handed to nobody
        assert written.stat().st_uid == NOBODY
    assert_all_removed(engine)


async def test_a_failing_command_says_how(engine: FakeDockerEngine, tmp_path: Path) -> None:
    result = await run(make(tmp_path), "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (result.exit_code, result.stdout, result.stderr, result.stopped_by) == (
        3,
        b"out\n",
        b"err\n",
        None,
    )
    assert not result.ok
    assert_all_removed(engine)


async def test_a_command_past_the_wall_clock_is_killed_and_removed(
    engine: FakeDockerEngine, tmp_path: Path
) -> None:
    result = await run(make(tmp_path), "sh", "-c", "echo started; sleep 30", timeout_s=1.0)
    assert result.stopped_by == "time" and result.exit_code is None, result
    assert result.stdout == b"started\n"
    assert 1.0 <= result.duration_s < 5
    assert len(engine.routes("kill")) == 1
    assert_all_removed(engine)


async def test_a_flood_of_output_is_cut_and_stopped(engine: FakeDockerEngine, tmp_path: Path) -> None:
    result = await run(make(tmp_path), "python3", "-c", "while True: print('x' * 999)", output_bytes=10_000)
    assert result.stopped_by == "output", result
    assert len(result.stdout) == 10_000 and result.stdout.startswith(b"x" * 999 + b"\n")
    assert len(engine.routes("kill")) == 1
    assert_all_removed(engine)


async def test_a_file_past_the_file_size_limit(engine: FakeDockerEngine, tmp_path: Path) -> None:
    settings = make(tmp_path, max_file_bytes=64 * 1024)
    result = await run(settings, "sh", "-c", "head -c 1000000 /dev/zero > big.bin")
    assert result.stopped_by == "file size", result
    assert (workspace_of(settings.data_dir, SESSION) / "big.bin").stat().st_size <= 64 * 1024


async def test_a_container_the_kernel_killed_for_memory(engine: FakeDockerEngine, tmp_path: Path) -> None:
    engine.fail("oom")
    result = await run(make(tmp_path), "sleep", "5")
    assert result.stopped_by == "memory" and result.exit_code is None, result
    assert_all_removed(engine)


async def test_a_cancelled_run_still_removes_its_container(engine: FakeDockerEngine, tmp_path: Path) -> None:
    settings = make(tmp_path)
    with closing(DockerSandbox.connect(settings)) as sandbox:
        task = asyncio.create_task(sandbox.run(request(settings, "sleep", "30")))
        for _ in range(200):
            if any(c.status == "running" for c in engine.containers.values()):
                break
            await asyncio.sleep(0.02)
        assert engine.containers, "the container never started"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert_all_removed(engine)


# ---------------------------------------------------------------------------- the engine's failures


async def test_an_engine_error_is_a_sandbox_error_and_the_container_is_removed(
    engine: FakeDockerEngine, tmp_path: Path
) -> None:
    engine.fail(
        "start",
        500,
        'failed to create task for container: OCI runtime create failed: exec: "python3": '
        "executable file not found in $PATH: unknown",
    )
    with pytest.raises(SandboxError, match="executable file not found") as caught:
        await run(make(tmp_path), "python3", "-c", "pass")
    assert "Traceback" not in str(caught.value) and "http://" not in str(caught.value)
    assert len(engine.created) == 1
    assert_all_removed(engine)


async def test_an_engine_that_went_away(engine: FakeDockerEngine, tmp_path: Path) -> None:
    settings = make(tmp_path)
    with closing(DockerSandbox.connect(settings)) as sandbox:
        engine.stop()
        with pytest.raises(SandboxError, match=r"stopped answering \(connection refused\)"):
            await sandbox.run(request(settings, "true"))


async def test_a_missing_image_is_pulled_once(engine: FakeDockerEngine, tmp_path: Path) -> None:
    engine.images.clear()
    settings = make(tmp_path)
    with closing(DockerSandbox.connect(settings)) as sandbox:
        assert (await sandbox.run(request(settings, "true"))).ok
        assert (await sandbox.run(request(settings, "true"))).ok
    (pull,) = engine.routes("pull")
    assert pull.query == {"fromImage": "python", "tag": "3.11-slim"}
    assert "python:3.11-slim" in engine.images


async def test_an_image_that_cannot_be_pulled(engine: FakeDockerEngine, tmp_path: Path) -> None:
    with pytest.raises(
        SandboxError, match=r"could not pull the image nosuch/image:1\b.*repository does not exist"
    ):
        await run(make(tmp_path, sandbox_image="nosuch/image:1"), "true")
    engine.images.clear()
    engine.fail(
        "pull",
        200,
        'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io: no such host',
    )
    with pytest.raises(SandboxError, match=r"could not pull the image python:3.11-slim: .*no such host"):
        await run(make(tmp_path), "true")
    assert engine.created == []


# ---------------------------------------------------------------------------- choosing it


def test_describe_says_which_engine(engine: FakeDockerEngine, tmp_path: Path) -> None:
    with closing(DockerSandbox.connect(make(tmp_path))) as sandbox:
        assert sandbox.describe() == f"engine {ENGINE_VERSION} at {engine.docker_host}"


def test_select_chooses_docker_when_an_engine_answers(engine: FakeDockerEngine, tmp_path: Path) -> None:
    selection = bot.sandbox.select(make(tmp_path))
    assert selection.name == "docker" and isinstance(selection.sandbox, DockerSandbox)
    assert f"engine {ENGINE_VERSION}" in selection.reason
    selection.sandbox.close()


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    bot.sandbox.forget()
    yield f"tcp://127.0.0.1:{port}"
    bot.sandbox.forget()


def test_without_an_engine_sandbox_docker_offers_no_sandbox(no_engine: str, tmp_path: Path) -> None:
    selection = bot.sandbox.select(make(tmp_path))
    assert selection.sandbox is None
    assert f"no Docker engine answers at {no_engine} (connection refused)" in selection.reason
    assert "Traceback" not in selection.reason


def test_without_an_engine_sandbox_auto_falls_back_to_bubblewrap(no_engine: str, tmp_path: Path) -> None:
    selection = bot.sandbox.select(make(tmp_path, sandbox="auto"))
    assert selection.name == "bwrap", selection.reason
