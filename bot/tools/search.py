"""`web_search`: DuckDuckGo through the `ddgs` package, or Google Custom Search (its JSON API)
when GOOGLE_API_KEY and GOOGLE_CUSTOM_SEARCH_ENGINE_ID are set. Results come back numbered with
title, URL and snippet. Any failure (no network, rate limit, bad key, timeout) becomes a
ToolError with a clear message; the API key never appears in one."""

from __future__ import annotations

import asyncio
import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from pydantic import BaseModel, Field, field_validator

from bot.settings import Settings
from bot.tools.base import ToolContext, ToolError, ToolRegistry

MAX_RESULTS = 10  # Google's most per request
SNIPPET_CHARS = 400
GOOGLE_QUOTA_REASONS = {"dailyLimitExceeded", "quotaExceeded", "rateLimitExceeded", "userRateLimitExceeded"}

# ddgs is synchronous; its searches run here so a hung one never holds the default executor.
_DDGS_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="web_search")


class WebSearchArgs(BaseModel):
    query: str = Field(min_length=1)
    num_results: int = 8

    @field_validator("num_results", mode="after")
    @classmethod
    def _clamp(cls, v: int) -> int:
        return min(max(v, 1), MAX_RESULTS)


class SearchResult(BaseModel):
    title: str
    url: str
    snippet: str = ""


def google_configured(settings: Settings) -> bool:
    key = settings.google_api_key.get_secret_value() if settings.google_api_key else ""
    return bool(key.strip() and settings.google_custom_search_engine_id)


def format_results(query: str, results: list[SearchResult]) -> str:
    if not results:
        return f'No results found for "{query}".'
    lines = [f'Web search results for "{query}":']
    for i, r in enumerate(results, 1):
        snippet = " ".join(r.snippet.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[:SNIPPET_CHARS] + "..."
        lines.append(f"{i}. {' '.join(r.title.split()) or '(no title)'}")
        lines.append(f"   URL: {r.url}")
        if snippet:
            lines.append(f"   {snippet}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- Google


def _google_error(response: httpx.Response) -> str:
    message, reasons = "", set()
    try:
        err = response.json().get("error") or {}
        message = str(err.get("message") or "")[:300]
        reasons = {str(e.get("reason")) for e in err.get("errors") or [] if isinstance(e, dict)}
    except (ValueError, AttributeError):
        pass
    code = response.status_code
    detail = f": {message}" if message else ""
    if code == 429 or (code == 403 and reasons & GOOGLE_QUOTA_REASONS):
        return f"Google search is rate limited or out of quota (HTTP {code}){detail}. Try again later."
    if code in (400, 401, 403):
        return (
            f"Google search refused the request (HTTP {code}){detail}. "
            "Check GOOGLE_API_KEY and GOOGLE_CUSTOM_SEARCH_ENGINE_ID."
        )
    if code >= 500:
        return f"Google search failed (HTTP {code}){detail}. Try again later."
    return f"Google search answered HTTP {code}{detail}."


async def google_search(settings: Settings, query: str, num: int) -> list[SearchResult]:
    key = settings.google_api_key.get_secret_value() if settings.google_api_key else ""
    timeout = settings.web_search_timeout_s
    url = settings.google_search_api_url.rstrip("/") + "/customsearch/v1"
    params = {"key": key, "cx": settings.google_custom_search_engine_id or "", "q": query, "num": str(num)}
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            response = await client.get(url, params=params, headers={"Accept": "application/json"})
    except httpx.TimeoutException:
        raise ToolError(f"Google search did not answer within {timeout:g} s. Try again later.") from None
    except httpx.HTTPError as exc:
        text = (str(exc) or type(exc).__name__).replace(key, "***") if key else str(exc)
        raise ToolError(f"cannot reach Google search: {text[:300]}") from None
    if response.status_code != 200:
        raise ToolError(_google_error(response))
    try:
        data = response.json()
    except ValueError:
        raise ToolError("Google search answered something that is not JSON.") from None
    items = data.get("items") if isinstance(data, dict) else None
    results: list[SearchResult] = []
    for item in items or []:
        if isinstance(item, dict) and item.get("link"):
            results.append(
                SearchResult(
                    title=str(item.get("title") or ""),
                    url=str(item["link"]),
                    snippet=str(item.get("snippet") or ""),
                )
            )
    return results[:num]


# ---------------------------------------------------------------------------- DuckDuckGo


def _ddgs_text(query: str, num: int, timeout_s: float, backend: str) -> list[dict[str, Any]]:
    from ddgs import DDGS

    return DDGS(timeout=max(1, math.ceil(timeout_s))).text(query, max_results=num, backend=backend)


def _ddgs_error(exc: Exception) -> str:
    from ddgs.exceptions import RatelimitException, TimeoutException

    text = re.sub(r"\s+", " ", str(exc)).strip()[:300]
    if isinstance(exc, RatelimitException):
        return f"DuckDuckGo is rate limiting us ({text}). Try again later."
    if isinstance(exc, TimeoutException):
        return f"DuckDuckGo search timed out ({text}). Try again later."
    if "dns" in text.lower() or "connect" in text.lower():
        return f"cannot reach DuckDuckGo search (no network?): {text}"
    return f"DuckDuckGo search failed: {text}"


async def ddgs_search(settings: Settings, query: str, num: int) -> list[SearchResult]:
    timeout = settings.web_search_timeout_s
    backend = settings.web_search_backend.strip() or "duckduckgo"
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(_DDGS_POOL, _ddgs_text, query, num, timeout, backend)
    try:
        rows = await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise ToolError(f"DuckDuckGo search did not answer within {timeout:g} s. Try again later.") from None
    except Exception as exc:
        if str(exc).strip() == "No results found.":  # ddgs' way of saying "nothing"
            return []
        raise ToolError(_ddgs_error(exc)) from None
    results: list[SearchResult] = []
    for row in rows or []:
        url = row.get("href") or row.get("url")
        if url:
            results.append(
                SearchResult(
                    title=str(row.get("title") or ""), url=str(url), snippet=str(row.get("body") or "")
                )
            )
    return results[:num]


# ---------------------------------------------------------------------------- the tool


async def web_search(settings: Settings, query: str, num_results: int = 8) -> str:
    """Search the web; a readable numbered list, or ToolError."""
    num = min(max(num_results, 1), MAX_RESULTS)
    query = query.strip()
    if not query:
        raise ToolError("web_search needs a query")
    if google_configured(settings):
        results = await google_search(settings, query, num)
    else:
        results = await ddgs_search(settings, query, num)
    return format_results(query, results)


def register(registry: ToolRegistry) -> None:
    @registry.tool("web_search", "Search the web", WebSearchArgs, section="Web browsing")
    async def run(ctx: ToolContext, args: WebSearchArgs) -> str:
        return await web_search(ctx.settings, args.query, args.num_results)
