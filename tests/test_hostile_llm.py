"""A hostile scripted LLM: replies that are not JSON, of the wrong types, 5 MB and 50 MB long,
with lone surrogates, with 10,000 tasks; connections reset; answers that are not HTTP. No
traceback reaches a user, no session is lost, a paused session resumes once the LLM behaves, and
the console process stays under 300 MB.

The real openai client talks to tests/fakes/llm_server.py over HTTP; the real core, SQLite store
and test chat platform (the store is not what these tests are about: SQLite only).

Cases (27)
----------
test_a_reply_that_cannot_be_read_twice_pauses_clearly_and_resumes (13): the execution reply is
scripted twice with the same hostile thing, so the re-ask fails too:
  1. not JSON (``Raw("hello")``)
  2. wrong types (``Raw('{"thoughts": 5, "command": []}')``)
  3. a 5 MB reply with a Content-Length header (``Huge(5_000_000)``)
  4. a 5 MB reply, chunked (no Content-Length)
  5. a 5 MB reply that is not JSON, chunked
  6. a body that is not UTF-8
  7. a completion whose own JSON holds a lone surrogate escape (``"\\ud800"``)
  8. JSON that is not a chat completion (``[1,2]``)
  9. a chat completion whose content is a number
 10. an HTML error page with status 200
 11. an empty body
 12. JSON nested 100,000 deep
 13. a chat completion without choices
  Each: the session is kept, paused (kind "error") with one line starting "The step failed: the
  model's reply could not be understood"; the reason, `status` and everything posted hold no
  traceback, "internal error", PydanticSerializationError or server path; the stored session
  stays under 100 kB; approved once the LLM behaves, it proposes the next step.
test_one_hostile_reply_then_a_good_one_goes_on (5): a 5 MB reply that is not JSON, a completion
  with a lone surrogate escape, JSON that is not a completion, a connection reset, an answer that
  is not HTTP, each once and followed by a good reply: the step is proposed, nothing paused.
test_lone_surrogates_in_the_content_are_replaced (1): lone surrogate escapes inside the
  assistant's JSON (thoughts, command arguments, task list) become U+FFFD; the step runs.
test_ten_thousand_tasks_keep_twenty (1): 10,000 tasks (and three of 5,000 characters) in every
  task list reply of a 3-cycle continuous run: at most 20 tasks kept and shown, each at most 500
  characters, and the next prompts stay small.
test_a_dropped_or_non_http_answer_pauses_clearly_and_resumes (5): a reset (RST), a connection
  closed without an answer, ``HELLO``, binary bytes, an HTTP answer cut short, on every try:
  paused with one line that says which ("cannot reach the LLM service", "its answer was not valid
  HTTP", "broke off its answer"), resumed afterwards.
test_a_broken_reply_just_under_the_cap_does_not_stall_the_bot (1): a 400 kB reply that is an
  unterminated JSON string does not block the event loop for seconds (json-repair is quadratic:
  a reply that long is asked again instead of repaired).
test_console_survives_a_hostile_run_in_bounded_memory (1, a subprocess): ``autogpt-bot console
  --continuous --continuous-limit 3`` through a 50 MB chunked reply, a 5 MB reply, 10,000 tasks
  in every task list, a lone surrogate and a non-HTTP answer: peak RSS (VmHWM) under 300 MB, the
  50 MB reply dealt with in under 10 s, no traceback, exit code 4 (the continuous limit), the
  three cycles ran, and ``console --resume ID`` finds the session afterwards.
Every test also checks that the scripted server (aiohttp) logged no error or traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core import Core
from bot.grammar import GoalCommand
from bot.models import Actor, Place, Session, SessionState
from bot.settings import Settings
from tests.fakes.chat import TestPlatform
from tests.fakes.llm_server import (
    Body,
    Garbage,
    Huge,
    Raw,
    ReplyLike,
    Reset,
    ScriptedLLM,
    agent_reply,
    tasks_reply,
)
from tests.test_console_e2e import CONSOLE_SCRIPT, SESSION_LINE, scripted_environ

OWNER = "U1"
PLACE = Place(platform="test", channel="C1")
ME = Actor(platform="test", user_id=OWNER, name="owner")
REPO = Path(__file__).resolve().parent.parent
FORBIDDEN = ("Traceback", 'File "', "internal error", "PydanticSerializationError", str(REPO))
STORED_LIMIT = 100_000  # bytes a session may take in the store, whatever the LLM sent
MEMORY_LIMIT = 300 * 1024 * 1024  # peak RSS of the console process
DOCUMENTED_EXITS = {0, 1, 3, 4, 5}  # README: finished, error, stopped, limit or budget, waiting

UNREADABLE = "The step failed: the model's reply could not be understood, even when asked again"


@pytest.fixture
def store_kind() -> str:
    """SQLite only: what is tested here is the LLM client and the engine, not the store."""
    return "sqlite"


@pytest.fixture(autouse=True)
def server_logs_no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The scripted server (aiohttp, in its own thread) answers every hostile reply without
    logging an error or a traceback."""
    caplog.set_level(logging.WARNING, logger="aiohttp")
    caplog.set_level(logging.WARNING, logger="asyncio")
    yield
    noisy = [
        r
        for r in caplog.records
        if r.name.split(".")[0] in ("aiohttp", "asyncio") and (r.exc_info or r.levelno >= logging.ERROR)
    ]
    assert not noisy, [f"{r.name}: {r.getMessage()}" for r in noisy]


