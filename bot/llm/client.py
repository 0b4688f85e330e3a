"""The LLM client: Structured Outputs, repair, one re-ask, retries, usage and cost.

Retries with backoff on 429, 5xx, timeouts and connection errors are the openai client's own
(`max_retries`, honouring `retry-after`); when they run out, `LLMUnavailable` tells the engine
to pause the session. A reply that is not valid JSON is repaired with json-repair; one that
still fails validation is asked again once with the error; after that `LLMReplyError`.

Replies are bounded: the HTTP body is read through `GuardedTransport`, which stops at
MAX_LLM_REPLY_BYTES, and an answer that is not HTTP at all becomes a protocol error the client
retries. A body that is too large, not JSON, not UTF-8 or not a chat completion is a malformed
reply (`LLMBadReply`): asked again once, like a reply that does not fit the schema. Every
request passes through the redaction filter first (bot/redact.py).

Lean: a request's JSON body is serialised once, here (a schema's response_format once per
process), and sent as bytes through the openai client's own request path (its retries, error
types and timeouts); a reply is read from its raw JSON (content, refusal, finish_reason, usage)
into a `ChatReply`, without the openai package's ChatCompletion models. On Azure each model has
its deployment (AZURE_MODEL_MAP, else AZURE_OPENAI_DEPLOYMENT), named in the request's path.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import re
import socket
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlsplit

import aiohttp
import httpx2
import json_repair
import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI, DefaultAioHttpClient
from openai._base_client import DEFAULT_CONNECTION_LIMITS
from openai._vendor.httpx_aiohttp import AiohttpTransport
from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from bot.llm import tokens
from bot.llm.schemas import response_format
from bot.metrics import Metrics
from bot.models import Usage
from bot.redact import Redactor, mask_url
from bot.settings import Settings
from bot.text import scrub

log = logging.getLogger(__name__)

T = TypeVar("T", bound=BaseModel)

# json-repair's time grows with the square of a broken reply's length (an unterminated string of
# 400 kB takes seconds, with the event loop blocked): longer broken replies are asked again.
MAX_REPAIR_CHARS = 30_000


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


class LLMBadReply(LLMError):
    """One reply was not a usable chat completion (too large, not JSON, not UTF-8, wrong shape):
    malformed, so it is asked again like a reply that does not fit the schema."""


class ReplyTooLarge(Exception):
    """The LLM service's reply body went past MAX_LLM_REPLY_BYTES; reading stopped there."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the reply was larger than MAX_LLM_REPLY_BYTES ({limit:,} bytes)")
        self.limit = limit


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        try:
            async for chunk in self._inner:
                seen += len(chunk)
                if seen > self._limit:
                    raise ReplyTooLarge(self._limit)
                yield chunk
        except aiohttp.ClientError as exc:  # one the transport does not map: a broken answer
            raise httpx2.RemoteProtocolError("the answer was broken off") from exc

    async def aclose(self) -> None:
        await self._inner.aclose()


class GuardedTransport(httpx2.AsyncBaseTransport):
    """The openai package's aiohttp transport, bounded: a body larger than `limit` bytes is not
    read past the limit (`ReplyTooLarge`, which the client passes up without retrying), and an
    answer that is not HTTP becomes `httpx2.RemoteProtocolError` (which the client retries)."""

    def __init__(self, limit: int, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self.limit = limit
        self.inner = inner or AiohttpTransport(limits=DEFAULT_CONNECTION_LIMITS)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except aiohttp.ClientError as exc:  # e.g. a bad status line: not an HTTP server
            raise httpx2.RemoteProtocolError("not a valid HTTP answer") from exc
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await response.aclose()
            raise ReplyTooLarge(self.limit)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self.limit)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass(slots=True)
class ChatReply:
    """The part of a chat completion we use, read straight from its JSON (no openai or pydantic
    model of the whole completion is built): the first choice's content, refusal and
    finish_reason, and the usage. `usage` is priced by the client once the reply is read."""

    content: str = ""
    refusal: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    usage: Usage | None = None


class _NotACompletion(ValueError):
    """A reply body that is not a usable chat completion; the text says why, in a few words."""


