"""No secret leaves the bot: whole sessions run with known secret values set (in the environment
and in `.env`), by every way an attack run found one could get out: a shell command printing the
environment or reading the bot's `.env`, a hostile model echoing keys into a file that is read
back and remembered, a provider's error that quotes the API key. Then every chat message, every
LLM request, every Redis value, every SQLite row (sessions, archive, memory) and the logs are
scanned: zero occurrences.

Two ways in: the console (a real subprocess; its terminal is its chat) and Slack in HTTP mode
(the real Bolt app against the local fake Web API)."""

from __future__ import annotations

import io
import json
import logging
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from adapters.slack import ids
from bot import logs
from bot.settings import Settings
from tests.conftest import REDIS_URL
from tests.fakes.llm_server import Error, ScriptedLLM, agent_reply, tasks_reply
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, running_bot, start_goal
from tests.test_console_e2e import clean_environ

OPENAI_KEY = "sk-scan-openai-4f1c9a2b7d"
URL_PASSWORD = "redis-pass-8e3d5c1a"  # Redis's default user has no password: any is accepted
MILVUS_TOKEN = "milvus-token-7a2c4e"
SECRETS_IN_ENV = {
    "OPENAI_API_KEY": OPENAI_KEY,
    "HUGGINGFACE_API_TOKEN": "hf_scan_token_6b2e9f",
    "ELEVENLABS_API_KEY": "el-scan-key-3a7c5e",
    "TW_CONSUMER_SECRET": "tw-scan-secret-9d4b1f",
}
SECRETS_IN_DOTENV = {
    "SLACK_BOT_TOKEN": "xoxb-scan-slack-7c1e9a",  # a chat adapter's: redacted in the console too
    "GOOGLE_API_KEY": "AIza-scan-google-2c8f6a",
    "GITHUB_API_KEY": "ghp_scan_github_5e1b7d",
    "SD_WEBUI_AUTH": "sd-user:sd-scan-pass-4f2a",
}


def hostile_script(llm: ScriptedLLM, secrets: list[str], *, shell: bool = True) -> None:
    """Every way out the attack run tried, then a provider error that quotes the key."""
    everything = " ".join(secrets)
    llm.script("task_list", tasks_reply("look around", "write it down"))
    replies: list[Any] = []
    if shell:
        replies += [
            agent_reply("execute_shell", {"command_line": "env"}),
            agent_reply("execute_shell", {"command_line": "cat ../../../.env"}),
        ]
    replies += [
        agent_reply(
            "write_to_file",
            {"filename": "leak.txt", "text": f"keys: {everything}"},
            text=f"I know {secrets[0]}",  # a model that somehow echoes a key in its thoughts
        ),
        agent_reply("read_file", {"filename": "leak.txt"}),
        agent_reply("memory_add", {"text": f"the key is {secrets[0]}"}),
        agent_reply("memory_search", {"query": f"key {secrets[0]}"}),
        Error(400, f"Incorrect API key provided: {OPENAI_KEY}. You can find your API key at ..."),
    ]
    llm.script("execution_reply", *replies)


def with_password(url: str) -> str:
    return url.replace("redis://", f"redis://default:{URL_PASSWORD}@")


