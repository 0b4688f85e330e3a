"""The LLM client against real servers on 127.0.0.1: what a user is told when the service is not
there, or too slow. (The openai package's aiohttp transport reports a refused connection as a
connect timeout; the client must still say "cannot reach", not "did not answer".)"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from bot.llm.client import LLMClient, LLMUnavailable
from bot.llm.schemas import ExecutionReply
from tests.conftest import make_settings
from tests.fakes.llm_server import ScriptedLLM, agent_reply


def refused_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def test_a_refused_connection_says_cannot_reach(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(tmp_path, llm, openai_base_url=refused_url(), llm_max_retries=0)
    client = LLMClient(settings)
    try:
        with pytest.raises(LLMUnavailable, match="cannot reach the LLM service") as err:
            await client.text(settings.fast_llm, [{"role": "user", "content": "hi"}])
        assert "did not answer" not in str(err.value)
    finally:
        await client.close()


async def test_a_slow_service_says_it_did_not_answer_in_time(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = make_settings(tmp_path, llm, llm_timeout=0.3, llm_max_retries=0)
    llm.delay = 1.0
    llm.default["execution_reply"] = lambda body: agent_reply("finish")
    client = LLMClient(settings)
    try:
        with pytest.raises(LLMUnavailable, match=r"did not answer within 0.3 s"):
            await client.text(settings.fast_llm, [{"role": "user", "content": "hi"}])
    finally:
        await client.close()


async def test_azure_goes_to_the_deployment_with_the_api_version_and_key(
    tmp_path: Path, llm: ScriptedLLM
) -> None:
    settings = make_settings(
        tmp_path,
        llm,
        use_azure=True,
        openai_base_url=None,
        azure_openai_endpoint=llm.base_url.removesuffix("/v1"),
        azure_openai_deployment="my-gpt",
        azure_openai_api_version="2024-10-21",
    )
    llm.script("execution_reply", agent_reply("finish", {"reason": "done"}))
    client = LLMClient(settings)
    try:
        model = client.model_for("smart", "default")
        reply, usage = await client.structured(
            model, [{"role": "user", "content": "hi"}], ExecutionReply, "execution_reply"
        )
    finally:
        await client.close()
    # the model's name (it prices the call); the request goes to AZURE_OPENAI_DEPLOYMENT's path
    assert model == "gpt-4o" and reply.command.name == "finish" and usage.calls == 1
    assert llm.requests[-1].path == "/openai/deployments/my-gpt/chat/completions?api-version=2024-10-21"
    assert llm.last_headers.get("api-key") == "sk-test-secret"
    assert llm.requests[-1].body["response_format"]["type"] == "json_schema"
