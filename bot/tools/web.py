"""Web tools with AutoGPT's names and arguments: `browse_website(url, question)` and
`download_file(url, filename)`. Every fetch goes through the SSRF guard in `bot.net`.

browse_website fetches the page (plain HTTP, or headless Chromium when USE_WEB_BROWSER=chromium
so that pages written by JavaScript can be read), extracts the readable text (trafilatura for
HTML, pypdf for PDF; plain text and JSON as they are), splits it into chunks of
BROWSE_CHUNK_MAX_LENGTH characters, has FAST_LLM answer the question from each chunk and then
combine the partial answers, and returns the answer with the page's main links.

With Chromium the guard still holds: the page is first fetched through the guard (redirects
checked), the browser gets the host pinned to a checked address
(`--host-resolver-rules="MAP host ip, MAP * ~NOTFOUND"`: it can resolve nothing else, IP literals
included), and every request the page makes is routed: the page's own host goes to the pinned
address; any other host is checked and fetched through the guard, or aborted.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import io
import json
import logging
import os
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, Field

from bot.llm.client import LLMError
from bot.models import Usage
from bot.net import FetchError, FetchResult, GuardedFetcher, resolve_checked
from bot.settings import Settings
from bot.tools.base import ToolContext, ToolError, ToolRegistry
from bot.tools.env import tool_env
from bot.tools.files import check_room, file_path

log = logging.getLogger(__name__)

MAX_CHUNKS = 8  # parts of a page read by the LLM; the rest is left out, and the answer says so
MAX_LINKS = 20
MAX_PDF_PAGES = 200
LLM_PARALLEL = 4
BROWSER_MAX_REQUESTS = 200  # requests one page may make in Chromium
BROWSERS_AT_ONCE = 2
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
]
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("application/json", "application/ld+json", "application/xml", "text/xml")
_DROP_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}


class BrowseArgs(BaseModel):
    url: str = Field(min_length=1)
    question: str = ""


class DownloadArgs(BaseModel):
    url: str = Field(min_length=1)
    filename: str = Field(min_length=1)


@dataclass
class Page:
    url: str
    content_type: str
    text: str
    links: list[tuple[str, str]]  # (text, absolute url)


# ------------------------------------------------------------------------------ extraction


def kind_of(result: FetchResult) -> str:
    """html, pdf, text, or the content type that cannot be read."""
    ctype = result.content_type
    if ctype in HTML_TYPES:
        return "html"
    if ctype == "application/pdf":
        return "pdf"
    if ctype.startswith("text/") or ctype in TEXT_TYPES or ctype.endswith(("+json", "+xml")):
        return "text"
    if not ctype or ctype == "application/octet-stream":  # undeclared: look at the bytes
        head = result.body[:512].lstrip().lower()
        if head.startswith(b"%pdf-"):
            return "pdf"
        if head.startswith((b"<!doctype html", b"<html")):
            return "html"
        if b"\x00" not in result.body[:4096]:
            try:  # not final: the sample may end inside a character
                codecs.getincrementaldecoder("utf-8")().decode(result.body[:4096], final=False)
                return "text"
            except UnicodeDecodeError:
                pass
    return ctype or "unknown"


def html_text(html: str, url: str) -> str:
    """The readable text of a page: trafilatura's main content, else all of its text."""
    import trafilatura

    text = trafilatura.extract(
        html, url=url, include_comments=False, include_tables=True, favor_recall=True, deduplicate=False
    )
    if not text or not text.strip():
        text = trafilatura.html2txt(html) or ""
    return text.strip()


