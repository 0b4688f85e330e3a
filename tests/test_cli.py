"""The `autogpt-bot` command line as a subprocess: check-config, settings errors, argument checks,
`.env` and `.env.template`, and start-up failures (no LLM, dead Redis). Each run's working
directory is a temporary folder, so no developer `.env` is read."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import setting_names
from tests.fakes.llm_server import ScriptedLLM

REPO = Path(__file__).resolve().parent.parent
SETTING_KEYS = set(setting_names())  # the core's and every adapter's


def clean_environ(**values: str) -> dict[str, str]:
    """os.environ without any setting of ours, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in SETTING_KEYS}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    env.update(values)
    return env


def cli(
    cwd: Path, *args: str, stdin: str = "", module: str = "adapters.cli", **values: str
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=clean_environ(**values),
    )
    assert "Traceback" not in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def parse_config(stdout: str) -> dict[str, str]:
    pairs = [line.split("=", 1) for line in stdout.splitlines() if not line.startswith("#")]
    assert all(len(p) == 2 for p in pairs), stdout
    return {k: v for k, v in pairs}


def one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{text}"
    return lines[0]


# ---------------------------------------------------------------------------- check-config


def test_check_config_prints_every_key_with_secrets_masked(tmp_path: Path) -> None:
    proc = cli(
        tmp_path,
        "check-config",
        OPENAI_API_KEY="sk-very-secret",
        SLACK_BOT_TOKEN="xoxb-secret",
        REDIS_URL="redis://:pw-for-redis@127.0.0.1:6379/0",
        SD_WEBUI_URL="http://sd-user:sd-pass@sd.example:7860",
        MILVUS_ADDR="https://milvus-token@milvus.example:19530",
        SMART_LLM="gpt-4.1",
        MAX_CYCLES="7",
        DISABLED_COMMANDS="delete_file, read_file",
    )
    assert proc.returncode == 0, proc.stderr
    config = parse_config(proc.stdout)
    assert set(config) == SETTING_KEYS
    assert len([x for x in proc.stdout.splitlines() if not x.startswith("#")]) == len(SETTING_KEYS)
    assert "# Sandbox: " in proc.stdout and "# Approval policy" in proc.stdout
    for secret in ("sk-very-secret", "xoxb-secret", "pw-for-redis", "sd-pass", "milvus-token"):
        assert secret not in proc.stdout
    assert "OPENAI_API_KEY=********" in proc.stdout.splitlines()
    assert config["SLACK_BOT_TOKEN"] == "********"
    # credentials inside URLs are masked, the host is shown: the admin sees which server it uses
    assert config["REDIS_URL"] == "redis://:****@127.0.0.1:6379/0"
    assert config["SD_WEBUI_URL"] == "http://sd-user:****@sd.example:7860"
    assert config["MILVUS_ADDR"] == "https://****@milvus.example:19530"
    assert config["DISCORD_BOT_TOKEN"] == ""  # an unset secret is empty, not masked
    assert config["SMART_LLM"] == "gpt-4.1"
    assert config["MAX_CYCLES"] == "7"
    assert config["DISABLED_COMMANDS"] == "delete_file,read_file"
    assert config["FAST_LLM"] == "gpt-4o-mini"  # a default


@pytest.mark.parametrize(
    ("command", "key", "value"),
    [
        ("check-config", "SMART_TOKEN_LIMIT", "abc"),
        ("console", "SMART_TOKEN_LIMIT", "abc"),
        ("console", "MEMORY_BACKEND", "weaviate"),
        ("console", "TEMPERATURE", "9"),
        ("console", "LLM_TIMEOUT", "0"),
        ("console", "USE_AZURE", "maybe"),
        ("console", "ALLOWED_USER_IDS", "[not json"),
        ("console", "OPENAI_BASE_URL", "https://user:pw-in-the-url@llm.example/v1"),
    ],
)
def test_invalid_setting_is_one_line_naming_the_key(
    tmp_path: Path, command: str, key: str, value: str
) -> None:
    args = [command] + (["a goal"] if command == "console" else [])
    proc = cli(tmp_path, *args, OPENAI_API_KEY="sk-x", DATA_DIR=str(tmp_path / "data"), **{key: value})
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert one_line(proc.stderr).startswith(f"Invalid setting {key}: ")
    assert "pw-in-the-url" not in proc.stderr  # a URL's credentials are never shown
    assert not (tmp_path / "data").exists()  # stopped before anything started


def test_malformed_json_setting_names_the_key(tmp_path: Path) -> None:
    proc = cli(tmp_path, "check-config", OPENAI_API_KEY="sk-x", MODEL_PRICES="{not json")
    assert proc.returncode == 2
    assert one_line(proc.stderr).startswith("Invalid setting MODEL_PRICES: ")


