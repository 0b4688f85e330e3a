"""What an admin is told when a service cannot be reached: one clear line that names where, never
aiohttp's `Cannot connect to host h:p ssl:default [...]` (TLS settings, even for plain http), no
traceback, no secret. Slack that cannot be reached is not Slack refusing the token; a real
refusal still says so. And Slack starts without Bolt's "`token` will be unused" warning, even with
SLACK_BOT_TOKEN in the environment (as in a container)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import httpx2
import openai
import pytest
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.adapter import SlackAdapter, SlackStartError
from adapters.slack.settings import SlackSettings
from bot.core import Core
from bot.llm.client import LLMClient, LLMUnavailable, call_failure
from bot.settings import Settings
from tests.conftest import make_settings
from tests.fakes.llm_server import ScriptedLLM
from tests.fakes.slack_api import BOT_TOKEN, SIGNING_SECRET, FakeSlackAPI, slack_settings

SQLITE = pytest.mark.parametrize("store_kind", ["sqlite"])
UNRESOLVABLE = "nonexistent.invalid"  # .invalid never resolves (RFC 6761)
UNUSED_TOKEN = "will be unused"  # Bolt's warning: "As you gave `client` as well, `token` will be unused."


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on: a connection to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_one_clean_line(message: str, *secrets: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message
    assert "ssl:default" not in message and "Cannot connect to host" not in message, message
    for secret in secrets:
        assert secret not in message, message


# ---------------------------------------------------------------------------- Slack


async def slack_start_error(settings: Settings, api_url: str) -> str:
    core = await Core.start(settings)
    try:
        slack = SlackSettings(  # type: ignore[call-arg]
            _env_file=None,
            bot_token=SecretStr(BOT_TOKEN),
            signing_secret=SecretStr(SIGNING_SECRET),
            mode="http",
            http_port=0,
            api_url=api_url,
        )
        adapter = SlackAdapter(core, slack)
        with pytest.raises(SlackStartError) as err:
            await adapter.start()
        assert adapter.client.session is None  # the HTTP session was closed
        return str(err.value)
    finally:
        await core.close()


@SQLITE
async def test_slack_on_a_closed_port_cannot_be_reached(settings: Settings) -> None:
    url = f"http://127.0.0.1:{closed_port()}/api/"
    message = await slack_start_error(settings, url)
    assert message == f"Cannot reach Slack at {url} (connection refused): check the network or SLACK_API_URL"
    assert_one_clean_line(message, BOT_TOKEN)


@SQLITE
async def test_slack_at_an_unknown_host_cannot_be_reached(settings: Settings) -> None:
    url = f"http://{UNRESOLVABLE}/api/"
    message = await slack_start_error(settings, url)
    assert message == (
        f"Cannot reach Slack at {url} (the name {UNRESOLVABLE} does not resolve): "
        "check the network or SLACK_API_URL"
    )
    assert "refused" not in message
    assert_one_clean_line(message, BOT_TOKEN)


@SQLITE
async def test_a_token_slack_refuses_is_still_a_refusal(settings: Settings) -> None:
    async with FakeSlackAPI() as api:
        core = await Core.start(settings)
        try:
            wrong = slack_settings(api, bot_token=SecretStr("xoxb-wrong"))
            with pytest.raises(SlackStartError) as err:
                await SlackAdapter(core, wrong).start()
            assert str(err.value) == "Slack refused SLACK_BOT_TOKEN: invalid_auth"
            wrong = slack_settings(api, mode="socket", app_token=SecretStr("xapp-wrong"))
            with pytest.raises(SlackStartError) as err:
                await SlackAdapter(core, wrong).start()
            assert str(err.value) == "Slack refused SLACK_APP_TOKEN: invalid_auth"
        finally:
            await core.close()


def test_the_unused_token_warning_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The control for the next test: with SLACK_BOT_TOKEN set, Bolt warns for `client=` alone."""
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    with caplog.at_level(logging.DEBUG):
        AsyncApp(client=AsyncWebClient(token=BOT_TOKEN), signing_secret="s", logger=logging.getLogger("t"))
    assert any(UNUSED_TOKEN in r.getMessage() for r in caplog.records)


@SQLITE
@pytest.mark.parametrize("mode", ["http", "socket"])
async def test_slack_starts_without_the_unused_token_warning(
    settings: Settings, mode: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)  # as docker compose's env_file sets it
    async with FakeSlackAPI() as api:
        core = await Core.start(settings)
        try:
            with caplog.at_level(logging.DEBUG):
                adapter = SlackAdapter(core, slack_settings(api, mode=mode))
                await adapter.start()
                try:
                    assert await adapter.connected()
                finally:
                    await adapter.stop()
        finally:
            await core.close()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [w for w in warnings if UNUSED_TOKEN in w or "token" in w.lower()], warnings
    assert adapter.app.client is adapter.client  # the app uses our client (SLACK_API_URL, retries)
    assert logging.getLogger("adapters.slack.bolt").filters == []  # nothing else is dropped later