def read_reply(raw: bytes) -> ChatReply:
    """A chat completion's body, read with pydantic-core's JSON parser (jiter: faster than
    json.loads, and it refuses invalid UTF-8, lone surrogate escapes, NaN and nesting past its
    limit). Only the first choice and the usage are looked at. Raises `_NotACompletion`."""
    try:
        data = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:  # not JSON, not UTF-8, a lone surrogate, too deep
        raise _NotACompletion(f"not JSON ({str(exc)[:120]})" if raw.strip() else "an empty body") from None
    if not isinstance(data, dict):
        raise _NotACompletion(f"expected a JSON object, got {type(data).__name__}")
    choices = data.get("choices")
    if not isinstance(choices, list):
        raise _NotACompletion("no choices" if choices is None else "choices is not a list")
    reply = ChatReply()
    if choices:
        choice = choices[0]
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise _NotACompletion("choices.0.message is missing or not an object")
        content, refusal = message.get("content"), message.get("refusal")
        if not isinstance(content, str | None):
            raise _NotACompletion(f"choices.0.message.content is not a string ({type(content).__name__})")
        reply.content = content or ""
        reply.refusal = refusal if isinstance(refusal, str) and refusal else None
        finish = choice.get("finish_reason")
        reply.finish_reason = finish if isinstance(finish, str) else None
    usage = data.get("usage")
    if isinstance(usage, dict):
        reply.prompt_tokens = _token_count(usage.get("prompt_tokens"))
        reply.completion_tokens = _token_count(usage.get("completion_tokens"))
    return reply


def _token_count(value: object) -> int:
    """A usage count as sent (an int, or a whole float); anything else counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(0, value)
    if isinstance(value, float) and math.isfinite(value):
        return max(0, int(value))
    return 0


def _json_default(value: object) -> Any:
    """What json cannot encode by itself in a request (a pydantic model, a date...): as the
    openai package's own encoder would send it."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True, by_alias=True)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# The openai package's request encoding (httpx's defaults): compact, UTF-8, no NaN.
_ENCODER: Final = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
)


def dumps(value: Any) -> bytes:
    """`value` as the JSON bytes of a request body; lone surrogates (which UTF-8 cannot hold)
    become U+FFFD."""
    text = _ENCODER.encode(value)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _ENCODER.encode(scrub(value)).encode("utf-8")


class _FormatCache:
    """The JSON of each response_format, serialised once: `response_format()` returns the same
    dict for a schema every time, so the dict itself (kept alive here) is the key."""

    def __init__(self) -> None:
        self._by_id: dict[int, tuple[dict[str, Any], bytes]] = {}

    def json(self, fmt: dict[str, Any]) -> bytes:
        hit = self._by_id.get(id(fmt))
        if hit is not None and hit[0] is fmt:
            return hit[1]
        data = dumps(fmt)
        if len(self._by_id) >= 64:  # response_format() caches 32: a caller building its own each time
            self._by_id.clear()
        self._by_id[id(fmt)] = (fmt, data)
        return data


_FORMATS: Final = _FormatCache()


def azure_deployment(settings: Settings, model: str, *, chat: bool = True) -> str:
    """The Azure deployment that serves `model`: its entry in AZURE_MODEL_MAP, else (a chat model)
    AZURE_OPENAI_DEPLOYMENT, else the model's own name. Off Azure: the model."""
    if not settings.use_azure:
        return model
    mapped = settings.azure_model_map.get(model)
    if mapped:
        return mapped
    if chat and settings.azure_openai_deployment:
        return settings.azure_openai_deployment
    return model


@dataclass
class CallStats:
    """Time spent waiting for the LLM, so benchmarks can tell engine time from LLM time; and the
    structured replies that had to be repaired (json-repair) or asked again (`autogpt-bot eval`)."""

    calls: int = 0
    seconds: float = 0.0
    repairs: int = 0
    re_asks: int = 0


