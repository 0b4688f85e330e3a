"""The LLM client: Structured Outputs, repair, one re-ask, retries, usage and cost.

Retries with backoff on 429, 5xx, timeouts and connection errors are the openai client's own
(`max_retries`, honouring `retry-after`); when they run out, `LLMUnavailable` tells the engine
to pause the session. A reply that is not valid JSON is repaired with json-repair; one that
still fails validation is asked again once with the error; after that `LLMReplyError`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import json_repair
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI, DefaultAioHttpClient
from openai.types.chat import ChatCompletion
from pydantic import BaseModel, ValidationError

from bot.llm.schemas import response_format
from bot.metrics import Metrics
from bot.models import Usage
from bot.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)


class LLMError(Exception):
    """An LLM call failed; `message` is fit to show a user. `usage` is what was spent anyway."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = usage or Usage()


class LLMUnavailable(LLMError):
    """The service kept failing (rate limit, server error, timeout) after all retries."""


class LLMRefused(LLMError):
    """The service refused the request (bad key, unknown model, bad request): retrying won't help."""


class LLMReplyError(LLMError):
    """The model's reply could not be understood, even after asking again."""


@dataclass
class CallStats:
    """Time spent waiting for the LLM, so benchmarks can tell engine time from LLM time."""

    calls: int = 0
    seconds: float = 0.0


def usage_of(response: Any, model: str, settings: Settings) -> Usage:
    u = getattr(response, "usage", None)
    prompt = int(getattr(u, "prompt_tokens", 0) or 0)
    completion = int(getattr(u, "completion_tokens", 0) or 0)
    return Usage(
        calls=1,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=cost(settings, model, prompt, completion),
    )


def cost(settings: Settings, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    price_in, price_out = settings.price(model)
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


def add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        calls=a.calls + b.calls,
        prompt_tokens=a.prompt_tokens + b.prompt_tokens,
        completion_tokens=a.completion_tokens + b.completion_tokens,
        cost_usd=a.cost_usd + b.cost_usd,
    )


