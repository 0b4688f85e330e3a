"""web_search: Google Custom Search end to end against a local fake, and ddgs (DuckDuckGo) for
real, which on a machine without internet must come back as a clear error, quickly."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.models import Place, Session
from bot.settings import Settings
from bot.tools.base import ToolContext, ToolError, ToolRegistry
from bot.tools.search import register
from tests.fakes.search_api import FakeGoogleSearch

KEY = "google-secret-key-123"
CX = "engine-id-42"


@pytest.fixture(scope="module")
def google() -> Iterator[FakeGoogleSearch]:
    with FakeGoogleSearch() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(google: FakeGoogleSearch) -> None:
    google.requests.clear()
    google.items = None
    google.delay = 0.0


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"data_dir": tmp_path, "web_search_timeout_s": 5.0}
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def google_settings(tmp_path: Path, google: FakeGoogleSearch, **overrides: Any) -> Settings:
    return settings_for(
        tmp_path,
        google_api_key=KEY,
        google_custom_search_engine_id=CX,
        google_search_api_url=google.base_url,
        **overrides,
    )


async def run_search(settings: Settings, args: dict[str, Any]) -> str:
    """The way the engine runs a command: look it up, validate the arguments, run it."""
    registry = ToolRegistry()
    register(registry)
    tool = registry.get("web_search", settings)
    assert tool is not None
    session = Session(id="s1", owner="u1", place=Place(platform="test", channel="c"), goals=["g"])
    ctx = ToolContext(session=session, settings=settings, workspace=settings.data_dir)
    return await tool.run(ctx, tool.validate(args))


# ---------------------------------------------------------------------------- Google


async def test_google_sends_query_and_key_and_formats_results(
    tmp_path: Path, google: FakeGoogleSearch
) -> None:
    out = await run_search(google_settings(tmp_path, google), {"query": "autogpt memory", "num_results": 3})

    assert len(google.requests) == 1
    req = google.requests[0]
    assert req.path == "/customsearch/v1"
    assert req.params == {"key": KEY, "cx": CX, "q": "autogpt memory", "num": "3"}
    assert out.splitlines()[0] == 'Web search results for "autogpt memory":'
    assert "1. Result 1 for autogpt memory" in out
    assert "   URL: https://example.com/1?q=autogpt+memory" in out
    assert "   Snippet 1 about autogpt memory. Second line." in out  # whitespace folded
    assert "3. Result 3 for autogpt memory" in out
    assert "4. " not in out


async def test_google_num_results_default_and_clamped(tmp_path: Path, google: FakeGoogleSearch) -> None:
    settings = google_settings(tmp_path, google)
    out = await run_search(settings, {"query": "x"})
    assert google.requests[-1].params["num"] == "8"
    assert "8. Result 8" in out and "9. " not in out

    out = await run_search(settings, {"query": "x", "num_results": "50"})  # Google gives 10 at most
    assert google.requests[-1].params["num"] == "10"
    assert "10. Result 10" in out


async def test_google_no_results(tmp_path: Path, google: FakeGoogleSearch) -> None:
    google.items = []
    out = await run_search(google_settings(tmp_path, google), {"query": "nothing here"})
    assert out == 'No results found for "nothing here".'


async def test_google_rate_limit_is_a_clear_error(tmp_path: Path, google: FakeGoogleSearch) -> None:
    google.fail_next(429, "Quota exceeded for quota metric 'Queries'")
    with pytest.raises(ToolError) as err:
        await run_search(google_settings(tmp_path, google), {"query": "x"})
    msg = str(err.value)
    assert "HTTP 429" in msg and "rate limited" in msg and "Quota exceeded" in msg
    assert KEY not in msg


async def test_google_daily_quota_403_reads_as_rate_limit(tmp_path: Path, google: FakeGoogleSearch) -> None:
    google.fail_next(403, "Daily Limit Exceeded", reason="dailyLimitExceeded")
    with pytest.raises(ToolError, match=r"rate limited or out of quota \(HTTP 403\)"):
        await run_search(google_settings(tmp_path, google), {"query": "x"})


async def test_google_bad_key_is_a_clear_error(tmp_path: Path, google: FakeGoogleSearch) -> None:
    google.fail_next(403, "The request is missing a valid API key.")
    with pytest.raises(ToolError) as err:
        await run_search(google_settings(tmp_path, google), {"query": "x"})
    msg = str(err.value)
    assert "refused the request (HTTP 403)" in msg
    assert "missing a valid API key" in msg and "GOOGLE_API_KEY" in msg
    assert KEY not in msg

    google.fail_next(400, "API key not valid. Please pass a valid API key.")
    with pytest.raises(ToolError, match=r"refused the request \(HTTP 400\)"):
        await run_search(google_settings(tmp_path, google), {"query": "x"})


async def test_google_timeout_is_a_clear_error(tmp_path: Path, google: FakeGoogleSearch) -> None:
    google.delay = 2.0
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"did not answer within 0.3 s"):
        await run_search(google_settings(tmp_path, google, web_search_timeout_s=0.3), {"query": "x"})
    assert time.monotonic() - started < 1.5


async def test_google_unreachable_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = settings_for(
        tmp_path,
        google_api_key=KEY,
        google_custom_search_engine_id=CX,
        google_search_api_url=f"http://127.0.0.1:{port}",
    )
    with pytest.raises(ToolError) as err:
        await run_search(settings, {"query": "x"})
    assert "cannot reach Google search" in str(err.value)
    assert KEY not in str(err.value)


def test_query_is_required(tmp_path: Path) -> None:
    registry = ToolRegistry()
    register(registry)
    tool = registry.get("web_search", settings_for(tmp_path))
    assert tool is not None
    with pytest.raises(ToolError, match="query"):
        tool.validate({"query": ""})
    assert (
        tool.prompt_line()
        == 'web_search: Search the web, args: "query": "<query>", "num_results": "<num_results>"'
    )


# ---------------------------------------------------------------------------- DuckDuckGo (ddgs)


async def test_ddgs_for_real_without_internet_is_a_clear_error(tmp_path: Path) -> None:
    """No Google keys: ddgs. This machine has no internet, so the real search fails; it must come
    back as a ToolError, quickly, never as another exception."""
    settings = settings_for(tmp_path, web_search_timeout_s=3.0)
    started = time.monotonic()
    with pytest.raises(ToolError) as err:
        await run_search(settings, {"query": "autogpt", "num_results": 3})
    assert time.monotonic() - started < 4.0
    msg = str(err.value)
    assert "DuckDuckGo" in msg
    assert "cannot reach" in msg or "did not answer" in msg or "failed" in msg


async def test_ddgs_results_and_num_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ddgs.ddgs import DDGS  # the class itself: `ddgs.DDGS` is a proxy until it is first used

    calls: list[dict[str, Any]] = []

    def fake_text(self: Any, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        calls.append({"query": query, **kwargs})
        return [
            {"title": f"Page {i}", "href": f"https://ddg.example/{i}", "body": f"About {query} {i}"}
            for i in range(1, 16)
        ]

    monkeypatch.setattr(DDGS, "text", fake_text)
    out = await run_search(settings_for(tmp_path), {"query": "python asyncio", "num_results": 4})
    assert calls == [{"query": "python asyncio", "max_results": 4, "backend": "duckduckgo"}]
    assert "4. Page 4\n   URL: https://ddg.example/4\n   About python asyncio 4" in out
    assert "5. " not in out


async def test_ddgs_rate_limit_and_no_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ddgs.ddgs import DDGS  # the class itself: `ddgs.DDGS` is a proxy until it is first used
    from ddgs.exceptions import DDGSException, RatelimitException

    def rate_limited(self: Any, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        raise RatelimitException("https://html.duckduckgo.com/html 202 Ratelimit")

    monkeypatch.setattr(DDGS, "text", rate_limited)
    with pytest.raises(ToolError, match="DuckDuckGo is rate limiting us"):
        await run_search(settings_for(tmp_path), {"query": "x"})

    def nothing(self: Any, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        raise DDGSException("No results found.")

    monkeypatch.setattr(DDGS, "text", nothing)
    assert await run_search(settings_for(tmp_path), {"query": "zzqx"}) == 'No results found for "zzqx".'


async def test_ddgs_hang_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ddgs.ddgs import DDGS  # the class itself: `ddgs.DDGS` is a proxy until it is first used

    def slow(self: Any, query: str, **kwargs: Any) -> list[dict[str, Any]]:
        time.sleep(1.5)
        return []

    monkeypatch.setattr(DDGS, "text", slow)
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"DuckDuckGo search did not answer within 0.3 s"):
        await run_search(settings_for(tmp_path, web_search_timeout_s=0.3), {"query": "x"})
    assert time.monotonic() - started < 1.0