# ---------------------------------------------------------------------------- helpers


async def start(core: Core, *goals: str, **kw: Any) -> str:
    outcome = await core.service.start(ME, PLACE, GoalCommand(goals=list(goals) or ["write a poem"], **kw))
    assert outcome.ok and outcome.session_id is not None, outcome.message
    await core.runner.idle(30)
    return outcome.session_id


async def stored(core: Core, sid: str) -> Session:
    session = await core.store.get(sid)
    assert session is not None, f"session {sid} was lost"
    return session


def chat_text(chat: TestPlatform) -> str:
    """Everything the core posted to the chat, every edit included, as JSON."""
    return json.dumps(
        [
            [m.view.model_dump(mode="json"), *[e.model_dump(mode="json") for e in m.edits]]
            for m in chat.messages
        ]
    )


def assert_clean(text: str, settings: Settings) -> None:
    for bad in (*FORBIDDEN, str(settings.data_dir)):
        assert bad not in text, f"{bad!r} reached a user: {text[:2000]}"


async def assert_kept_and_clean(core: Core, chat: TestPlatform, sid: str) -> Session:
    """The session is in the store, small; what it says and what was posted holds no trace."""
    session = await stored(core, sid)
    assert_clean(json.dumps([session.reason, session.error]), core.settings)
    assert_clean(chat_text(chat), core.settings)
    assert await core.store.stored_bytes(sid) < STORED_LIMIT
    status = await core.service.handle_text(ME, PLACE, f"status {sid}")
    assert status.ok, status.message
    assert_clean(status.message, core.settings)
    return session


def assert_one_clear_line(reason: str | None, starts: str) -> None:
    assert reason is not None and reason.startswith(starts), reason
    assert "\n" not in reason and len(reason) <= 1000, reason


async def resume_and_go_on(core: Core, chat: TestPlatform, llm: ScriptedLLM, sid: str) -> None:
    """The LLM behaves again: the owner approves the paused session and the next step comes."""
    llm.script("execution_reply", agent_reply("finish", {"reason": "recovered"}))
    outcome = await core.service.handle_text(ME, PLACE, f"approve {sid}")
    assert outcome.ok, outcome.message
    await core.runner.idle(30)
    session = await assert_kept_and_clean(core, chat, sid)
    assert session.state == SessionState.AWAITING_APPROVAL, (session.state, session.reason)
    assert session.pending_step is not None and session.pending_step.command.name == "finish"


def completion(content: str) -> bytes:
    """A chat completion body around `content`, as the server would send it (json.dumps escapes
    a lone surrogate as \\udXXX)."""
    return json.dumps(
        {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
        }
    ).encode()


GOOD = json.dumps(agent_reply("list_files", {"directory": "."}))
# a lone surrogate escape in the completion's own JSON (not inside the assistant's JSON content)
SURROGATE_BODY = completion(
    json.dumps(agent_reply("list_files", {"directory": "."}, text="bad \ud800 text"), ensure_ascii=False)
)
assert b"bad \\ud800 text" in SURROGATE_BODY
NOT_UTF8 = b'{"choices": [{"message": {"role": "assistant", "content": "caf\xe9 \xff\xfe"}}]}'