def unreachable(exc: BaseException) -> BaseException | None:
    """The connection error behind an openai timeout error, if that is what it really is: the
    aiohttp transport reports a refused connection (or an unknown host) as a connect timeout."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, aiohttp.ClientConnectorError) or (
            isinstance(seen, OSError) and not isinstance(seen, TimeoutError)
        ):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def make_openai(settings: Settings) -> AsyncOpenAI:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    # The openai package's own aiohttp transport: with hundreds of sessions in flight it spends
    # about half the CPU per call of the default httpx pool (bench/llm_http.py measures it).
    common: dict[str, Any] = {
        "max_retries": settings.llm_max_retries,
        "timeout": settings.llm_timeout,
        "http_client": DefaultAioHttpClient(),
    }
    if settings.use_azure:
        return AsyncAzureOpenAI(
            api_key=key,
            azure_endpoint=settings.azure_openai_endpoint or "",
            azure_deployment=settings.azure_openai_deployment,
            api_version=settings.azure_openai_api_version,
            **common,
        )
    return AsyncOpenAI(
        api_key=key, base_url=settings.openai_base_url, organization=settings.openai_organization, **common
    )


class LLMClient:
    def __init__(
        self, settings: Settings, client: AsyncOpenAI | None = None, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.client = client or make_openai(settings)
        self.stats = CallStats()
        self.metrics = metrics or Metrics()

    async def close(self) -> None:
        await self.client.close()

    def model_for(self, role: str, mode: str) -> str:
        """role: 'smart' (execution) or 'fast' (tasks).
        mode: default, fast (--gpt3only) or smart (--gpt4only)."""
        if self.settings.use_azure and self.settings.azure_openai_deployment:
            return self.settings.azure_openai_deployment
        if mode == "fast" or (mode == "default" and role == "fast"):
            return self.settings.fast_llm
        return self.settings.smart_llm

    async def _complete(self, model: str, messages: list[dict[str, Any]], fmt: dict[str, Any] | None) -> Any:
        started = time.perf_counter()
        extra: dict[str, Any] = {"response_format": fmt} if fmt is not None else {}
        log.debug("LLM request to %s: %s", model, messages)  # the full prompt: only at DEBUG
        response: Any = None
        try:
            # The client's generic `post` (its retries, errors, auth and Azure routing all apply)
            # with the same body `chat.completions.create` sends: our messages are plain JSON
            # already, and create's client-side transform of them cost ~0.1 ms per message, a
            # tenth of a bot process's CPU under load (bench/load.py profile).
            response = await self.client.post(
                "/chat/completions",
                body={
                    "model": model,
                    "messages": messages,
                    "temperature": self.settings.temperature,
                    "max_tokens": self.settings.max_reply_tokens,
                    **extra,
                },
                cast_to=ChatCompletion,
            )
        except openai.RateLimitError as exc:
            raise LLMUnavailable(
                f"the LLM service is rate limiting us (429) after retries: {_short(exc)}"
            ) from exc
        except openai.APITimeoutError as exc:
            if cause := unreachable(exc):
                raise LLMUnavailable(f"cannot reach the LLM service: {_short(cause)}") from exc
            raise LLMUnavailable(
                f"the LLM service did not answer within {self.settings.llm_timeout:g} s, after retries"
            ) from exc
        except openai.APIConnectionError as exc:
            raise LLMUnavailable(f"cannot reach the LLM service: {_short(exc)}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code >= 500 or exc.status_code in (408, 409):
                raise LLMUnavailable(
                    f"the LLM service failed ({exc.status_code}) after retries: {_short(exc)}"
                ) from exc
            raise LLMRefused(
                f"the LLM service refused the request ({exc.status_code}): {_short(exc)}"
            ) from exc
        finally:
            elapsed = time.perf_counter() - started
            self.stats.calls += 1
            self.stats.seconds += elapsed
            if response is None:
                self.metrics.llm_failed(model)
        self.metrics.llm_reply(model, usage_of(response, model, self.settings))
        return response

    async def text(self, model: str, messages: list[dict[str, Any]]) -> tuple[str, Usage]:
        """A plain reply (no schema), e.g. answering a question from a page."""
        response = await self._complete(model, messages, None)
        usage = usage_of(response, model, self.settings)
        content = (response.choices[0].message.content or "") if response.choices else ""
        return content, usage

    async def structured(
        self, model: str, messages: list[dict[str, Any]], schema: type[T], name: str, strict: bool = False
    ) -> tuple[T, Usage]:
        """Ask for a reply shaped like `schema`; repair, re-ask once, then give up clearly."""
        fmt = response_format(schema, name, strict)
        usage = Usage()
        convo = list(messages)
        error = ""
        for attempt in range(2):
            try:
                response = await self._complete(model, convo, fmt)
            except LLMError as exc:
                exc.usage = add_usage(usage, exc.usage)
                raise
            usage = add_usage(usage, usage_of(response, model, self.settings))
            content = (response.choices[0].message.content or "") if response.choices else ""
            try:
                return parse_reply(content, schema), usage
            except ValueError as exc:
                error = str(exc)
                log.warning("invalid %s reply (attempt %d): %s", name, attempt + 1, error[:300])
                convo = [
                    *messages,
                    {"role": "assistant", "content": content[:4000]},
                    {
                        "role": "user",
                        "content": "Your reply could not be used: "
                        f"{error[:1500]}\nReply again with only one JSON object that matches the "
                        "required format, nothing else.",
                    },
                ]
        raise LLMReplyError(
            f"the model's reply could not be understood, even when asked again: {error[:500]}", usage
        )


def parse_reply(content: str, schema: type[T]) -> T:
    """Validate a reply; repair broken JSON first. Raises ValueError with a readable reason."""
    text = content.strip()
    if not text:
        raise ValueError("the reply was empty")
    try:
        return schema.model_validate_json(text)
    except ValidationError as first:
        try:
            data = json_repair.loads(text)
        except Exception as exc:  # json-repair gave up
            raise ValueError(f"not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}: {text[:200]}") from None
        try:
            return schema.model_validate(data)
        except ValidationError as exc:
            raise ValueError(_validation_text(exc)) from None
        finally:
            del first


def _validation_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ())) or "reply"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _short(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        msg = body.get("message") or (body.get("error") or {}).get("message")
        if msg:
            return str(msg)[:300]
    return str(exc)[:300]