def found_in(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


def sqlite_rows(data_dir: Path) -> Iterator[tuple[str, str]]:
    """(file:table, row as text) for every row of every SQLite file under `data_dir`."""
    for path in sorted(data_dir.rglob("*.sqlite3")):
        db = sqlite3.connect(path)
        try:
            tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    yield (
                        f"{path.name}:{table}",
                        repr(row)
                        + " "
                        + " ".join(x.decode("utf-8", "replace") for x in row if isinstance(x, bytes)),
                    )
        finally:
            db.close()


def redis_values(prefix: str) -> Iterator[tuple[str, str]]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            kind = client.type(key).decode()
            if kind == "string":
                value: Any = client.get(key)
            elif kind == "hash":
                value = client.hgetall(key)
            elif kind == "set":
                value = client.smembers(key)
            elif kind == "zset":
                value = client.zrange(key, 0, -1)
            else:
                value = client.lrange(key, 0, -1)
            yield key.decode(), repr(value)
    finally:
        client.close()


def scan(sources: dict[str, str], secrets: list[str]) -> dict[str, list[str]]:
    return {name: hits for name, text in sources.items() if (hits := found_in(text, secrets))}


# ---------------------------------------------------------------------------- the console


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_console_session_leaks_no_secret(
    tmp_path: Path, llm: ScriptedLLM, store: str, redis_prefix: str
) -> None:
    (tmp_path / ".env").write_text("".join(f"{k}={v}\n" for k, v in SECRETS_IN_DOTENV.items()))
    env = clean_environ()
    env.update(SECRETS_IN_ENV)
    env.update(
        OPENAI_BASE_URL=llm.base_url,
        MILVUS_ADDR=f"https://{MILVUS_TOKEN}@milvus.example:19530",
        DATA_DIR=str(tmp_path / "data"),
        LLM_MAX_RETRIES="0",
        LOG_LEVEL="DEBUG",  # the prompts too
        EXECUTE_LOCAL_COMMANDS="true",
        MEMORY_BACKEND="redis" if store == "redis" else "local",
    )
    if store == "redis":
        env.update(REDIS_URL=with_password(REDIS_URL), REDIS_PREFIX=redis_prefix)
    secrets = [*SECRETS_IN_ENV.values(), *SECRETS_IN_DOTENV.values(), "sd-scan-pass-4f2a", MILVUS_TOKEN]
    secrets += [URL_PASSWORD] if store == "redis" else []
    hostile_script(llm, secrets)
    proc = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "console", "find out what you can"],
        input="y\n" * 6 + "n\n",  # approve every command; after the provider's error, stop
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env=env,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert "[redacted OPENAI_API_KEY]" in proc.stdout  # the provider's error, as shown
    assert "Command execute_shell returned: Ran in" in proc.stdout  # the commands did run
    assert "[redacted GOOGLE_API_KEY]" in proc.stdout  # ... and what `cat .env` printed was caught
    sources = {"console output": proc.stdout, "logs": proc.stderr}
    sources |= {f"LLM request {i}": json.dumps(r.body) for i, r in enumerate(llm.requests)}
    sources |= {f"sqlite {where} #{i}": row for i, (where, row) in enumerate(sqlite_rows(tmp_path / "data"))}
    if store == "redis":
        sources |= {f"redis {key}": value for key, value in redis_values(redis_prefix)}
    assert proc.returncode == 3, proc.stdout  # stopped by the user: the session is archived
    assert any(name.startswith("sqlite archive.sqlite3:archive") for name in sources)
    assert any(name.startswith("sqlite memory") or name.startswith("redis") for name in sources), sorted(
        sources
    )
    assert scan(sources, secrets) == {}


# ---------------------------------------------------------------------------- Slack over HTTP


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    yield stream
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.mark.parametrize("store_kind", ["redis"])
async def test_slack_session_leaks_no_secret(
    settings: Settings,
    llm: ScriptedLLM,
    redis_prefix: str,
    captured_logs: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in SECRETS_IN_ENV.items():
        monkeypatch.setenv(name, value)  # what a shell command would have inherited
    configured = {name.lower(): SecretStr(value) for name, value in SECRETS_IN_ENV.items()}
    configured["google_api_key"] = SecretStr(SECRETS_IN_DOTENV["GOOGLE_API_KEY"])
    configured["redis_url"] = SecretStr(with_password(REDIS_URL))
    settings = settings.model_copy(
        update={
            **configured,
            "execute_local_commands": True,
            "memory_backend": "redis",
            "log_level": "DEBUG",
            "max_result_chars": 300,  # long results go to a file and an upload: those are scanned too
        }
    )
    secrets = [*SECRETS_IN_ENV.values(), SECRETS_IN_DOTENV["GOOGLE_API_KEY"], URL_PASSWORD]
    secrets += [BOT_TOKEN, APP_TOKEN, SIGNING_SECRET]
    hostile_script(llm, secrets)
    async with running_bot(settings) as bot:
        logs.setup(bot.settings, stream=captured_logs, json_lines=True)
        sid = await start_goal(bot, "goal find out what you can")
        for step_no in range(1, 8):
            steps = [m for m in bot.thread(sid) if m.text.startswith(f"Step {step_no}:")]
            if not steps or not steps[0].buttons():
                break
            await bot.send.click(steps[0], ids.APPROVE)
            await bot.settle()
        status = await bot.send.command(f"status {sid}")
        assert status.status == 200
        assert (await bot.send.command(f"stop {sid}")).status == 200  # archived
        await bot.send.event(
            {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home", "event_ts": "1.2"}
        )
        await bot.settle()
        session = await bot.c.archive.get(sid)
        assert session is not None and len(session.steps) == 6, session
        assert "[redacted OPENAI_API_KEY]" in (session.error or ""), session.error
        sources = {
            f"Slack {c.method} #{i}": json.dumps({k: v for k, v in c.payload.items() if k != "token"})
            for i, c in enumerate(bot.api.calls)
        }
        sources |= {f"Slack response_url #{i}": json.dumps(r) for i, r in enumerate(bot.api.responses)}
        sources |= {f"Slack upload #{i}": repr(u) for i, u in enumerate(bot.api.uploads)}
    assert any("exit code 0" in text for text in sources.values())  # the commands did run
    sources |= {f"LLM request {i}": json.dumps(r.body) for i, r in enumerate(llm.requests)}
    sources |= {f"sqlite {where} #{i}": row for i, (where, row) in enumerate(sqlite_rows(settings.data_dir))}
    sources |= {f"redis {key}": value for key, value in redis_values(redis_prefix)}
    sources["logs"] = captured_logs.getvalue()
    assert "[redacted OPENAI_API_KEY]" in sources["logs"]
    assert scan(sources, secrets) == {}