# ---------------------------------------------------------------------------- unreadable replies


@pytest.mark.parametrize(
    ("hostile", "says"),
    [
        pytest.param(Raw("hello"), "expected a JSON object", id="not-json"),
        pytest.param(Raw('{"thoughts": 5, "command": []}'), "thoughts", id="wrong-types"),
        pytest.param(Huge(5_000_000), "MAX_LLM_REPLY_BYTES", id="5MB"),
        pytest.param(Huge(5_000_000, chunked=True), "MAX_LLM_REPLY_BYTES", id="5MB-chunked"),
        pytest.param(Huge(5_000_000, valid=False, chunked=True), "MAX_LLM_REPLY_BYTES", id="5MB-not-json"),
        pytest.param(Body(NOT_UTF8), "not a chat completion", id="not-utf8"),
        pytest.param(Body(SURROGATE_BODY), "not a chat completion", id="surrogate-in-completion"),
        pytest.param(Body(b"[1,2]"), "not a chat completion", id="json-not-a-completion"),
        pytest.param(
            Body(b'{"choices": [{"message": {"role": "assistant", "content": 5}}]}'),
            "not a chat completion",
            id="content-of-wrong-type",
        ),
        pytest.param(
            Body(b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"),
            "not a chat completion",
            id="html-page",
        ),
        pytest.param(Body(b""), "not a chat completion", id="empty-body"),
        pytest.param(Body(b'{"choices": ' + b"[" * 100_000), "not a chat completion", id="nested-100k"),
        pytest.param(Body(b'{"choices": []}'), "empty", id="no-choices"),
    ],
)
async def test_a_reply_that_cannot_be_read_twice_pauses_clearly_and_resumes(
    core: Core, chat: TestPlatform, llm: ScriptedLLM, hostile: ReplyLike, says: str
) -> None:
    llm.script("execution_reply", hostile, hostile)
    sid = await start(core)
    session = await assert_kept_and_clean(core, chat, sid)
    assert session.state == SessionState.PAUSED and session.pause_kind == "error", session.state
    assert_one_clear_line(session.reason, UNREADABLE)
    assert says in (session.reason or ""), session.reason
    assert session.steps == []
    assert len(llm.requests_of("execution_reply")) == 2  # asked again once, not more
    assert chat.of(sid, "summary")[-1].outcome == "paused"  # type: ignore[union-attr]
    await resume_and_go_on(core, chat, llm, sid)


@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param(Huge(5_000_000, valid=False), id="5MB-not-json"),
        pytest.param(Body(SURROGATE_BODY), id="surrogate-in-completion"),
        pytest.param(Body(b"[1,2]"), id="json-not-a-completion"),
        pytest.param(Reset(), id="reset"),
        pytest.param(Garbage(), id="not-http"),
    ],
)
async def test_one_hostile_reply_then_a_good_one_goes_on(
    core: Core, chat: TestPlatform, llm: ScriptedLLM, hostile: ReplyLike
) -> None:
    llm.script("execution_reply", hostile, Raw(GOOD))
    sid = await start(core)
    session = await assert_kept_and_clean(core, chat, sid)
    assert session.state == SessionState.AWAITING_APPROVAL, (session.state, session.reason)
    assert session.pending_step is not None and session.pending_step.command.name == "list_files"


