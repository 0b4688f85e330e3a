"""Structured logs: JSON lines captured (a handler on a StringIO) while a real session runs on
each real store with the scripted LLM; every engine line carries session, user and platform;
neither the API key nor the prompt is ever written at INFO; text on a terminal."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.slack.settings import SlackSettings
from bot import logs
from bot.core import Core
from bot.grammar import GoalCommand
from bot.models import Actor, Place, SessionState
from tests.conftest import make_settings
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import ScriptedLLM, agent_reply

OWNER = "U7"
PLACE = Place(platform="test", channel="C1")
GOAL = "compose a sonnet about the zebra lighthouse keeper"
API_KEY = "sk-test-secret"  # tests/conftest.py make_settings


class Captured:
    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    noisy = {name: logging.getLogger(name).level for name in (*logs.NOISY, "bot")}
    try:
        yield
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, lvl in noisy.items():
            logging.getLogger(name).setLevel(lvl)


def capture(core: Core, level: str = "INFO") -> Captured:
    captured = Captured()
    settings = core.settings.model_copy(update={"log_level": level})
    logs.setup(settings, stream=captured.stream, json_lines=True)
    return captured


async def run_session(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> str:
    """Start, approve two steps (one fails: a missing file), and pause on an LLM failure."""
    llm.script(
        "execution_reply",
        agent_reply("read_file", {"filename": "missing.txt"}),
        agent_reply("write_to_file", {"filename": "sonnet.txt", "text": "the keeper"}),
    )
    actor = Actor(platform="test", user_id=OWNER, name="the poet")
    outcome = await core.service.start(actor, PLACE, GoalCommand(goals=[GOAL]))
    assert outcome.ok and outcome.session_id
    sid = outcome.session_id
    await core.runner.idle(10)
    for step_no in (1, 2):
        assert (await chat.press(core.service, sid, step_no, "approve", OWNER)).ok
        await core.runner.idle(10)
    session = await core.store.get(sid)
    assert session is not None and session.state == SessionState.PAUSED  # the third proposal: HTTP 500
    return sid


@pytest.mark.usefixtures("restore_logging")
async def test_session_lines_carry_session_user_platform_and_no_secret_or_prompt(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    assert core.settings.openai_api_key is not None
    assert core.settings.openai_api_key.get_secret_value() == API_KEY
    captured = capture(core)
    sid = await run_session(core, chat, llm)

    lines = captured.lines()  # every line is one JSON object
    assert lines
    for line in lines:
        assert {"time", "level", "logger", "message"} <= set(line), line
        assert line["time"].endswith("+00:00")
    engine = [line for line in lines if line["logger"] == "bot.engine"]
    messages = [line["message"] for line in engine]
    assert any("approve by" in m for m in messages), messages  # a decision (Engine.decide)
    assert any("paused" in m for m in messages), messages  # a drive that stopped (Engine.drive)
    for line in engine:
        assert line["session"] == sid and line["user"] == OWNER and line["platform"] == "test", line
    started = next(line for line in lines if "started by" in line["message"])
    assert (started["session"], started["user"], started["platform"]) == (sid, OWNER, "test")

    # no secret, and no prompt, at INFO
    prompt = llm.requests_of("execution_reply")[-1]["messages"]
    assert GOAL in json.dumps(prompt)
    assert API_KEY not in captured.text
    assert GOAL not in captured.text
    for message in prompt:
        assert message["content"] not in captured.text
    # the context does not leak out of the calls that set it
    assert logs.current() == {}


@pytest.mark.parametrize("store_kind", ["redis"])
@pytest.mark.usefixtures("restore_logging")
async def test_at_debug_the_prompt_is_logged_and_the_key_still_is_not(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    captured = capture(core, "DEBUG")
    for name in ("openai", "httpx", "httpcore"):  # even the HTTP libraries at their most verbose
        logging.getLogger(name).setLevel(logging.DEBUG)
    await run_session(core, chat, llm)
    assert GOAL in captured.text  # LOG_LEVEL=DEBUG shows the prompts
    assert API_KEY not in captured.text
    debug = [line for line in captured.lines() if line["message"].startswith("LLM request to")]
    assert debug and all(line["level"] == "DEBUG" for line in debug)


@pytest.mark.usefixtures("restore_logging")
def test_secret_values_are_masked_wherever_they_appear(tmp_path: Path, llm: ScriptedLLM) -> None:
    token = "xoxb-very-secret-token"
    settings = make_settings(tmp_path, llm)
    slack = SlackSettings(_env_file=None, bot_token=token)  # type: ignore[call-arg]
    captured = Captured()
    logs.setup(settings, stream=captured.stream, json_lines=True, extra=[slack])  # an adapter's too
    log = logging.getLogger("bot.test")
    log.info("the key is %s and the token %s", API_KEY, token)
    log.info("settings: %s", settings.openai_api_key)  # a SecretStr formats as stars anyway
    try:
        raise RuntimeError(f"refused {token}")
    except RuntimeError:
        log.exception("with a traceback")
    assert API_KEY not in captured.text and token not in captured.text
    lines = captured.lines()
    assert lines[0]["message"] == (
        "the key is [redacted OPENAI_API_KEY] and the token [redacted SLACK_BOT_TOKEN]"
    )
    assert "sk-" not in lines[1]["message"]
    assert "Traceback" in lines[2]["exc"] and "refused [redacted SLACK_BOT_TOKEN]" in lines[2]["exc"]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("store_kind", ["sqlite"])
@pytest.mark.usefixtures("restore_logging")
async def test_plain_text_on_a_terminal(core: Core) -> None:
    stream = Terminal()
    logs.setup(core.settings, stream=stream)
    log = logging.getLogger("bot.engine")
    with logs.log_context(session="abc123", user=OWNER, platform="test"):
        log.info("a step")
    log.info("nothing known")
    first, second = stream.getvalue().splitlines()
    assert first.endswith("INFO bot.engine [session=abc123 user=U7 platform=test]: a step"), first
    assert second.endswith("INFO bot.engine: nothing known"), second
    assert not first.startswith("{")


async def test_context_is_scoped_and_inherited_by_tasks() -> None:
    assert logs.current() == {}
    with logs.log_context(session="s1", user="u1"):
        logs.bind(platform="p1")
        inner = asyncio.create_task(asyncio.sleep(0, result=logs.current()))
        assert logs.current() == {"session": "s1", "user": "u1", "platform": "p1"}
        with logs.log_context(session="s2"):
            assert logs.current()["session"] == "s2"
        assert logs.current()["session"] == "s1"
    assert logs.current() == {}  # bind inside the block is undone with it
    assert await inner == {"session": "s1", "user": "u1", "platform": "p1"}

    @logs.logged
    async def decide(session_id: str, actor: Actor, *, text: str = "") -> dict[str, str]:
        return logs.current()

    actor = Actor(platform="slack", user_id="U9")
    assert await decide("abc", actor) == {"session": "abc", "user": "U9", "platform": "slack"}
    assert await decide(session_id="xyz", actor=actor, text="hi") == {
        "session": "xyz",
        "user": "U9",
        "platform": "slack",
    }
    assert logs.current() == {}
