"""The lean LLM client and Azure's per-model deployments, against the scripted server over HTTP.

Lean replies: a chat completion is read from its raw JSON (content, refusal, finish_reason, usage)
without the openai package's ChatCompletion/CompletionUsage models; a refusal and a reply cut at
the token limit are said so. Request bodies are serialised once per call (not by the openai
package), sent unchanged on a retry, and a schema's response_format is serialised once.

AZURE_MODEL_MAP (AutoGPT's azure.yaml): SMART_LLM, FAST_LLM (so --gpt3only and --gpt4only) and
EMBEDDING_MODEL each reach their own deployment; a chat model missing from the map goes to
AZURE_OPENAI_DEPLOYMENT; a bad map is a one-line ConfigError naming AZURE_MODEL_MAP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletion

import bot.llm.client as client_module
from bot.llm.client import LLMClient, LLMReplyError, azure_deployment, dumps
from bot.llm.schemas import ExecutionReply, TaskListReply, response_format
from bot.memory.embed import Embedder
from bot.settings import ConfigError, Settings, load_settings
from tests.conftest import make_settings
from tests.fakes.llm_server import Body, Reply, ScriptedLLM, agent_reply, tasks_reply

API_VERSION = "2024-10-21"
MAP = {"gpt-4o": "my-gpt4o", "gpt-4o-mini": "mini-deploy", "text-embedding-3-small": "embed-deploy"}
HI = [{"role": "user", "content": "hi"}]


def azure_settings(tmp_path: Path, llm: ScriptedLLM, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "use_azure": True,
        "openai_base_url": None,
        "azure_openai_endpoint": llm.base_url.removesuffix("/v1"),
        "azure_openai_deployment": "fallback-deploy",
        "azure_openai_api_version": API_VERSION,
        "azure_model_map": MAP,
    }
    values.update(overrides)
    return make_settings(tmp_path, llm, **values)


@pytest.fixture
async def client(tmp_path: Path, llm: ScriptedLLM) -> AsyncIterator[LLMClient]:
    c = LLMClient(make_settings(tmp_path, llm))
    try:
        yield c
    finally:
        await c.close()


def completion(message: dict[str, Any], finish_reason: str = "stop", **usage: int) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-x",
            "object": "chat.completion",
            "created": 0,
            "model": "gpt-4o",
            "choices": [
                {"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, **usage},
        }
    ).encode()


# ---------------------------------------------------------------------------- lean replies


async def test_a_reply_is_read_without_the_openai_models(
    client: LLMClient, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("an openai response model was built")

    for cls in (ChatCompletion, CompletionUsage):
        for name in ("construct", "model_construct", "model_validate", "model_validate_json"):
            monkeypatch.setattr(cls, name, classmethod(refuse))
    llm.script(
        "execution_reply",
        Reply(agent_reply("finish", {"reason": "x"}), prompt_tokens=1234, completion_tokens=56),
    )
    llm.script("text", Reply("plain answer", prompt_tokens=10, completion_tokens=2))
    reply, usage = await client.structured("gpt-4o", HI, ExecutionReply, "execution_reply")
    assert reply.command.name == "finish"
    assert (usage.calls, usage.prompt_tokens, usage.completion_tokens) == (1, 1234, 56)
    assert usage.cost_usd == pytest.approx((1234 * 2.5 + 56 * 10.0) / 1_000_000)
    text, usage = await client.text("gpt-4o-mini", HI)
    assert text == "plain answer" and (usage.prompt_tokens, usage.completion_tokens) == (10, 2)


async def test_the_reply_fields_are_read_from_the_raw_json(client: LLMClient, llm: ScriptedLLM) -> None:
    body = completion({"content": "done", "refusal": None, "extra": [1, {"x": None}]}, prompt_tokens=11)
    llm.script("text", Body(body))
    reply = await client._complete("gpt-4o", HI, None)
    assert (reply.content, reply.refusal, reply.finish_reason) == ("done", None, "stop")
    assert (reply.prompt_tokens, reply.completion_tokens) == (11, 3)
    assert reply.usage is not None and reply.usage.prompt_tokens == 11


async def test_odd_usage_counts_are_zero_not_a_crash(client: LLMClient, llm: ScriptedLLM) -> None:
    body = (
        b'{"choices": [{"message": {"content": "ok"}}], '
        b'"usage": {"prompt_tokens": "many", "completion_tokens": 1e999}}'
    )
    llm.script("text", Body(body))
    text, usage = await client.text("gpt-4o", HI)
    assert text == "ok" and (usage.prompt_tokens, usage.completion_tokens) == (0, 0)


async def test_a_refusal_is_said_so(client: LLMClient, llm: ScriptedLLM) -> None:
    refusal = completion({"content": None, "refusal": "I can't help with that."})
    llm.script("execution_reply", Body(refusal), Body(refusal))
    with pytest.raises(LLMReplyError, match="the model refused: I can't help with that") as err:
        await client.structured("gpt-4o", HI, ExecutionReply, "execution_reply")
    assert err.value.usage.calls == 2 and len(llm.requests_of("execution_reply")) == 2
    llm.script("text", Body(refusal))
    text, _ = await client.text("gpt-4o", HI)
    assert text == "I can't help with that."


async def test_a_reply_cut_at_the_token_limit_is_said_so(client: LLMClient, llm: ScriptedLLM) -> None:
    cut = completion({"content": '{"thoughts": {"text": "a long'}, finish_reason="length")
    llm.script("execution_reply", Body(cut), agent_reply("finish", {"reason": "short"}))
    reply, usage = await client.structured("gpt-4o", HI, ExecutionReply, "execution_reply")
    assert reply.command.name == "finish" and usage.calls == 2
    reask = llm.requests_of("execution_reply")[1]["messages"][-1]["content"]
    assert "cut off at the reply token limit (1000 tokens)" in reask


# ---------------------------------------------------------------------------- request bodies


async def test_the_body_is_serialised_once_by_the_client_not_by_openai(
    client: LLMClient, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    import openai._base_client

    def no_dump(_obj: Any) -> bytes:
        raise AssertionError("the openai package serialised the request again")

    monkeypatch.setattr(openai._base_client, "openapi_dumps", no_dump)
    encoded: list[Any] = []
    real = client_module.dumps
    monkeypatch.setattr(client_module, "dumps", lambda value: encoded.append(value) or real(value))
    messages = [{"role": "system", "content": "You are a bot. é ✓"}, {"role": "user", "content": "go"}]
    llm.script("execution_reply", agent_reply("finish"), agent_reply("finish"))
    for _ in range(2):
        await client.structured("gpt-4o", messages, ExecutionReply, "execution_reply")
    fmt = response_format(ExecutionReply, "execution_reply", False)
    assert sum(1 for v in encoded if v is fmt) <= 1  # the schema: once per process, not per call
    assert sum(1 for v in encoded if isinstance(v, list)) == 2  # the messages: once per call
    sent = llm.requests_of("execution_reply")[-1]
    assert sent == {
        "model": "gpt-4o",
        "temperature": 0.0,
        "max_tokens": 1000,
        "messages": messages,
        "response_format": fmt,
    }


async def test_a_retry_sends_the_same_bytes(tmp_path: Path, llm: ScriptedLLM) -> None:
    client = LLMClient(make_settings(tmp_path, llm, llm_max_retries=1))
    llm.fail_next(500)
    llm.script("task_list", tasks_reply("a", "b"))
    try:
        reply, usage = await client.structured("gpt-4o-mini", HI, TaskListReply, "task_list", strict=True)
    finally:
        await client.close()
    assert reply.tasks == ["a", "b"] and usage.calls == 1
    first, second = llm.requests_of("task_list")
    assert first == second and first["response_format"]["json_schema"]["strict"] is True


async def test_secrets_are_redacted_and_lone_surrogates_replaced(client: LLMClient, llm: ScriptedLLM) -> None:
    llm.script("text", Reply("ok"))
    messages = [{"role": "user", "content": 'key sk-test-secret and "quoted" \ud800 odd'}]
    await client.text("gpt-4o", messages)
    sent = llm.last("text")["messages"][0]["content"]
    assert sent == 'key [redacted OPENAI_API_KEY] and "quoted" \ufffd odd'


def test_dumps_is_the_openai_encoding() -> None:
    from openai._utils._json import openapi_dumps

    value = {"a": ["é", 1, 2.5, None, True], "b": {"c": '\u2028 " \\ /'}}
    assert dumps(value) == openapi_dumps(value)
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


# ---------------------------------------------------------------------------- Azure deployments


async def test_smart_and_fast_models_go_to_their_mapped_deployments(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = azure_settings(tmp_path, llm)
    client = LLMClient(settings)
    llm.script("execution_reply", *[agent_reply("finish")] * 3)
    llm.script("task_list", *[tasks_reply("t")] * 3)
    paths: dict[tuple[str, str], str] = {}
    try:
        for mode in ("default", "fast", "smart"):  # --gpt3only is fast, --gpt4only smart
            smart = client.model_for("smart", mode)
            await client.structured(smart, HI, ExecutionReply, "execution_reply")
            paths["smart", mode] = llm.requests[-1].path
            fast = client.model_for("fast", mode)
            await client.structured(fast, HI, TaskListReply, "task_list", strict=True)
            paths["fast", mode] = llm.requests[-1].path
    finally:
        await client.close()
    at = "/openai/deployments/{}/chat/completions?api-version=" + API_VERSION
    assert paths == {
        ("smart", "default"): at.format("my-gpt4o"),
        ("fast", "default"): at.format("mini-deploy"),
        ("smart", "fast"): at.format("mini-deploy"),
        ("fast", "fast"): at.format("mini-deploy"),
        ("smart", "smart"): at.format("my-gpt4o"),
        ("fast", "smart"): at.format("my-gpt4o"),
    }
    assert llm.last_headers.get("api-key") == "sk-test-secret"
    assert llm.last("execution_reply")["model"] == "my-gpt4o"


async def test_an_unmapped_chat_model_uses_azure_openai_deployment(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = azure_settings(tmp_path, llm, smart_llm="gpt-4.1")
    client = LLMClient(settings)
    llm.script("execution_reply", agent_reply("finish"))
    try:
        model = client.model_for("smart", "default")
        _, usage = await client.structured(model, HI, ExecutionReply, "execution_reply")
    finally:
        await client.close()
    assert model == "gpt-4.1"  # priced as the model, not the deployment
    assert (
        llm.requests[-1].path
        == f"/openai/deployments/fallback-deploy/chat/completions?api-version={API_VERSION}"
    )
    assert usage.cost_usd == pytest.approx(
        (usage.prompt_tokens * 2.0 + usage.completion_tokens * 8.0) / 1_000_000
    )


async def test_without_a_deployment_an_unmapped_model_is_its_own(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = azure_settings(tmp_path, llm, azure_openai_deployment=None, azure_model_map={})
    client = LLMClient(settings)
    llm.script("text", Reply("ok"))
    try:
        await client.text("gpt-4o-mini", HI)
    finally:
        await client.close()
    assert (
        llm.requests[-1].path == f"/openai/deployments/gpt-4o-mini/chat/completions?api-version={API_VERSION}"
    )


async def test_an_embedding_goes_to_its_mapped_deployment(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = azure_settings(tmp_path, llm)
    client = LLMClient(settings)
    embedder = Embedder(settings, client=client.client)  # as the core gives memory the LLM's client
    try:
        vector, usage = await embedder.embed("remember this")
    finally:
        await client.close()
    assert vector.shape == (llm.dim,) and usage.calls == 1
    assert llm.requests[-1].kind == "embeddings"
    assert llm.requests[-1].path == f"/openai/deployments/embed-deploy/embeddings?api-version={API_VERSION}"
    # priced as the embedding model
    assert usage.cost_usd == pytest.approx(usage.prompt_tokens * 0.02 / 1_000_000)
    # an embedding model missing from the map: a deployment named after it, not the chat one
    plain = azure_settings(tmp_path, llm, azure_model_map={})
    assert azure_deployment(plain, plain.embedding_model, chat=False) == "text-embedding-3-small"
    own = Embedder(plain)
    try:
        await own.embed("something else")
    finally:
        await own.close()
    assert llm.requests[-1].path.startswith("/openai/deployments/text-embedding-3-small/embeddings?")


async def test_the_map_is_ignored_off_azure(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(tmp_path, llm, azure_model_map=MAP)
    client = LLMClient(settings)
    llm.script("text", Reply("ok"))
    try:
        await client.text(client.model_for("smart", "default"), HI)
    finally:
        await client.close()
    assert llm.requests[-1].path == "/v1/chat/completions" and llm.last("text")["model"] == "gpt-4o"


@pytest.mark.parametrize(
    "value",
    [
        '{"gpt-4o": "my-gpt4o", "gpt-4o-mini": "mini-deploy", "text-embedding-3-small": "embed-deploy"}',
        "gpt-4o=my-gpt4o, gpt-4o-mini=mini-deploy,text-embedding-3-small = embed-deploy",
    ],
)
def test_the_map_is_read_as_json_or_pairs(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_MODEL_MAP", value)
    assert load_settings(_env_file=None).azure_model_map == MAP


@pytest.mark.parametrize(
    "value", ['{"gpt-4o": ', '{"gpt-4o": 5}', "gpt-4o", "gpt-4o=", '["my-gpt4o"]', "gpt-4o=a/b", '{"": "x"}']
)
def test_a_bad_map_is_a_one_line_config_error(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_MODEL_MAP", value)
    with pytest.raises(ConfigError) as err:
        load_settings(_env_file=None)
    text = str(err.value)
    assert text.startswith("Invalid setting AZURE_MODEL_MAP") and "\n" not in text, text
