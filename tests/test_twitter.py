"""send_tweet: tweepy's real v2 client against a fake X API (OAuth 1.0a signatures checked), through
the tool registry like the engine runs it, then one agent cycle through the core showing that it
is an outside effect: "approve next N" does not cover it, a human's approval of that step does.
Every failure is a clear ToolError that never holds a key."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from bot.core import Core
from bot.models import Actor, Place, Session, SessionState, StepStatus
from bot.settings import Settings
from bot.tools import default_registry, twitter
from bot.tools.base import ToolContext, ToolError, ToolRegistry
from tests.conftest import started_core
from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.fakes.twitter_api import FakeTwitter

CONSUMER_KEY = "ck-Consumer-Key-7f3a"
CONSUMER_SECRET = "cs-Consumer-Secret-91b2"
ACCESS_TOKEN = "at-Access-Token-44c1"
ACCESS_TOKEN_SECRET = "ats-Access-Token-Secret-d08e"
SECRETS = (CONSUMER_KEY, CONSUMER_SECRET, ACCESS_TOKEN, ACCESS_TOKEN_SECRET)
KEYS = {
    "tw_consumer_key": CONSUMER_KEY,
    "tw_consumer_secret": CONSUMER_SECRET,
    "tw_access_token": ACCESS_TOKEN,
    "tw_access_token_secret": ACCESS_TOKEN_SECRET,
}

OWNER = "U1"
PLACE = Place(platform="test", channel="C1")
ME = Actor(platform="test", user_id=OWNER, name="owner")


@pytest.fixture(scope="module")
def x_api() -> Iterator[FakeTwitter]:
    with FakeTwitter(
        consumer_key=CONSUMER_KEY,
        consumer_secret=CONSUMER_SECRET,
        token=ACCESS_TOKEN,
        token_secret=ACCESS_TOKEN_SECRET,
    ) as fake:
        yield fake


@pytest.fixture
def x(x_api: FakeTwitter) -> Iterator[FakeTwitter]:
    x_api.reset()
    yield x_api
    x_api.reset()


def settings_for(tmp_path: Path, x: FakeTwitter | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path, **KEYS}
    if x is not None:
        values["twitter_api_url"] = x.base_url
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def tweet(settings: Settings, args: dict[str, Any]) -> str:
    """The way the engine runs a command: look it up, validate the arguments, run it."""
    registry = ToolRegistry()
    twitter.register(registry)
    tool = registry.get("send_tweet", settings)
    assert tool is not None
    session = Session(id="s1", owner="u1", place=Place(platform="test", channel="c"), goals=["g"])
    ctx = ToolContext(session=session, settings=settings, workspace=settings.data_dir)
    result = await tool.run(ctx, tool.validate(args))
    assert isinstance(result, str)
    return result


async def failure(settings: Settings, text: str = "hello") -> str:
    with pytest.raises(ToolError) as err:
        await tweet(settings, {"tweet_text": text})
    message = str(err.value)
    for secret in SECRETS:
        assert secret not in message
    return message


@pytest.fixture
def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------------- the tool


def test_the_command_and_its_settings(tmp_path: Path) -> None:
    registry = ToolRegistry()
    twitter.register(registry)
    [tool] = registry.all()
    assert tool.name == "send_tweet" and tool.outside_effects and tool.section == "Twitter"
    assert tool.prompt_line().endswith('args: "tweet_text": "<tweet_text>"')

    assert registry.get("send_tweet", settings_for(tmp_path)) is not None
    off = tool.off(Settings(_env_file=None, data_dir=tmp_path))  # type: ignore[call-arg]
    assert off is not None
    for name in ("TW_CONSUMER_KEY", "TW_CONSUMER_SECRET", "TW_ACCESS_TOKEN", "TW_ACCESS_TOKEN_SECRET"):
        assert name in off
    partial = settings_for(tmp_path, tw_access_token=None, tw_consumer_secret="  ")
    reason = tool.off(partial)
    assert reason == "needs TW_CONSUMER_SECRET, TW_ACCESS_TOKEN (the X app's OAuth 1.0a keys) to be set"
    assert registry.get("send_tweet", partial) is None and registry.available(partial) == []
    assert "send_tweet" in default_registry().names()


async def test_posts_a_signed_tweet_to_twitter_api_url(tmp_path: Path, x: FakeTwitter) -> None:
    out = await tweet(settings_for(tmp_path, x), {"tweet_text": "  Hello from the bot: 50% off & more!  "})
    [sent] = x.tweets
    assert sent.text == "Hello from the bot: 50% off & more!"  # stripped
    assert out == f"Tweeted: {sent.id} (https://x.com/i/web/status/{sent.id})"
    # an OAuth 1.0a header made with the keys (the fake checked the HMAC-SHA1 signature)
    assert sent.oauth["oauth_consumer_key"] == CONSUMER_KEY and sent.oauth["oauth_token"] == ACCESS_TOKEN
    assert sent.oauth["oauth_signature_method"] == "HMAC-SHA1" and sent.oauth["oauth_signature"]
    assert x.rejected == []
    # AutoGPT's other spelling of the argument
    out = await tweet(settings_for(tmp_path, x), {"text": "second one"})
    assert x.tweets[-1].text == "second one" and out.startswith(f"Tweeted: {x.tweets[-1].id} ")


async def test_a_wrong_secret_is_refused_by_the_signature_check(tmp_path: Path, x: FakeTwitter) -> None:
    message = await failure(settings_for(tmp_path, x, tw_access_token_secret="not-the-secret"))
    assert x.rejected == ["bad oauth_signature"] and x.tweets == []
    assert "X rejected the credentials (HTTP 401)" in message
    assert "TW_CONSUMER_KEY" in message and "not-the-secret" not in message


async def test_the_length_is_checked(tmp_path: Path, x: FakeTwitter) -> None:
    settings = settings_for(tmp_path, x)
    with pytest.raises(ToolError) as err:
        await tweet(settings, {"tweet_text": "a" * 281})
    assert "the tweet is 281 characters long; a tweet can have at most 280: shorten it by 1" in str(err.value)
    with pytest.raises(ToolError, match="the tweet is empty"):
        await tweet(settings, {"tweet_text": "   "})
    with pytest.raises(ToolError, match="tweet_text"):
        await tweet(settings, {})
    assert x.tweets == []
    exactly = "é" * 280  # characters, not bytes
    await tweet(settings, {"tweet_text": exactly})
    assert x.tweets[-1].text == exactly


# ---------------------------------------------------------------------------- failures


async def test_a_duplicate_tweet(tmp_path: Path, x: FakeTwitter) -> None:
    settings = settings_for(tmp_path, x)
    await tweet(settings, {"tweet_text": "same words"})
    message = await failure(settings, "same words")
    assert message == (
        "Not tweeted: X refused a duplicate of an earlier tweet (HTTP 403): You are not allowed to "
        "create a Tweet with duplicate content. Post something different."
    )
    assert len(x.tweets) == 1


async def test_other_refusals(tmp_path: Path, x: FakeTwitter) -> None:
    settings = settings_for(tmp_path, x)
    x.fail_next(403, "Your client app is not configured with the appropriate oauth1 app permissions.")
    message = await failure(settings)
    assert "X refused the tweet (HTTP 403): Your client app is not configured" in message
    x.fail_next(400, "One or more parameters to your request was invalid.")
    assert "the X API refused the request (HTTP 400): One or more parameters" in await failure(settings)
    x.fail_next(401)
    assert "X rejected the credentials (HTTP 401)" in await failure(settings)
    assert x.tweets == []


async def test_a_rate_limit_says_when_it_resets(tmp_path: Path, x: FakeTwitter) -> None:
    x.fail_next(429, "Too Many Requests", retry_after=120)
    started = time.monotonic()
    message = await failure(settings_for(tmp_path, x))
    assert time.monotonic() - started < 5  # reported, never slept through
    assert "X rate limit reached (HTTP 429)" in message
    match = re.search(r"resets at \d\d:\d\d:\d\d UTC \(in (\d+) s\)", message)
    assert match is not None and 100 <= int(match.group(1)) <= 120, message


async def test_a_server_error(tmp_path: Path, x: FakeTwitter) -> None:
    x.fail_next(503, "Service Unavailable")
    message = await failure(settings_for(tmp_path, x))
    assert message == (
        "Not tweeted: the X API had a server error (HTTP 503): Service Unavailable. Try again later."
    )


async def test_a_timeout(tmp_path: Path, x: FakeTwitter, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(twitter, "TIMEOUT_S", 0.3)
    x.delay = 3.0
    started = time.monotonic()
    message = await failure(settings_for(tmp_path, x))
    assert time.monotonic() - started < 2.5
    assert message == (
        f"Not tweeted: the X API at {x.base_url} did not answer within 0.3 s. Try again later."
    )


async def test_an_unreachable_api(tmp_path: Path, refused_url: str) -> None:
    message = await failure(settings_for(tmp_path, twitter_api_url=refused_url))
    assert message == f"Not tweeted: cannot reach the X API at {refused_url} (connection refused)."


# ---------------------------------------------------------------------------- through the engine


async def stored(core: Core, sid: str) -> Session:
    session = await core.store.get(sid)
    assert session is not None
    return session


async def test_an_agent_cycle_asks_a_human_before_tweeting(
    settings: Settings, llm: ScriptedLLM, x: FakeTwitter
) -> None:
    """send_tweet has effects outside the session: "approve next N" approves the steps around it
    in advance but not it; the owner's approval of that very step posts the tweet."""
    keys = {name: SecretStr(value) for name, value in KEYS.items()}
    async with started_core(settings, twitter_api_url=x.base_url, **keys) as (core, chat):
        llm.script(
            "execution_reply",
            agent_reply("write_to_file", {"filename": "draft.txt", "text": "Launch day!"}),
            agent_reply("send_tweet", {"tweet_text": "Launch day! Our bot ships today."}),
            agent_reply("finish", {"reason": "announced"}),
        )
        outcome = await core.service.handle_text(ME, PLACE, "goal announce the launch on X")
        assert outcome.ok and outcome.session_id, outcome.message
        sid = outcome.session_id
        await core.runner.idle(15)
        assert "send_tweet" in json.dumps(llm.requests_of("execution_reply")[0]["messages"])  # offered

        assert (await chat.press(core.service, sid, 1, "approve_n", OWNER)).ok
        await core.runner.idle(15)
        session = await stored(core, sid)
        first, waiting = session.steps[0], session.steps[1]
        assert first.status == StepStatus.DONE and first.decided_by == OWNER
        assert waiting.command.name == "send_tweet" and waiting.status == StepStatus.PENDING
        assert waiting.decided_by is None and session.state == SessionState.AWAITING_APPROVAL
        assert any("effects outside the session" in n for n in waiting.notes), waiting.notes
        assert session.approvals_left > 0  # kept for the steps after it
        assert x.tweets == []  # nothing posted without a human

        assert (await chat.press(core.service, sid, 2, "approve", OWNER)).ok
        await core.runner.idle(15)
        session = await stored(core, sid)
        [sent] = x.tweets
        assert sent.text == "Launch day! Our bot ships today."
        step = session.steps[1]
        assert step.status == StepStatus.DONE and step.decided_by == OWNER
        assert (
            step.result is not None
            and f"Tweeted: {sent.id} (https://x.com/i/web/status/{sent.id})" in step.result
        )
        assert session.state == SessionState.FINISHED  # finish ran on the approvals given in advance
        shown = json.dumps([m.current.model_dump(mode="json") for m in chat.messages], default=str)
        assert sent.id in shown
        for secret in SECRETS:
            assert secret not in shown and secret not in session.model_dump_json()
