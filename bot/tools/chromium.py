"""Headless Chromium (through playwright) to render pages written by JavaScript, behind the SSRF
guard in `bot.net`.

The page is first fetched through the guard (redirects checked) and the browser gets that
document; it gets the host pinned to a checked address
(`--host-resolver-rules="MAP host ip, MAP * ~NOTFOUND"`: it can resolve nothing else, IP literals
included), and every request the page makes is routed: the page's own host goes to the pinned
address; any other host is checked and fetched through the guard, or aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import weakref
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from bot.net import FetchError, FetchResult, GuardedFetcher, resolve_checked
from bot.settings import Settings
from bot.tools.base import ToolError
from bot.tools.env import tool_env

log = logging.getLogger(__name__)

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
_DROP_HEADERS = {"content-encoding", "content-length", "transfer-encoding", "connection", "keep-alive"}


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
