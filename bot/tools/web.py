"""Web tools with AutoGPT's names and arguments: `browse_website(url, question)` and
`download_file(url, filename)`. Every fetch goes through the SSRF guard in `bot.net`.

browse_website fetches the page (plain HTTP, or headless Chromium when USE_WEB_BROWSER=chromium:
`bot.tools.chromium`), extracts its text and links (`bot.tools.pages`), splits the text into chunks
of BROWSE_CHUNK_MAX_LENGTH characters, has FAST_LLM answer the question from each chunk and then
combine the partial answers, and returns the answer with the page's main links.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bot.llm.client import LLMError
from bot.models import Usage
from bot.net import FetchError, GuardedFetcher
from bot.text import split
from bot.tools.base import ToolContext, ToolError, ToolRegistry
from bot.tools.chromium import render_in_chromium
from bot.tools.files import check_room, file_path
from bot.tools.pages import Page, html_text, hyperlinks, kind_of, page_of

MAX_CHUNKS = 8  # parts of a page read by the LLM; the rest is left out, and the answer says so
LLM_PARALLEL = 4


class BrowseArgs(BaseModel):
    url: str = Field(min_length=1)
    question: str = ""


class DownloadArgs(BaseModel):
    url: str = Field(min_length=1)
    filename: str = Field(min_length=1)


# ------------------------------------------------------------------------------- answering


def chunk_prompt(url: str, chunk: str, question: str, part: int, parts: int) -> list[dict[str, Any]]:
    where = f"Text from {url}" + (f" (part {part} of {parts})" if parts > 1 else "")
    return [
        {
            "role": "user",
            "content": f'{where}:\n"""\n{chunk}\n"""\n\nUsing the above text, answer the following '
            f'question: "{question}" -- if the question cannot be answered using the text, '
            "summarize the text.",
        }
    ]


def combine_prompt(url: str, answers: Sequence[str], question: str) -> list[dict[str, Any]]:
    joined = "\n\n".join(f"Part {i}: {a}" for i, a in enumerate(answers, start=1))
    return [
        {
            "role": "user",
            "content": f'Answers drawn from the parts of the page {url}:\n"""\n{joined}\n"""\n\n'
            f'Combine them into one answer to the following question: "{question}" -- if the '
            "question cannot be answered from them, summarize them.",
        }
    ]


async def answer(ctx: ToolContext, page: Page, question: str) -> tuple[str, int, int]:
    """FAST_LLM's answer to `question` from the page: (answer, chunks read, chunks in all)."""
    if ctx.llm is None:
        raise ToolError("browse_website needs the LLM, and none is configured.")
    question = question.strip() or "What is this page about? Summarize it."
    lines = (line.strip() for line in page.text.splitlines())  # blank lines dropped
    chunks = split("\n".join(line for line in lines if line), ctx.settings.browse_chunk_max_length)
    read = chunks[:MAX_CHUNKS]
    model = ctx.llm.model_for("fast", ctx.session.llm_mode)
    gate = asyncio.Semaphore(LLM_PARALLEL)

    async def ask(messages: list[dict[str, Any]]) -> tuple[str, Usage]:
        async with gate:
            return await ctx.llm.text(model, messages)

    outcomes = await asyncio.gather(
        *(ask(chunk_prompt(page.url, c, question, i, len(read))) for i, c in enumerate(read, start=1)),
        return_exceptions=True,
    )
    partial: list[str] = []
    failures: list[BaseException] = []
    for outcome in outcomes:  # charge every call first, failed ones included
        if isinstance(outcome, BaseException):
            ctx.spend(outcome.usage if isinstance(outcome, LLMError) else Usage())
            failures.append(outcome)
        else:
            text, usage = outcome
            ctx.spend(usage)
            partial.append(text.strip())
    for failure in failures:
        if not isinstance(failure, LLMError):
            raise failure
    if failures:
        message = failures[0].message if isinstance(failures[0], LLMError) else str(failures[0])
        raise ToolError(f"Could not answer from {page.url}: {message}")
    if len(partial) == 1:
        return partial[0], len(read), len(chunks)
    cap = ctx.settings.browse_chunk_max_length
    try:
        text, usage = await ctx.llm.text(
            model, combine_prompt(page.url, [p[:cap] for p in partial], question)
        )
    except LLMError as exc:
        ctx.spend(exc.usage)
        raise ToolError(f"Could not answer from {page.url}: {exc.message}") from None
    ctx.spend(usage)
    return text.strip(), len(read), len(chunks)


def format_result(answer_text: str, links: list[tuple[str, str]]) -> str:
    out = f"Answer gathered from website: {answer_text}"
    if links:
        out += "\n\nLinks:\n" + "\n".join(f"- {text} ({url})" for text, url in links)
    return out


# ---------------------------------------------------------------------------------- tools


async def read_page(ctx: ToolContext, url: str, fetcher: GuardedFetcher | None = None) -> Page:
    fetcher = fetcher or GuardedFetcher(ctx.settings)
    result = await fetcher.fetch(url)
    if ctx.settings.use_web_browser == "chromium" and kind_of(result) == "html":
        html, final_url = await render_in_chromium(ctx.settings, fetcher, result)
        text = await asyncio.to_thread(html_text, html, final_url)
        links = await asyncio.to_thread(hyperlinks, html, final_url)
        return Page(final_url, result.content_type, text, links)
    return await asyncio.to_thread(page_of, result)


def readable_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover


def register(registry: ToolRegistry) -> None:
    @registry.tool(
        "browse_website",
        "Browse Website: answer a question from a web page (HTML, text, JSON or PDF); "
        "returns the answer and the page's links",
        BrowseArgs,
        outside_effects=False,  # it reads the web
        section="Web browsing",
    )
    async def browse_website(ctx: ToolContext, args: BrowseArgs) -> str:
        try:
            page = await read_page(ctx, args.url)
        except FetchError as exc:
            raise ToolError(exc.message) from None
        if not page.text:
            return format_result(f"(the page {page.url} has no readable text)", page.links)
        text, read, total = await answer(ctx, page, args.question)
        if total > read:
            text += f"\n(Only the first {read} of {total} parts of the page were read.)"
        return format_result(text, page.links)

    @registry.tool(
        "download_file",
        "Download File: save the file at a URL into the workspace",
        DownloadArgs,
        outside_effects=False,  # it reads the web and writes only the session's workspace
        off=lambda settings: None if settings.allow_downloads else "ALLOW_DOWNLOADS is off",
        section="Web browsing",
    )
    async def download_file(ctx: ToolContext, args: DownloadArgs) -> str:
        path = file_path(ctx, args.filename)
        try:
            result = await GuardedFetcher(ctx.settings).fetch(args.url)
        except FetchError as exc:
            raise ToolError(exc.message) from None
        await asyncio.to_thread(check_room, ctx, path, len(result.body))
        await asyncio.to_thread(_write_bytes, path, result.body)
        shown = f", {result.content_type}" if result.content_type else ""
        return (
            f'Successfully downloaded and locally stored file: "{args.filename}"! '
            f"(Size: {readable_size(len(result.body))}{shown}, from {result.url})"
        )


def _write_bytes(path: Path, body: bytes) -> None:
    """Write `body` to `path` whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        partial.write_bytes(body)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