async def test_lone_surrogates_in_the_content_are_replaced(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    # JSON escapes inside the assistant's content: Python's json (and json-repair) decode them
    # to lone surrogates, which nothing can encode (UTF-8, the store's JSON, a chat's API)
    llm.script("task_list", Raw('{"tasks": ["write \\ud800 it", "check \\udfff it"]}'))
    llm.script(
        "execution_reply",
        Raw(
            '{"thoughts": {"text": "bad \\ud800 text", "reasoning": "\\udc00", "plan": ["a \\ud83d"]}, '
            '"command": {"name": "write_to_file", "args": {"filename": "a\\ud800.txt", "text": "x\\udfff"}}}'
        ),
        agent_reply("finish", {"reason": "written"}),
    )
    sid = await start(core, "write a file")
    session = await assert_kept_and_clean(core, chat, sid)
    assert session.state == SessionState.AWAITING_APPROVAL, (session.state, session.reason)
    step = session.pending_step
    assert step is not None and step.thoughts.text == "bad \ufffd text"
    assert step.command.args == {"filename": "a\ufffd.txt", "text": "x\ufffd"}
    assert all("\ufffd" in t for t in session.tasks[:2]), session.tasks
    chat_text(chat).encode("utf-8")  # what was posted can be sent anywhere
    assert (await chat.press(core.service, sid, 1, "approve", OWNER)).ok
    await core.runner.idle(30)
    session = await assert_kept_and_clean(core, chat, sid)
    assert session.pending_step is not None and session.pending_step.command.name == "finish"
    assert (core.settings.data_dir / "workspaces" / sid / "a\ufffd.txt").read_text() == "x\ufffd"


async def test_ten_thousand_tasks_keep_twenty(core: Core, chat: TestPlatform, llm: ScriptedLLM) -> None:
    many = tasks_reply(
        *[f"long task {i} " + "y" * 5000 for i in range(3)], *[f"task {i}" for i in range(10_000)]
    )
    assert len(json.dumps(many)) < 1_000_000  # MAX_LLM_REPLY_BYTES' default: hostile, not too large
    llm.default["task_list"] = lambda _body: many  # creation and prioritisation, every time
    llm.script(
        "execution_reply",
        *[agent_reply("append_to_file", {"filename": "log.txt", "text": f"{i}\n"}) for i in range(3)],
    )
    sid = await start(core, "do everything", continuous=True, continuous_limit=3)
    session = await assert_kept_and_clean(core, chat, sid)
    assert session.state == SessionState.PAUSED and session.pause_kind == "limit", session.reason
    assert session.cycles == 3
    assert 0 < len(session.tasks) <= 20 and all(len(t) <= 500 for t in session.tasks), session.tasks
    assert len(session.done_tasks) <= 3
    for view in chat.of(sid, "tasks"):
        assert len(view.tasks) <= 20 and all(len(t) <= 500 for t in view.tasks)  # type: ignore[attr-defined]
    # the next prompts hold the kept tasks, not the 10,000
    for body in llm.requests_of("task_list")[1:] + llm.requests_of("execution_reply"):
        assert len(json.dumps(body["messages"])) < 60_000
        assert "task 9999" not in json.dumps(body["messages"])


# ---------------------------------------------------------------------------- broken connections


@pytest.mark.parametrize(
    ("hostile", "says"),
    [
        pytest.param(Reset(), "reset", id="reset"),
        pytest.param(Reset(rst=False), "disconnected", id="closed-without-answer"),
        pytest.param(Garbage(), "answer was not valid HTTP", id="not-http"),
        pytest.param(Garbage(b"\x00\xff\xfe binary \x00\r\n\r\n"), "answer was not valid HTTP", id="binary"),
        pytest.param(
            Garbage(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 9999\r\n\r\n{"),
            "broke off its answer",
            id="truncated-answer",
        ),
    ],
)
async def test_a_dropped_or_non_http_answer_pauses_clearly_and_resumes(
    core: Core, chat: TestPlatform, llm: ScriptedLLM, hostile: ReplyLike, says: str
) -> None:
    tries = core.settings.llm_max_retries + 1
    llm.script("execution_reply", *[hostile] * tries)
    sid = await start(core)
    session = await assert_kept_and_clean(core, chat, sid)
    assert session.state == SessionState.PAUSED and session.pause_kind == "error", session.state
    assert says.lower() in (session.reason or "").lower(), session.reason
    assert len(llm.requests_of("execution_reply")) == tries  # the client retried, then gave up
    assert_one_clear_line(session.reason, "Paused: ")
    await resume_and_go_on(core, chat, llm, sid)


# ---------------------------------------------------------------------------- a stalled event loop


async def test_a_broken_reply_just_under_the_cap_does_not_stall_the_bot(
    core: Core, chat: TestPlatform, llm: ScriptedLLM
) -> None:
    broken = '{"thoughts": {"text": "' + "x" * 400_000  # never closed
    llm.script("execution_reply", Raw(broken), Raw(GOOD))
    gaps: list[float] = []

    async def heartbeat() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.05)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    beat = asyncio.create_task(heartbeat())
    try:
        sid = await start(core)
    finally:
        beat.cancel()
    session = await assert_kept_and_clean(core, chat, sid)
    assert session.state == SessionState.AWAITING_APPROVAL, (session.state, session.reason)
    assert max(gaps, default=0.0) < 1.0, f"the event loop was blocked for {max(gaps):.1f} s"


# ---------------------------------------------------------------------------- the console's memory


def _peak_rss(pid: int) -> int:
    """VmHWM (peak resident set) of a live process in bytes; 0 once it has gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def test_console_survives_a_hostile_run_in_bounded_memory(
    tmp_path: Path, llm: ScriptedLLM, capsys: pytest.CaptureFixture[str]
) -> None:
    many = tasks_reply(*[f"task {i}" for i in range(10_000)])
    llm.default["task_list"] = lambda _body: many
    surrogate = json.dumps(
        agent_reply("append_to_file", {"filename": "log.txt", "text": "two\n"}, text="\ud800 odd")
    )
    llm.script(
        "execution_reply",
        Huge(50_000_000, chunked=True),  # 50 MB, no Content-Length: read until the cap
        agent_reply("append_to_file", {"filename": "log.txt", "text": "one\n"}),  # the re-ask
        Huge(5_000_000, valid=False),  # 5 MB that is not JSON
        Raw(surrogate),
        Garbage(),  # not HTTP: the client retries
        agent_reply("append_to_file", {"filename": "log.txt", "text": "three\n"}),
    )
    env = scripted_environ(tmp_path, llm, llm_timeout=30)
    assert CONSOLE_SCRIPT.is_file(), f"{CONSOLE_SCRIPT} is missing: pip install -e '.[test]'"
    out_path, err_path = tmp_path / "out.txt", tmp_path / "err.txt"
    started = time.monotonic()
    peak = 0
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "console", "--continuous", "--continuous-limit", "3", "survive it all"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=tmp_path,
            env=env,
        )
        try:
            while proc.poll() is None:
                peak = max(peak, _peak_rss(proc.pid))
                if time.monotonic() - started > 90:
                    proc.kill()
                    proc.wait()
                    pytest.fail(f"the console ran over 90 s (peak RSS so far {peak / 2**20:.0f} MB)")
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    wall = time.monotonic() - started
    stdout, stderr = out_path.read_text(), err_path.read_text()
    calls = [r for r in llm.requests if r.kind == "execution_reply"]
    huge_s = calls[1].at - calls[0].at if len(calls) > 1 else float("nan")
    with capsys.disabled():
        print(
            f"\n[hostile console] exit {proc.returncode}, peak RSS {peak / 2**20:.1f} MB, "
            f"run {wall:.1f} s, 50 MB reply handled (to the re-ask) in {huge_s:.2f} s",
            file=sys.stderr,
        )
    for text in (stdout, stderr):
        assert "Traceback" not in text and "internal error" not in text, text[-3000:]
    assert proc.returncode in DOCUMENTED_EXITS, (proc.returncode, stdout[-2000:], stderr[-2000:])
    assert 0 < peak < MEMORY_LIMIT, f"peak RSS {peak / 2**20:.0f} MB; {stdout[-1500:]}"
    assert proc.returncode == 4, (stdout[-2000:], stderr[-2000:])  # the continuous limit, nothing else
    assert "continuous limit reached" in stdout
    assert huge_s < 10, f"the 50 MB reply took {huge_s:.1f} s"
    found = SESSION_LINE.search(stdout)
    assert found, stdout
    sid = found.group(1)
    workspace = tmp_path / "data" / "workspaces" / sid
    assert (workspace / "log.txt").read_text() == "one\ntwo\nthree\n"

    again = subprocess.run(
        [str(CONSOLE_SCRIPT), "console", "--resume", sid],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert f"Resuming session {sid}" in again.stdout, again.stdout + again.stderr
    assert "Traceback" not in again.stdout + again.stderr
    assert again.returncode in DOCUMENTED_EXITS, again.returncode