def usage_of(response: Any, model: str, settings: Settings) -> Usage:
    """The usage of a reply (an openai response object or a `ChatReply`), priced."""
    if isinstance(response, ChatReply):
        if response.usage is not None:
            return response.usage
        prompt, completion = response.prompt_tokens, response.completion_tokens
        return Usage(
            calls=1,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost(settings, model, prompt, completion),
        ).priced_as(model)
    u = getattr(response, "usage", None)
    prompt = int(getattr(u, "prompt_tokens", 0) or 0)
    completion = int(getattr(u, "completion_tokens", 0) or 0)
    return Usage(
        calls=1,
        prompt_tokens=prompt,
        completion_tokens=completion,
        cost_usd=cost(settings, model, prompt, completion),
    ).priced_as(model)


def cost(settings: Settings, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    price_in, price_out = settings.price(model)
    return (prompt_tokens * price_in + completion_tokens * price_out) / 1_000_000


def add_usage(a: Usage, b: Usage) -> Usage:
    return a.plus(b)  # per model too (`Usage.by_model`)


def _causes(exc: BaseException, depth: int = 8) -> Iterator[BaseException]:
    """`exc` and the exceptions behind it (its cause, or else its context), nearest first."""
    seen: BaseException | None = exc
    for _ in range(depth):
        if seen is None:
            return
        yield seen
        seen = seen.__cause__ or seen.__context__


def unreachable(exc: BaseException) -> BaseException | None:
    """The connection error behind an openai timeout error, if that is what it really is: the
    aiohttp transport reports a refused connection (or an unknown host, or a connection the
    server closed) as a connect timeout."""
    for seen in _causes(exc):
        if isinstance(seen, aiohttp.ClientConnectorError | aiohttp.ServerDisconnectedError) or (
            isinstance(seen, OSError) and not isinstance(seen, TimeoutError)
        ):
            return seen
    return None


_CONNECT_ERRNOS: Final[dict[int, str]] = {
    errno.ECONNREFUSED: "connection refused",
    errno.ENETUNREACH: "the network is unreachable",
    errno.EHOSTUNREACH: "no route to the host",
    errno.ETIMEDOUT: "the connection timed out",
    errno.EADDRNOTAVAIL: "the address is not available",
}


def connect_reason(exc: BaseException, host: str = "") -> str | None:
    """Why no connection could be made, in a few words ("connection refused", "the name X does
    not resolve", "the connection timed out", "its TLS certificate was not accepted: ..."), from
    the transport errors behind `exc`; None when nothing in them says a connection failed.
    Never aiohttp's own wording (`Cannot connect to host h:p ssl:default [...]`), which names
    TLS settings even for a plain-http URL. `host`: the name to show when the error has none."""
    for seen in _causes(exc):
        if isinstance(seen, aiohttp.ClientConnectorDNSError | socket.gaierror):
            name = getattr(seen, "host", None) or host
            return f"the name {name} does not resolve" if name else "the host name does not resolve"
        if isinstance(seen, aiohttp.ClientConnectorCertificateError):
            cert = seen.certificate_error
            why = getattr(cert, "verify_message", None) or getattr(cert, "reason", None) or "not trusted"
            return f"its TLS certificate was not accepted: {why}"
        if isinstance(seen, aiohttp.ClientConnectorSSLError | ssl.SSLError):
            inner = seen.os_error if isinstance(seen, aiohttp.ClientConnectorError) else seen
            why = getattr(inner, "reason", None) or type(inner).__name__
            return f"the TLS handshake failed ({why})"
        if isinstance(seen, aiohttp.ConnectionTimeoutError):
            return "the connection timed out"
        if isinstance(seen, aiohttp.ClientConnectorError):
            return _os_reason(seen.os_error)
        if isinstance(seen, ConnectionRefusedError):
            return "connection refused"
    return None


def _os_reason(exc: OSError) -> str:
    """A failed connect's OSError in words. asyncio joins the errors of every address it tried
    ("Multiple exceptions: [Errno 111] Connect call failed (...), ..."), without an errno."""
    if exc.errno in _CONNECT_ERRNOS:
        return _CONNECT_ERRNOS[exc.errno]
    text = str(exc)
    for number, words in _CONNECT_ERRNOS.items():
        if f"[Errno {number}]" in text:
            return words
    return (exc.strerror or text or type(exc).__name__)[:200]


def connection_problem(exc: BaseException, service: str = "LLM service", url: str = "") -> str:
    """What went wrong with a connection the client gave up on after its retries, in words:
    openai's own message ("Connection error.") says less than the transport error behind it.
    `url`: where the service was called (credentials masked already), named in the message."""
    at = f" at {url}" if url else ""
    if reason := connect_reason(exc, _host(url)):
        return f"cannot reach the {service}{at}: {reason}"
    causes = list(_causes(exc))
    for seen in causes:
        if isinstance(seen, httpx2.RemoteProtocolError):
            return f"the {service}'s answer was not valid HTTP, after retries"
        if isinstance(seen, httpx2.ReadError | aiohttp.ClientPayloadError):
            return f"the {service} broke off its answer, after retries"
    # the transport reports these as a connect timeout: look behind it first
    for seen in causes:
        if isinstance(seen, aiohttp.ServerDisconnectedError):
            return f"the {service}{at} disconnected without answering, after retries"
        if isinstance(seen, ConnectionResetError) or getattr(seen, "errno", None) == errno.ECONNRESET:
            return f"the {service}{at} reset the connection without answering, after retries"
    for seen in causes:
        if isinstance(seen, OSError | aiohttp.ClientError | httpx2.HTTPError) and str(seen):
            return f"cannot reach the {service}{at}: {_plain(str(seen))}"
    return f"cannot reach the {service}{at}: {_plain(str(exc)) or type(exc).__name__}"


def call_failure(
    exc: openai.OpenAIError, service: str, timeout: float, url: str | None = None
) -> tuple[str, bool]:
    """What went wrong with a call to `service` once the client gave up (after its retries), in
    words for a user, and whether trying again later may help (False: the request was refused).
    `url`: the service's address as configured (e.g. OPENAI_BASE_URL), shown with credentials
    masked; by default the origin of the request that failed."""
    where = mask_url(url.rstrip("/")) if url else _origin(exc)
    if isinstance(exc, openai.RateLimitError):
        return f"the {service} is rate limiting us (429) after retries: {_short(exc)}", True
    if isinstance(exc, openai.APITimeoutError):
        at = f" at {where}" if where else ""
        if any(isinstance(seen, aiohttp.ConnectionTimeoutError) for seen in _causes(exc)):
            return f"cannot reach the {service}{at}: no connection within {timeout:g} s, after retries", True
        if not (unreachable(exc) or connect_reason(exc)):
            return f"the {service}{at} did not answer within {timeout:g} s, after retries", True
    if isinstance(exc, openai.APIConnectionError):  # a timeout that was a failed connection too
        return connection_problem(exc, service, where), True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return f"the {service} failed ({exc.status_code}) after retries: {_short(exc)}", True
        return f"the {service} refused the request ({exc.status_code}): {_short(exc)}", False
    return f"the {service} call failed: {_short(exc)}", True


def _origin(exc: BaseException) -> str:
    """scheme://host[:port] of the request behind an openai error, credentials masked; "" if none."""
    url = getattr(getattr(exc, "request", None), "url", None)
    if not isinstance(url, httpx2.URL):
        return ""
    return mask_url(f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}")


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


def _plain(text: str) -> str:
    """A transport error's text without aiohttp's TLS-settings note (`ssl:default`), short."""
    return re.sub(r" ssl:(?:default|True|False|None|<[^>]*>)", "", text)[:200]


def make_openai(settings: Settings, *, media: bool = False) -> AsyncOpenAI:
    """The OpenAI (or Azure, or compatible) client of the settings. `media`: for images and audio,
    whose answers may be up to MAX_MEDIA_BYTES.

    On Azure the client has no fixed deployment: each request names its own (`azure_deployment`:
    SMART_LLM, FAST_LLM and EMBEDDING_MODEL through AZURE_MODEL_MAP, images and audio their model
    setting), and the openai package puts it in the path (/openai/deployments/{name}/...)."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "not-needed"
    limit = settings.max_media_bytes if media else settings.max_llm_reply_bytes
    # The openai package's own aiohttp transport: with hundreds of sessions in flight it spends
    # about half the CPU per call of the default httpx pool (bench/llm_http.py measures it).
    common: dict[str, Any] = {
        "max_retries": settings.llm_max_retries,
        "timeout": settings.llm_timeout,
        "http_client": DefaultAioHttpClient(transport=GuardedTransport(limit)),
    }
    if settings.use_azure:
        return AsyncAzureOpenAI(
            api_key=key,
            azure_endpoint=settings.azure_openai_endpoint or "",
            azure_deployment=None,
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
        self._media: AsyncOpenAI | None = None
        self.stats = CallStats()
        self.metrics = metrics or Metrics()
        self.redactor = Redactor.of(settings)
        # per model: the request path (its Azure deployment's) and the body's fixed fields
        self._routes: dict[str, tuple[str, bytes]] = {}

    @property
    def media(self) -> AsyncOpenAI:
        """The client for images and audio (made at first use, closed with this one)."""
        if self._media is None:
            self._media = make_openai(self.settings, media=True)
        return self._media

    async def close(self) -> None:
        await self.client.close()
        if self._media is not None:
            await self._media.close()

    @property
    def endpoint(self) -> str:
        """Where the LLM service is, as configured (AZURE_OPENAI_ENDPOINT or OPENAI_BASE_URL, else
        the client's own default), for messages: call_failure masks its credentials."""
        if self.settings.use_azure and self.settings.azure_openai_endpoint:
            return self.settings.azure_openai_endpoint
        return self.settings.openai_base_url or str(self.client.base_url)

    def model_for(self, role: str, mode: str) -> str:
        """role: 'smart' (execution) or 'fast' (tasks).
        mode: default, fast (--gpt3only) or smart (--gpt4only).
        The model's name (SMART_LLM or FAST_LLM), on Azure too: it prices the call and sets the
        prompt's limit; the request goes to its deployment (`azure_deployment`)."""
        if mode == "fast" or (mode == "default" and role == "fast"):
            return self.settings.fast_llm
        return self.settings.smart_llm

    def _route(self, model: str) -> tuple[str, bytes]:
        """The path a chat request for `model` goes to, and the start of its body (model,
        temperature, max_tokens), made once per model. On Azure the path names the model's
        deployment; the client has none of its own."""
        route = self._routes.get(model)
        if route is None:
            s = self.settings
            name, path = model, "/chat/completions"
            if s.use_azure:
                name = azure_deployment(s, model)
                path = f"/deployments/{quote(name, safe='')}/chat/completions"
            head = b'{"model":%s,"temperature":%s,"max_tokens":%s,"messages":' % (
                dumps(name),
                dumps(s.temperature),
                dumps(s.max_reply_tokens),
            )
            route = self._routes[model] = (path, head)
        return route

    def _body(
        self, model: str, messages: list[dict[str, Any]], fmt: dict[str, Any] | None
    ) -> tuple[str, bytes]:
        """The request's path and its JSON body, serialised once (and sent as is on every retry):
        the fixed fields and the response_format's schema come ready-made."""
        path, head = self._route(model)
        if fmt is None:
            return path, b"".join((head, dumps(messages), b"}"))
        return path, b"".join((head, dumps(messages), b',"response_format":', _FORMATS.json(fmt), b"}"))

    async def _complete(
        self, model: str, messages: list[dict[str, Any]], fmt: dict[str, Any] | None
    ) -> ChatReply:
        started = time.perf_counter()
        messages = self.redactor.messages(messages)  # no secret goes to the LLM, whatever the prompt holds
        path, body = self._body(model, messages, fmt)
        if log.isEnabledFor(logging.DEBUG):  # the full prompt: only at DEBUG
            log.debug("LLM request to %s: %s", model, body.decode("utf-8", "replace"))
        reply: ChatReply | None = None
        try:
            # The client's own `post` (its retries, errors, auth, headers and timeouts all apply),
            # with the body as bytes: `chat.completions.create` would transform and serialise our
            # messages again on every try, and build a ChatCompletion model of the answer. The
            # answer comes back as bytes (read through GuardedTransport) and only the fields used
            # are read from it.
            response = await self.client.post(path, content=body, cast_to=httpx2.Response)
            reply = read_reply(response.content)
        except ReplyTooLarge as exc:
            raise LLMBadReply(str(exc), self._unread_usage(model, messages)) from exc
        except _NotACompletion as exc:
            raise LLMBadReply(
                f"the LLM service's reply is not a chat completion: {exc}",
                self._unread_usage(model, messages),
            ) from exc
        except openai.OpenAIError as exc:
            message, transient = call_failure(exc, "LLM service", self.settings.llm_timeout, self.endpoint)
            raise (LLMUnavailable if transient else LLMRefused)(message) from exc
        finally:
            elapsed = time.perf_counter() - started
            self.stats.calls += 1
            self.stats.seconds += elapsed
            if reply is None:
                self.metrics.llm_failed(model)
        reply.usage = usage_of(reply, model, self.settings)
        self.metrics.llm_reply(model, reply.usage)
        return reply

    def _unread_usage(self, model: str, messages: list[dict[str, Any]]) -> Usage:
        """What a reply we could not read probably cost: the prompt, and a whole reply."""
        prompt = tokens.count_messages(messages)
        reply = self.settings.max_reply_tokens
        return Usage(
            calls=1,
            prompt_tokens=prompt,
            completion_tokens=reply,
            cost_usd=cost(self.settings, model, prompt, reply),
        ).priced_as(model)

    async def text(self, model: str, messages: list[dict[str, Any]]) -> tuple[str, Usage]:
        """A plain reply (no schema), e.g. answering a question from a page. A refusal (with no
        content) is the reply's text."""
        reply = await self._complete(model, messages, None)
        return reply.content or reply.refusal or "", usage_of(reply, model, self.settings)

    async def structured(
        self, model: str, messages: list[dict[str, Any]], schema: type[T], name: str, strict: bool = False
    ) -> tuple[T, Usage]:
        """Ask for a reply shaped like `schema`; repair, re-ask once, then give up clearly."""
        fmt = response_format(schema, name, strict)
        usage = Usage()
        convo = list(messages)
        error = ""
        for attempt in range(2):
            content = ""
            if attempt:
                self.stats.re_asks += 1
            try:
                reply = await self._complete(model, convo, fmt)
            except LLMBadReply as exc:  # malformed: asked again, like a reply that does not fit
                usage = add_usage(usage, exc.usage)
                error = exc.message
            except LLMError as exc:
                exc.usage = add_usage(usage, exc.usage)
                raise
            else:
                usage = add_usage(usage, usage_of(reply, model, self.settings))
                content = reply.content
                if not content.strip() and reply.refusal:
                    error = f"the model refused: {reply.refusal[:500]}"
                else:
                    try:
                        parsed, repaired = parse_reply_repaired(content, schema)
                    except ValueError as exc:
                        error = str(exc)
                    else:
                        self.stats.repairs += repaired
                        return parsed, usage
                    if reply.finish_reason == "length":  # the reason first: the error is cut short
                        error = (
                            "the reply was cut off at the reply token limit "
                            f"({self.settings.max_reply_tokens} tokens), keep it shorter: {error}"
                        )
            log.warning("invalid %s reply (attempt %d): %s", name, attempt + 1, error[:300])
            shown = [{"role": "assistant", "content": content[:4000]}] if content else []
            convo = [
                *messages,
                *shown,
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
    return parse_reply_repaired(content, schema)[0]


def parse_reply_repaired(content: str, schema: type[T]) -> tuple[T, bool]:
    """`parse_reply`, and whether the reply needed json-repair to be read."""
    text = content.strip()
    if not text:
        raise ValueError("the reply was empty")
    try:
        return schema.model_validate_json(text), False
    except ValidationError as first:
        if len(text) > MAX_REPAIR_CHARS:  # json-repair's time grows with the square of its input
            raise ValueError(
                f"not valid JSON, and too long to repair ({len(text):,} characters); reply with "
                "valid JSON only"
            ) from None
        try:
            data = scrub(json_repair.loads(text))  # Python's json lets lone surrogates through
        except Exception as exc:  # json-repair gave up
            raise ValueError(f"not JSON: {type(exc).__name__}") from None
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}: {text[:200]}") from None
        try:
            return schema.model_validate(data), True
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