# ---------------------------------------------------------------------------- the LLM service


async def llm_error(settings: Settings) -> LLMUnavailable:
    client = LLMClient(settings)
    try:
        with pytest.raises(LLMUnavailable) as err:
            await client.text(settings.fast_llm, [{"role": "user", "content": "hi"}])
    finally:
        await client.close()
    return err.value


async def test_a_closed_llm_port_is_one_clear_sentence(tmp_path: Path, llm: ScriptedLLM) -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    settings = make_settings(tmp_path, llm, openai_base_url=url, llm_max_retries=0)
    err = await llm_error(settings)
    assert err.message == f"cannot reach the LLM service at {url}: connection refused"
    assert err.message.count("cannot reach") == 1
    assert_one_clean_line(err.message, "sk-test-secret")


async def test_the_llm_url_is_shown_with_its_credentials_masked(tmp_path: Path, llm: ScriptedLLM) -> None:
    port = closed_port()
    url = f"http://127.0.0.1:{port}/v1?api_key=sk-in-the-url-1234"
    settings = make_settings(tmp_path, llm, openai_base_url=url, llm_max_retries=0)
    err = await llm_error(settings)
    assert (
        err.message
        == f"cannot reach the LLM service at http://127.0.0.1:{port}/v1?api_key=****: connection refused"
    )
    assert_one_clean_line(err.message, "sk-in-the-url-1234", "sk-test-secret")


async def test_an_llm_host_that_does_not_resolve_says_so(tmp_path: Path, llm: ScriptedLLM) -> None:
    url = f"http://{UNRESOLVABLE}/v1"
    settings = make_settings(tmp_path, llm, openai_base_url=url, llm_max_retries=0)
    err = await llm_error(settings)
    assert err.message == f"cannot reach the LLM service at {url}: the name {UNRESOLVABLE} does not resolve"
    assert_one_clean_line(err.message, "sk-test-secret")


async def test_a_slow_llm_service_did_not_answer_in_time(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(tmp_path, llm, llm_timeout=0.3, llm_max_retries=0)
    llm.delay = 1.0
    err = await llm_error(settings)
    assert err.message == f"the LLM service at {llm.base_url} did not answer within 0.3 s, after retries"
    assert_one_clean_line(err.message, "sk-test-secret")


def timeout_error(url: str, *behind: BaseException) -> openai.APITimeoutError:
    """An openai timeout error as the aiohttp transport makes it: a ConnectTimeout, then `behind`."""
    exc = openai.APITimeoutError(request=httpx2.Request("POST", url + "/chat/completions"))
    chain: BaseException = exc
    for cause in (httpx2.ConnectTimeout(str(behind[0]) if behind else "timed out"), *behind):
        chain.__cause__ = cause
        chain = cause
    return exc


def test_a_connection_not_made_in_time_names_the_timeout() -> None:
    url = "http://10.1.2.3:8000/v1"
    exc = timeout_error(url, aiohttp.ConnectionTimeoutError("Connection timeout to host " + url))
    assert call_failure(exc, "LLM service", 5.0, url) == (
        f"cannot reach the LLM service at {url}: no connection within 5 s, after retries",
        True,
    )


def test_every_address_refused_is_connection_refused() -> None:
    """With a name of several addresses asyncio joins their errors, without an errno."""
    url = "http://localhost:9/v1"
    joined = OSError(
        "Multiple exceptions: [Errno 111] Connect call failed ('::1', 9, 0, 0), "
        "[Errno 111] Connect call failed ('127.0.0.1', 9)"
    )
    key = SimpleNamespace(host="localhost", port=9, ssl=True)
    exc = timeout_error(url, aiohttp.ClientConnectorError(key, joined), joined)  # type: ignore[arg-type]
    message, transient = call_failure(exc, "LLM service", 5.0, url)
    assert (message, transient) == (f"cannot reach the LLM service at {url}: connection refused", True)


def test_without_a_url_the_request_origin_is_named() -> None:
    """Callers that pass no URL (embeddings, images) get the origin of the failed request, without
    its credentials."""
    exc = timeout_error("http://user:pw@127.0.0.1:9/v1", ConnectionRefusedError(111, "Connect call failed"))
    message, _ = call_failure(exc, "embedding service", 5.0)
    assert message == "cannot reach the embedding service at http://127.0.0.1:9: connection refused"
    assert_one_clean_line(message, "user:pw")