def hyperlinks(html: str, base_url: str, limit: int = MAX_LINKS) -> list[tuple[str, str]]:
    """AutoGPT's get_hyperlinks: (text, absolute URL) of the page's http(s) links, those inside
    <main> or <article> first, without duplicates or links to the same page, at most `limit`."""
    import lxml.html
    from lxml import etree

    try:
        doc = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    base = base_url
    for el in doc.iter("base"):
        if el.get("href"):
            base = urljoin(base_url, el.get("href", ""))
            break
    anchors = list(doc.iter("a"))
    main = {id(a) for a in anchors if any(p.tag in ("main", "article") for p in a.iterancestors())}
    ordered = [a for a in anchors if id(a) in main] + [a for a in anchors if id(a) not in main]
    here = base_url.split("#", 1)[0]
    seen: set[str] = set()
    links: list[tuple[str, str]] = []
    for a in ordered:
        href = (a.get("href") or "").strip()
        if not href:
            continue
        try:
            absolute = urljoin(base, href).split("#", 1)[0]
        except ValueError:
            continue
        if urlsplit(absolute).scheme not in ("http", "https") or absolute == here or absolute in seen:
            continue
        seen.add(absolute)
        text = " ".join(a.text_content().split()) or (a.get("title") or "").strip() or absolute
        links.append((text[:200], absolute))
        if len(links) >= limit:
            break
    return links


def pdf_text(body: bytes) -> str:
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(body))
        if reader.is_encrypted:
            try:
                reader.decrypt("")
            except Exception:
                raise ToolError("The PDF is encrypted and cannot be read.") from None
        parts = [(page.extract_text() or "").strip() for page in reader.pages[:MAX_PDF_PAGES]]
    except ToolError:
        raise
    except Exception as exc:  # a malformed PDF can fail in many ways inside pypdf
        raise ToolError(f"The PDF could not be read: {type(exc).__name__}: {exc}") from None
    return "\n\n".join(p for p in parts if p)


def plain_text(result: FetchResult) -> str:
    text = result.text()
    if "json" in result.content_type:
        try:
            text = json.dumps(json.loads(text), indent=1, ensure_ascii=False)
        except ValueError:
            pass
    return text.strip()


def page_of(result: FetchResult) -> Page:
    kind = kind_of(result)
    if kind == "html":
        html = result.text()
        return Page(
            result.url, result.content_type, html_text(html, result.url), hyperlinks(html, result.url)
        )
    if kind == "pdf":
        return Page(result.url, result.content_type, pdf_text(result.body), [])
    if kind == "text":
        return Page(result.url, result.content_type, plain_text(result), [])
    raise ToolError(
        f"Cannot read {result.url}: its content type is {kind}, and browse_website reads only "
        "web pages (HTML), plain text, JSON and PDF."
        + (" Use download_file to save it to the workspace." if kind != "unknown" else "")
    )


def split_text(text: str, max_length: int) -> list[str]:
    """Chunks of at most `max_length` characters, cut at line ends, else at spaces."""
    chunks: list[str] = []
    current = ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        while len(line) > max_length:
            cut = line.rfind(" ", 0, max_length)
            cut = cut if cut > max_length // 2 else max_length
            piece, line = line[:cut].strip(), line[cut:].strip()
            if current:
                chunks.append(current)
                current = ""
            chunks.append(piece)
        if current and len(current) + 1 + len(line) > max_length:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


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
    chunks = split_text(page.text, ctx.settings.browse_chunk_max_length)
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


# --------------------------------------------------------------------------------- chromium


def _url_host(url: str) -> str:
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def resolver_rules(host: str, ip: str) -> str:
    """Chromium may resolve the page's host to the checked address, and nothing else."""
    pattern = f"[{host}]" if ":" in host else host
    target = f"[{ip}]" if ":" in ip else ip
    return f"MAP {pattern} {target},MAP * ~NOTFOUND"