# ---------------------------------------------------------------------------- console arguments


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--continuous-limit", "3", "goal"], "--continuous-limit can only be used with --continuous"),
        (["--continuous", "--continuous-limit", "0", "goal"], "--continuous-limit must be at least 1"),
        (["a", "b", "c", "d", "e", "f"], "At most 5 goals."),
    ],
)
def test_console_argument_errors(tmp_path: Path, args: list[str], message: str) -> None:
    proc = cli(tmp_path, "console", *args, OPENAI_API_KEY="sk-x", DATA_DIR=str(tmp_path / "data"))
    assert proc.returncode == 2
    assert one_line(proc.stderr) == message
    assert proc.stdout == ""


def test_gpt3only_and_gpt4only_exclude_each_other(tmp_path: Path) -> None:
    proc = cli(tmp_path, "console", "--gpt3only", "--gpt4only", "goal", OPENAI_API_KEY="sk-x")
    assert proc.returncode == 2  # argparse's usage error
    assert "not allowed with argument" in proc.stderr


def test_no_llm_configured(tmp_path: Path) -> None:
    proc = cli(tmp_path, "console", "goal", DATA_DIR=str(tmp_path / "data"))
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert "No LLM is configured" in line
    assert "OPENAI_API_KEY" in line and "OPENAI_BASE_URL" in line
    assert proc.stdout == ""


def test_dead_redis_is_one_clear_line(tmp_path: Path) -> None:
    proc = cli(
        tmp_path,
        "console",
        "goal",
        OPENAI_API_KEY="sk-x",
        REDIS_URL="redis://127.0.0.1:1/0",
        DATA_DIR=str(tmp_path / "data"),
    )
    assert proc.returncode != 0
    line = one_line(proc.stderr)
    assert "session store" in line and "127.0.0.1:1" in line
    assert proc.stdout == ""


@pytest.mark.parametrize("part", ["memory", "archive"])
def test_a_memory_or_archive_that_cannot_be_opened_is_named(tmp_path: Path, part: str) -> None:
    """Start-up names what could not be opened: the memory or the archive, not "the session
    store" (the archive's URL holds a password: it is not shown)."""
    data = tmp_path / "data"
    env = {"OPENAI_API_KEY": "sk-x", "DATA_DIR": str(data)}
    if part == "memory":
        (data / "memory.sqlite3").mkdir(parents=True)  # SQLite cannot open a folder
        expected = (
            "Cannot open the memory (local memory memory.sqlite3 failed (open): unable to open database file)"
        )
    else:
        env["ARCHIVE_URL"] = "postgresql://bot:hunter2-archive@127.0.0.1:1/bot"
        expected = "Cannot open the archive (PostgreSQL at 127.0.0.1:1/bot is not answering: "
    for command in ("list", "usage") if part == "archive" else ("list",):  # `usage` opens no memory
        proc = cli(tmp_path, command, **env)
        assert proc.returncode == 1
        line = one_line(proc.stderr)
        assert line.startswith(expected) and "session store" not in line and "hunter2" not in line
        assert str(tmp_path) not in line and proc.stdout == ""


def test_resume_of_an_unknown_session(tmp_path: Path, llm: ScriptedLLM) -> None:
    proc = cli(
        tmp_path,
        "console",
        "--resume",
        "zzzzzz",
        OPENAI_API_KEY="sk-x",
        OPENAI_BASE_URL=llm.base_url,
        DATA_DIR=str(tmp_path / "data"),
    )
    assert proc.returncode == 1
    assert one_line(proc.stderr) == "No session zzzzzz to resume."
    assert not llm.requests


# ---------------------------------------------------------------------------- .env and its template


def test_dotenv_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-dotenv\nSMART_LLM=my-model\n")
    proc = cli(tmp_path, "check-config")
    assert proc.returncode == 0, proc.stderr
    config = parse_config(proc.stdout)
    assert config["SMART_LLM"] == "my-model"
    assert config["OPENAI_API_KEY"] == "********"
    assert "sk-from-dotenv" not in proc.stdout
    # the environment wins over .env
    proc = cli(tmp_path, "check-config", SMART_LLM="from-env")
    assert parse_config(proc.stdout)["SMART_LLM"] == "from-env"


def test_env_template_is_generated_and_lists_every_key(tmp_path: Path) -> None:
    proc = cli(tmp_path, "--template", module="bot.settings")
    assert proc.returncode == 0, proc.stderr
    template = (REPO / ".env.template").read_text(encoding="utf-8")
    assert template == proc.stdout, "regenerate it: python -m bot.settings --template > .env.template"
    lines = template.splitlines()
    for key in SETTING_KEYS:
        assert any(line.startswith(f"# {key}=") for line in lines), key


def test_run_role_ingress_or_worker_needs_redis_and_says_so(tmp_path: Path) -> None:
    proc = cli(
        tmp_path,
        "run",
        "--role",
        "worker",
        OPENAI_API_KEY="sk-test",
        DISCORD_BOT_TOKEN="MTIz.fake.token",
    )
    assert proc.returncode == 2
    assert one_line(proc.stderr).startswith("--role worker needs REDIS_URL")
    assert cli(tmp_path, "run", "--role", "boss").returncode == 2  # argparse's usage error
