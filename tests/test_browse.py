"""browse_website and download_file end to end: the local page server, the scripted LLM, the real
SSRF guard, and (when /usr/bin/chromium is there) a real headless Chromium."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.llm.client import LLMClient
from bot.models import Place, Session
from bot.settings import Settings
from bot.text import split
from bot.tools.base import ToolContext, ToolError, ToolRegistry
from bot.tools.web import register
from tests.conftest import make_settings
from tests.fakes.llm_server import Error, ScriptedLLM
from tests.fakes.pages import (
    ARTICLE_FACT,
    JS_TEXT,
    PDF_TEXT,
    PLAIN_TEXT,
    SECRET,
    PageServer,
    file_bytes,
)

CHROMIUM = Path("/usr/bin/chromium")
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
)


@pytest.fixture(scope="module")
def server() -> Iterator[PageServer]:
    with PageServer() as s:
        yield s


@pytest.fixture
def pages(server: PageServer) -> PageServer:
    server.reset()
    return server


@pytest.fixture(scope="module")
def registry() -> ToolRegistry:
    r = ToolRegistry()
    register(r)
    return r


@contextlib.asynccontextmanager
async def tool_context(tmp_path: Path, llm: ScriptedLLM, **overrides: Any) -> AsyncIterator[ToolContext]:
    values: dict[str, Any] = {"browse_allowed_hosts": ["127.0.0.1"]}
    values.update(overrides)
    settings = make_settings(tmp_path, llm, **values)
    client = LLMClient(settings)
    ctx = ToolContext(
        session=Session(id="abc234", owner="U1", place=Place(platform="test", channel="C"), goals=["g"]),
        settings=settings,
        workspace=tmp_path / "ws",
        llm=client,
    )
    ctx.workspace.mkdir(parents=True, exist_ok=True)
    try:
        yield ctx
    finally:
        await client.close()


async def run(registry: ToolRegistry, ctx: ToolContext, name: str, **args: Any) -> str:
    tool = registry.get(name, ctx.settings)
    assert tool is not None, f"{name} is not available"
    return await tool.run(ctx, tool.validate(args))


def prompts(llm: ScriptedLLM) -> list[str]:
    return [body["messages"][-1]["content"] for body in llm.requests_of("text")]


# --------------------------------------------------------------------------- browse_website


async def test_browse_answers_the_question_from_the_page(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.script("text", "Every four hours, through the night.")
    async with tool_context(tmp_path, llm) as ctx:
        out = await run(
            registry,
            ctx,
            "browse_website",
            url=pages.url("/article"),
            question="How often were wicks trimmed?",
        )
    assert out.startswith("Answer gathered from website: Every four hours, through the night.\n\nLinks:\n")
    assert f"- full history of the service ({pages.url('/history')})" in out
    assert "- keepers' association page (http://example.org/keepers)" in out
    assert f"- About us ({pages.url('/about')})" in out
    assert "mailto:" not in out and "javascript:" not in out
    [body] = llm.requests_of("text")
    assert body["model"] == "gpt-4o-mini"  # FAST_LLM
    prompt = body["messages"][-1]["content"]
    assert '"How often were wicks trimmed?"' in prompt
    assert ARTICLE_FACT in prompt
    assert ctx.usage.calls == 1
    assert ctx.usage.prompt_tokens > 0 and ctx.usage.completion_tokens > 0
    assert ctx.usage.cost_usd > 0


async def test_links_are_capped_at_twenty(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.script("text", "An index.")
    async with tool_context(tmp_path, llm, browse_chunk_max_length=5000) as ctx:
        out = await run(registry, ctx, "browse_website", url=pages.url("/many-links"), question="What is it?")
    links = [line for line in out.splitlines() if line.startswith("- ")]
    assert len(links) == 20
    assert links[0] == f"- Page number 0 ({pages.url('/page/0')})"


async def test_a_long_page_is_chunked_capped_and_combined(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.script("text", *[f"partial answer {i}" for i in range(8)], "The combined answer.")
    async with tool_context(tmp_path, llm, browse_chunk_max_length=600) as ctx:
        out = await run(registry, ctx, "browse_website", url=pages.url("/long?paras=30"), question="When?")
    total = len(split("\n".join(["x" * 290] * 30), 600))
    assert total > 8
    assert out.startswith("Answer gathered from website: The combined answer.")
    assert f"(Only the first 8 of {total} parts of the page were read.)" in out
    sent = prompts(llm)
    assert len(sent) == 9
    chunk_prompts, combine = sent[:8], sent[8]
    assert all(len(p) < 600 + 400 for p in chunk_prompts)
    assert sorted(int(p.split("(part ")[1].split(" ")[0]) for p in chunk_prompts) == list(range(1, 9))
    assert all(f"partial answer {i}" in combine for i in range(8))
    assert '"When?"' in combine
    assert ctx.usage.calls == 9


async def test_a_failed_llm_call_is_a_tool_error_and_what_was_spent_is_charged(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.script("text", "first part", Error(400, "bad request from the scripted LLM"))
    async with tool_context(tmp_path, llm, browse_chunk_max_length=600, llm_max_retries=0) as ctx:
        with pytest.raises(ToolError, match=r"Could not answer from .*bad request from the scripted LLM"):
            await run(registry, ctx, "browse_website", url=pages.url("/long?paras=3"), question="When?")
    assert len(llm.requests_of("text")) == 2
    assert ctx.usage.calls == 1  # the successful call; the refused one reported no usage


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/doc.pdf", PDF_TEXT), ("/plain.txt", PLAIN_TEXT), ("/data.json", '"from": "North Pier"')],
)
async def test_pdf_text_and_json_are_read(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path, path: str, expected: str
) -> None:
    llm.script("text", "Read it.")
    async with tool_context(tmp_path, llm) as ctx:
        out = await run(registry, ctx, "browse_website", url=pages.url(path), question="What does it say?")
    assert out == "Answer gathered from website: Read it."
    [prompt] = prompts(llm)
    assert expected in prompt


async def test_an_image_is_refused_by_content_type(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    async with tool_context(tmp_path, llm) as ctx:
        with pytest.raises(ToolError, match="its content type is image/png") as caught:
            await run(registry, ctx, "browse_website", url=pages.url("/image.png"), question="What?")
    assert "download_file" in str(caught.value)
    assert llm.requests_of("text") == []
    assert ctx.usage.calls == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/status/404", "HTTP error 404 Not Found from http://127.0.0.1"),
        ("/huge?mb=2", "Too big"),
        ("file:///etc/passwd", "only http and https"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("/redirect-to?url=http://10.0.0.1/", "redirected to a refused address"),
    ],
)
async def test_fetch_errors_reach_the_agent_clearly(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path, url: str, message: str
) -> None:
    async with tool_context(tmp_path, llm, browse_max_bytes=1024 * 1024) as ctx:
        with pytest.raises(ToolError, match=message):
            await run(
                registry, ctx, "browse_website", url=pages.url(url) if url[0] == "/" else url, question="?"
            )
    assert llm.requests_of("text") == []


async def test_the_page_server_is_refused_without_the_allow_list(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    async with tool_context(tmp_path, llm, browse_allowed_hosts=[]) as ctx:
        with pytest.raises(ToolError, match=r"Refused to connect to 127\.0\.0\.1: it is a loopback address"):
            await run(registry, ctx, "browse_website", url=pages.url("/article"), question="?")
    assert pages.requests == []


# ------------------------------------------------------------------------------ download_file


def test_download_file_is_off_by_default(registry: ToolRegistry, tmp_path: Path) -> None:
    off = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert "download_file" not in {t.name for t in registry.available(off)}
    assert "browse_website" in {t.name for t in registry.available(off)}
    on = Settings(_env_file=None, data_dir=tmp_path, allow_downloads=True)  # type: ignore[call-arg]
    assert "download_file" in {t.name for t in registry.available(on)}
    assert registry.get("download_file", off) is None
    for tool in registry.available(on):
        assert tool.outside_effects is False


async def test_download_writes_into_the_workspace(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    async with tool_context(tmp_path, llm, allow_downloads=True) as ctx:
        out = await run(
            registry, ctx, "download_file", url=pages.url("/file.bin?kb=8"), filename="sub/data.bin"
        )
    assert (ctx.workspace / "sub" / "data.bin").read_bytes() == file_bytes(8)
    assert out.startswith('Successfully downloaded and locally stored file: "sub/data.bin"! (Size: 8.0 KB')
    assert sorted(p.name for p in (ctx.workspace / "sub").iterdir()) == ["data.bin"]


async def test_download_refuses_a_path_outside_the_workspace(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    async with tool_context(tmp_path, llm, allow_downloads=True) as ctx:
        for name in ("../escape.bin", "/tmp/escape.bin"):
            with pytest.raises(ToolError, match="outside the workspace"):
                await run(registry, ctx, "download_file", url=pages.url("/file.bin"), filename=name)
    assert not (tmp_path / "escape.bin").exists()
    assert pages.requests == []  # refused before fetching anything


async def test_download_size_cap_leaves_no_file(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    async with tool_context(tmp_path, llm, allow_downloads=True, browse_max_bytes=4096) as ctx:
        with pytest.raises(ToolError, match="Too big"):
            await run(registry, ctx, "download_file", url=pages.url("/file.bin?kb=16"), filename="big.bin")
        assert list(ctx.workspace.iterdir()) == []
        with pytest.raises(ToolError, match="Refused"):
            await run(registry, ctx, "download_file", url="http://10.0.0.1/x.bin", filename="x.bin")


async def test_download_is_capped_per_file_and_per_workspace(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    async with tool_context(tmp_path, llm, allow_downloads=True, max_file_bytes=6 * 1024) as ctx:
        with pytest.raises(ToolError, match="MAX_FILE_BYTES"):
            await run(registry, ctx, "download_file", url=pages.url("/file.bin?kb=8"), filename="big.bin")
        assert list(ctx.workspace.iterdir()) == []
    quota = 12 / 1024  # MB: room for two 5 KB files, not three
    async with tool_context(tmp_path, llm, allow_downloads=True, workspace_quota_mb=quota) as ctx:
        for name in ("a.bin", "b.bin"):
            await run(registry, ctx, "download_file", url=pages.url("/file.bin?kb=5"), filename=name)
        with pytest.raises(ToolError, match="WORKSPACE_QUOTA_MB"):
            await run(registry, ctx, "download_file", url=pages.url("/file.bin?kb=5"), filename="c.bin")
        # replacing a file counts its old size out
        await run(registry, ctx, "download_file", url=pages.url("/file.bin?kb=6"), filename="a.bin")
        assert sorted(p.name for p in ctx.workspace.iterdir()) == ["a.bin", "b.bin"]


# ----------------------------------------------------------------------------------- chromium


async def test_chromium_configured_but_missing_is_a_clear_error(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    missing = str(tmp_path / "no-chromium")
    async with tool_context(tmp_path, llm, use_web_browser="chromium", chromium_path=missing) as ctx:
        with pytest.raises(ToolError, match=f"no Chromium at {missing}"):
            await run(registry, ctx, "browse_website", url=pages.url("/js"), question="?")
    assert llm.requests_of("text") == []


async def test_without_chromium_a_script_written_page_is_not_rendered(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.script("text", "Nothing yet.")
    async with tool_context(tmp_path, llm) as ctx:
        await run(registry, ctx, "browse_website", url=pages.url("/js"), question="When does it open?")
    [prompt] = prompts(llm)
    assert "Loading..." in prompt and JS_TEXT not in prompt


@needs_chromium
async def test_chromium_renders_a_javascript_page(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    llm.script("text", "At dawn.")
    async with tool_context(tmp_path, llm, use_web_browser="chromium") as ctx:
        out = await run(registry, ctx, "browse_website", url=pages.url("/js"), question="When does it open?")
    assert out == "Answer gathered from website: At dawn."
    [prompt] = prompts(llm)
    assert JS_TEXT in prompt
    assert pages.paths().count("/js") == 1  # Chromium got the document the guard fetched


@needs_chromium
async def test_chromium_requests_go_through_the_guard(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    """The page (on the allowed 127.0.0.1) makes the browser fetch 127.0.0.2 (refused by the
    guard), a same-host URL that redirects to 127.0.0.2 (the redirected request is routed again
    and refused), and localhost (allowed, so the guard fetches it for the browser); it also frames
    127.0.0.2 directly and through a same-host redirect."""
    llm.script("text", "Done.")
    other = f"http://127.0.0.2:{pages.port}/secret"
    urls = [other, f"/redirect-to?url={other}", f"http://localhost:{pages.port}/secret"]
    frames = [other, f"/redirect-to?url={other}"]
    query = "&".join([*(f"url={u}" for u in urls), *(f"frame={f}" for f in frames)])
    allowed = ["127.0.0.1", "localhost"]  # by name too: localhost may also resolve to ::1
    async with tool_context(tmp_path, llm, use_web_browser="chromium", browse_allowed_hosts=allowed) as ctx:
        await run(registry, ctx, "browse_website", url=pages.url(f"/js-fetch?{query}"), question="?")
    [prompt] = prompts(llm)
    assert "Blocked 0" in prompt
    assert "Blocked 1" in prompt
    assert f"Fetched 2: {SECRET}" in prompt
    assert [s for s in pages.requests if s.local == "127.0.0.2"] == []  # nothing reached 127.0.0.2
    assert [s.path for s in pages.requests].count("/redirect-to") == 2  # both redirects were tried


@needs_chromium
async def test_chromium_cannot_follow_a_redirect_off_the_pinned_host(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    """The page sends the window to a same-host URL that redirects to 127.0.0.2. Chromium does not
    route a navigation's redirect, so only the resolver rules (the pinned host, nothing else, IP
    literals included) stop it: 127.0.0.2 is never reached, and the agent is told."""
    llm.script("text", "Done.")
    other = f"http://127.0.0.2:{pages.port}/secret"
    async with tool_context(tmp_path, llm, use_web_browser="chromium") as ctx:
        with pytest.raises(ToolError, match=r"Chromium could not show .*refused or cannot be reached"):
            await run(registry, ctx, "browse_website", url=pages.url(f"/js-go?url=/redirect-to?url={other}"))
    assert "/redirect-to" in pages.paths()  # the browser did go there
    assert [s for s in pages.requests if s.local == "127.0.0.2"] == []
    assert llm.requests_of("text") == []


@needs_chromium
async def test_chromium_still_refuses_the_loopback_without_the_allow_list(
    registry: ToolRegistry, pages: PageServer, llm: ScriptedLLM, tmp_path: Path
) -> None:
    async with tool_context(tmp_path, llm, use_web_browser="chromium", browse_allowed_hosts=[]) as ctx:
        with pytest.raises(ToolError, match=r"Refused to connect to 127\.0\.0\.1"):
            await run(registry, ctx, "browse_website", url=pages.url("/js"), question="?")
    assert pages.requests == []
    assert json.dumps(llm.requests_of("text")) == "[]"