async def render_in_chromium(
    settings: Settings, fetcher: GuardedFetcher, first: FetchResult
) -> tuple[str, str]:
    """The HTML of `first` after Chromium ran its scripts, and the URL it ended at. `first` was
    fetched through the guard; the browser gets its document from it and reaches nothing the
    guard would refuse."""
    path = settings.chromium_path
    if not _executable(path):
        raise ToolError(
            f"USE_WEB_BROWSER=chromium, but there is no Chromium at {path} (CHROMIUM_PATH). "
            "Install it (apt-get install chromium) or set USE_WEB_BROWSER=http."
        )
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import Route, async_playwright
    except ImportError:  # pragma: no cover - a dependency of the project
        raise ToolError("USE_WEB_BROWSER=chromium needs the playwright package.") from None

    page_url = first.url
    parsed = httpx.URL(page_url)
    page_host = _url_host(page_url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    checked = await resolve_checked(parsed.host, port, fetcher.policy, fetcher.resolver)
    pinned = str(checked[0])
    budget = {"requests": 0}
    served_document = False

    async def handle(route: Route) -> None:
        nonlocal served_document
        request = route.request
        url = request.url
        if urlsplit(url).scheme not in ("http", "https"):
            await route.abort("blockedbyclient")
            return
        budget["requests"] += 1
        if budget["requests"] > BROWSER_MAX_REQUESTS:
            await route.abort("blockedbyclient")
            return
        if not served_document and request.is_navigation_request() and url.split("#")[0] == page_url:
            served_document = True  # the document the guard fetched: not fetched twice
            await route.fulfill(status=200, headers=_browser_headers(first), body=first.body)
            return
        if _url_host(url) == page_host:
            await route.continue_()  # to the pinned, checked address
            return
        if request.method != "GET":
            await route.abort("blockedbyclient")
            return
        try:
            result = await fetcher.fetch(url, headers={"Referer": page_url})
        except FetchError as exc:
            log.info("browser request refused: %s", exc.message)
            await route.abort("blockedbyclient")
            return
        await route.fulfill(status=result.status, headers=_browser_headers(result), body=result.body)

    async def on_route(route: Route) -> None:
        try:
            await handle(route)
        except PlaywrightError:  # the page went away meanwhile
            pass
        except Exception:
            log.warning("browser request handling failed", exc_info=True)
            with contextlib.suppress(PlaywrightError):
                await route.abort("failed")

    async def run() -> tuple[str, str]:
        args = [*CHROMIUM_ARGS, f"--host-resolver-rules={resolver_rules(page_host, pinned)}"]
        if settings.headless_browser:
            args.insert(0, "--headless")
        with tempfile.TemporaryDirectory(prefix="autogpt-chromium-") as profile:
            async with async_playwright() as pw:
                context = await pw.chromium.launch_persistent_context(
                    profile,
                    executable_path=path,
                    headless=settings.headless_browser,
                    args=args,
                    user_agent=settings.user_agent,
                    service_workers="block",
                    accept_downloads=False,
                    timeout=15_000,
                    env=tool_env(settings, Path(profile)),  # not the bot's: no key or token
                )
                try:
                    await context.route("**/*", on_route)
                    page = await context.new_page()
                    await page.route_web_socket("**/*", lambda ws: ws.close())
                    await page.goto(page_url, wait_until="load", timeout=settings.browse_timeout_s * 1000)
                    try:
                        await page.wait_for_load_state("networkidle", timeout=3_000)
                    except PlaywrightError:
                        pass  # a page that keeps polling: read what is there
                    if not page.url.startswith(("http://", "https://")):  # e.g. chrome-error://
                        raise FetchError(
                            f"Chromium could not show {page_url}: the page went on to an address "
                            "that is refused or cannot be reached."
                        )
                    return await page.content(), page.url
                finally:
                    await context.close()

    try:
        async with _browser_gate(), asyncio.timeout(settings.browse_timeout_s + 30):
            return await run()
    except TimeoutError:
        raise FetchError(f"Timed out: Chromium did not render {page_url} in time.") from None
    except PlaywrightError as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FetchError(f"Chromium could not load {page_url}: {first_line}") from None


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _browser_gate() -> asyncio.Semaphore:
    """At most BROWSERS_AT_ONCE Chromium instances per event loop: each takes hundreds of MB."""
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(BROWSERS_AT_ONCE)
    return gate


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _browser_headers(result: FetchResult) -> dict[str, str]:
    headers = {k: v for k, v in (result.headers or {}).items() if k.lower() not in _DROP_HEADERS}
    if result.content_type:
        media = result.content_type + (f"; charset={result.charset}" if result.charset else "")
        headers["content-type"] = media
    return headers


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
        enabled=lambda settings: settings.allow_downloads,
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
