"""Tests of the scripted LLM fake itself, driven through the real openai clients."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.llm_server import (
    Delay,
    Error,
    Raw,
    Recorded,
    Reply,
    ScriptedLLM,
    agent_reply,
    tasks_reply,
)

MODEL = "gpt-4o-mini"


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


@pytest.fixture
def client(llm: ScriptedLLM) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=0, timeout=5.0) as c:
        yield c


def schema_format(name: str) -> dict[str, Any]:
    return {
        "type": "json_schema",
        "json_schema": {"name": name, "schema": {"type": "object"}, "strict": False},
    }


def ask(client: openai.OpenAI, kind: str | None = None, text: str = "hi", **kwargs: Any) -> str | None:
    extra: dict[str, Any] = {"response_format": schema_format(kind)} if kind else {}
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], **extra, **kwargs
    )
    return completion.choices[0].message.content


def post_raw(url: str, data: bytes) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


# ------------------------------------------------------------------------------- chat


def test_replies_are_routed_by_json_schema_name(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.script("execution_reply", agent_reply("google", {"query": "weather"}, speak="searching"))
    llm.script("task_list", tasks_reply("a", "b"))
    llm.script("text", "plain words")

    assert ask(client) == "plain words"
    assert json.loads(ask(client, "task_list") or "") == {"tasks": ["a", "b"]}
    reply = json.loads(ask(client, "execution_reply") or "")
    assert reply["command"] == {"name": "google", "args": {"query": "weather"}}
    assert reply["thoughts"]["speak"] == "searching"
    assert set(reply["thoughts"]) == {"text", "reasoning", "plan", "criticism", "speak"}

    assert [r.kind for r in llm.requests] == ["text", "task_list", "execution_reply"]
    assert all(isinstance(r, Recorded) and r.path == "/v1/chat/completions" for r in llm.requests)
    assert llm.last("execution_reply")["response_format"]["json_schema"]["name"] == "execution_reply"
    assert llm.unscripted == []
    assert llm.remaining() == {}


def test_fifo_order_per_kind(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.script("execution_reply", agent_reply("one"), agent_reply("two"))
    llm.script("execution_reply", agent_reply("three"))
    names = [json.loads(ask(client, "execution_reply") or "")["command"]["name"] for _ in range(3)]
    assert names == ["one", "two", "three"]


def test_raw_content_arrives_verbatim(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    broken = '{"thoughts": {"text": "unterminated'
    llm.script("execution_reply", Raw(broken))
    assert ask(client, "execution_reply") == broken


def test_completion_shape_and_usage(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.script("text", "x" * 40, Reply({"a": 1}, prompt_tokens=7, completion_tokens=3))
    completion = client.chat.completions.create(
        model="my-model", messages=[{"role": "user", "content": "hello there"}]
    )
    assert completion.object == "chat.completion"
    assert completion.model == "my-model"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.role == "assistant"
    usage = completion.usage
    assert usage is not None
    messages = llm.last("text")["messages"]
    assert usage.prompt_tokens == max(1, len(json.dumps(messages)) // 4)
    assert usage.completion_tokens == 10
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    completion = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert completion.choices[0].message.content == '{"a": 1}'
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (7, 3)
    assert completion.usage.total_tokens == 10


def test_rate_limit_is_retried_quickly(llm: ScriptedLLM) -> None:
    llm.script("task_list", Error(429, "slow down"), tasks_reply("done"))
    with openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=2, timeout=5.0) as client:
        started = time.monotonic()
        assert json.loads(ask(client, "task_list") or "") == {"tasks": ["done"]}
        assert time.monotonic() - started < 1.0
    assert len(llm.requests) == 2


def test_server_error_without_retries_raises(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.script("execution_reply", Error(500, "boom"))
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, "execution_reply")
    assert info.value.status_code == 500
    assert "boom" in info.value.message
    assert len(llm.requests) == 1


def test_delay_longer_than_timeout_raises(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.script("execution_reply", Delay(3.0, then=agent_reply("late")), agent_reply("on time"))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        ask(client, "execution_reply", timeout=0.3)
    assert time.monotonic() - started < 2.0
    # The delayed request does not block the next one.
    assert json.loads(ask(client, "execution_reply") or "")["command"]["name"] == "on time"


def test_short_delay_then_reply(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.script("text", Delay(0.05, then="after"), Delay(0.05), "queued")
    assert ask(client) == "after"
    assert ask(client) == "queued"


def test_unscripted_kind_is_500_and_recorded(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as info:
        ask(client, "execution_reply")
    assert "no reply queued for kind execution_reply" in info.value.message
    assert llm.unscripted == ["execution_reply"]


def test_task_list_has_a_default(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    assert json.loads(ask(client, "task_list") or "") == {"tasks": []}
    assert llm.unscripted == []


def test_custom_default_sees_request_body(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.default["text"] = lambda body: f"echo: {body['messages'][-1]['content']}"
    assert ask(client, text="ping") == "echo: ping"
    llm.script("text", "scripted wins")
    assert ask(client, text="ping") == "scripted wins"


def test_fail_next_hits_any_kind_before_queues(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.script("task_list", tasks_reply("x"))
    llm.fail_next(503, times=2)
    with pytest.raises(openai.InternalServerError):
        ask(client, "task_list")
    with pytest.raises(openai.InternalServerError):
        ask(client, "execution_reply")
    assert json.loads(ask(client, "task_list") or "") == {"tasks": ["x"]}
    assert llm.unscripted == []

    llm.fail_next(429)
    with openai.OpenAI(base_url=llm.base_url, api_key="test", max_retries=1) as retrying:
        assert json.loads(ask(retrying, "task_list") or "") == {"tasks": []}
    assert len(llm.requests) == 5


def test_reset(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    llm.script("text", "a")
    llm.fail_next(500)
    llm.delay = 5.0
    llm.default["task_list"] = lambda body: tasks_reply("custom")
    llm.unscripted.append("x")
    llm.reset()
    assert (llm.requests, llm.unscripted, llm.delay, llm.remaining()) == ([], [], 0.0, {})
    assert json.loads(ask(client, "task_list") or "") == {"tasks": []}
    with pytest.raises(openai.InternalServerError):
        ask(client)
    assert llm.unscripted == ["text"]


def test_malformed_requests_get_400(llm: ScriptedLLM) -> None:
    url = f"{llm.base_url}/chat/completions"
    status, body = post_raw(url, b"{not json")
    assert status == 400 and "error" in body
    status, body = post_raw(url, b"[1, 2]")
    assert status == 400
    status, body = post_raw(url, json.dumps({"model": MODEL, "messages": "hi"}).encode())
    assert status == 400
    status, body = post_raw(f"{llm.base_url}/embeddings", json.dumps({"model": "e", "input": 3}).encode())
    assert status == 400
    llm.script("text", "still alive")
    status, body = post_raw(url, json.dumps({"model": MODEL, "messages": [{"role": "user"}]}).encode())
    assert status == 200 and body["choices"][0]["message"]["content"] == "still alive"


def test_scripting_from_other_threads_while_serving(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    n = 20

    def feed() -> None:
        for i in range(n):
            llm.script("text", str(i))

    threads = [threading.Thread(target=feed) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answers = [ask(client) for _ in range(3 * n)]
    assert sorted(answers, key=lambda a: int(a or "0")) == [str(i) for i in range(n) for _ in range(3)]
    assert len(llm.requests_of("text")) == 3 * n


# ------------------------------------------------------------------------- embeddings


def test_embeddings_are_deterministic_and_similarity_aware(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    texts = [
        "The cat sat on the mat",
        "the cat sat on a mat!",
        "Quarterly revenue grew in Europe",
        "",
    ]
    first = client.embeddings.create(model="text-embedding-3-small", input=texts)
    second = client.embeddings.create(model="text-embedding-3-small", input=texts)
    vecs = [d.embedding for d in first.data]
    assert vecs == [d.embedding for d in second.data]
    assert [d.index for d in first.data] == [0, 1, 2, 3]
    assert all(len(v) == 64 for v in vecs)
    assert math.isclose(sum(x * x for x in vecs[0]), 1.0, rel_tol=1e-5)
    assert any(x != 0 for x in vecs[3])
    assert cosine(vecs[0], vecs[1]) > 0.8
    assert cosine(vecs[0], vecs[1]) > cosine(vecs[0], vecs[2]) + 0.3
    assert first.usage.prompt_tokens > 0 and first.usage.total_tokens == first.usage.prompt_tokens
    # The client asks for base64 by default and decodes it; floats on request give the same vector.
    assert llm.requests_of("embeddings")[0]["encoding_format"] == "base64"
    floats = client.embeddings.create(model="e", input=texts[0], encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(vecs[0], abs=1e-6)
    assert llm.requests[-1] == Recorded("/v1/embeddings", llm.last("embeddings"), "embeddings")


def test_embeddings_base64_is_little_endian_float32(llm: ScriptedLLM) -> None:
    payload = {"model": "e", "input": "hello world", "encoding_format": "base64", "dimensions": 8}
    status, body = post_raw(f"{llm.base_url}/embeddings", json.dumps(payload).encode())
    assert status == 200
    raw = base64.b64decode(body["data"][0]["embedding"])
    values = struct.unpack("<8f", raw)
    assert math.isclose(sum(v * v for v in values), 1.0, rel_tol=1e-5)


def test_models_endpoint(llm: ScriptedLLM, client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == llm.models
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


# ------------------------------------------------------------------------------ async


@pytest.mark.asyncio
async def test_async_client_and_concurrent_latency(llm: ScriptedLLM) -> None:
    llm.delay = 0.2
    llm.script("task_list", *(tasks_reply(str(i)) for i in range(5)))
    async with openai.AsyncOpenAI(base_url=llm.base_url, api_key="test", max_retries=0) as client:

        async def one() -> list[str]:
            completion = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "plan"}],
                response_format=schema_format("task_list"),  # type: ignore[arg-type]
            )
            return list(json.loads(completion.choices[0].message.content or "")["tasks"])

        started = time.monotonic()
        results = await asyncio.gather(*(one() for _ in range(5)))
        elapsed = time.monotonic() - started
    assert sorted(r[0] for r in results) == ["0", "1", "2", "3", "4"]
    assert elapsed < 0.8  # the five 0.2 s latencies overlapped


def test_stop_is_clean_with_a_pending_delay() -> None:
    llm = ScriptedLLM().start()
    llm.script("text", Delay(30.0, then="never"))
    result: list[BaseException] = []

    def call() -> None:
        with openai.OpenAI(base_url=llm.base_url, api_key="t", max_retries=0, timeout=10.0) as c:
            try:
                ask(c)
            except BaseException as exc:
                result.append(exc)

    t = threading.Thread(target=call)
    t.start()
    while not llm.requests:
        time.sleep(0.01)
    server_thread = llm._thread
    assert server_thread is not None
    started = time.monotonic()
    llm.stop()
    t.join(timeout=5)
    assert time.monotonic() - started < 2.0
    assert not t.is_alive()
    assert result and isinstance(result[0], openai.APIError)
    assert not server_thread.is_alive()
