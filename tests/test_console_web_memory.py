"""Issue 3 end to end: a console run in which the agent searches (Google's API served by a local
fake), browses a local page (through the SSRF guard, allowed by BROWSE_ALLOWED_HOSTS), stores a
memory, and is reminded of it two cycles later."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.llm_server import ScriptedLLM, agent_reply
from tests.fakes.pages import ARTICLE_FACT, PageServer
from tests.fakes.search_api import FakeGoogleSearch
from tests.test_console_e2e import EXIT_FINISHED, console, store  # noqa: F401  (fixtures)

SECRET = "persimmon lantern"


@pytest.fixture
def pages() -> Iterator[PageServer]:
    server = PageServer(second_address=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def google() -> Iterator[FakeGoogleSearch]:
    with FakeGoogleSearch() as server:
        yield server


@pytest.mark.parametrize("store", ["sqlite", "redis"], indirect=True)
def test_search_browse_remember_and_recall(console, llm: ScriptedLLM, pages: PageServer, google) -> None:  # noqa: F811
    article = pages.url("/article")
    llm.script(
        "execution_reply",
        agent_reply("web_search", {"query": "lighthouse keepers history"}),
        agent_reply("browse_website", {"url": article, "question": "How did keepers live?"}),
        agent_reply("memory_add", {"text": f"The keepers' password was {SECRET}"}),
        agent_reply("list_files", {"directory": "."}),
        agent_reply("write_to_file", {"filename": "answer.txt", "text": SECRET}),
        agent_reply("finish", {"reason": "answered"}),
    )
    llm.script("text", "They lived on rocks far out at sea, keeping the lamp.")
    run = console(
        "find out how lighthouse keepers lived and what their password was",
        stdin="y -6\n",
        extra_env={
            "GOOGLE_API_KEY": "g-key",
            "GOOGLE_CUSTOM_SEARCH_ENGINE_ID": "cx-1",
            "GOOGLE_SEARCH_API_URL": google.base_url,
            "BROWSE_ALLOWED_HOSTS": "127.0.0.1",
            "MEMORY_BACKEND": "local",
        },
    )
    assert run.code == EXIT_FINISHED, run.out + run.err
    # the search reached the (fake) search API and its results came back to the agent
    assert google.requests and google.requests[0].params["q"] == "lighthouse keepers history"
    assert "Command web_search returned:" in run.out
    # the page was fetched through the guard and FAST_LLM answered the question from its text
    assert any(seen.path == "/article" for seen in pages.requests)
    question = json.dumps(llm.requests_of("text")[0]["messages"])
    assert "How did keepers live?" in question and ARTICLE_FACT[:40] in question
    assert "Answer gathered from website: They lived on rocks" in run.out
    # the memory stored at cycle 3 is in the prompt of cycle 5, two cycles later
    fifth = llm.requests_of("execution_reply")[4]["messages"]
    reminders = [m["content"] for m in fifth if m["content"].startswith("This reminds you of these events")]
    assert len(reminders) == 1 and SECRET in reminders[0]
    third = llm.requests_of("execution_reply")[2]["messages"]  # before memory_add: nothing to recall yet
    assert not any(SECRET in m["content"] for m in third)
    assert (run.workspace() / "answer.txt").read_text() == SECRET
    assert not llm.unscripted
    assert (Path(run.data) / "memory.sqlite3").exists()
