"""A scripted, OpenAI-compatible HTTP server for tests.

``ScriptedLLM`` is a ``ThreadServer`` (tests/fakes/server.py): aiohttp on 127.0.0.1 in a background
thread with its own event loop, so the same instance serves sync tests, async tests and subprocesses (point
them at ``llm.base_url``, e.g. through ``OPENAI_BASE_URL``).

Every chat request has a *kind*: ``response_format.json_schema.name`` when present, else
``"text"``. Replies are scripted per kind and served first in, first out::

    with ScriptedLLM() as llm:
        llm.script("execution_reply", agent_reply("google", {"query": "x"}))
        llm.script("task_list", tasks_reply("a", "b"))
        llm.script("text", Raw("{broken"), Error(429), Delay(5.0, then={"ok": True}))
        llm.fail_next(500, times=2)   # the next two chat requests of any kind fail

Hostile answers, for testing a client's limits: ``Body(data)`` (an HTTP body exactly as given:
not JSON, not UTF-8, not a chat completion), ``Huge(size)`` (a chat completion whose content is
about ``size`` bytes, streamed without being built in memory), ``Reset()`` (the connection is
dropped without an answer) and ``Garbage(data)`` (bytes that are not HTTP, then the connection
is closed). None of them makes the server log a traceback.

A kind with an empty queue falls back to ``llm.default[kind](request_body)``; without a
default it gets HTTP 500 and the kind is appended to ``llm.unscripted``.

Chat completions and embeddings are served at ``/v1/...`` and at Azure OpenAI's deployment
routes (``/openai/deployments/{deployment}/chat/completions``, ``.../embeddings``); a request
is recorded with its path and query (``?api-version=...``), so a test sees which deployment it
went to.

Images and audio (``/v1/images/generations``, ``/v1/audio/transcriptions``, ``/v1/audio/speech``, and
their Azure deployment routes) are kinds too: ``"images"``, ``"transcription"``, ``"speech"``, with
defaults (a PNG of the asked size as ``b64_json``, ``{"text": "heard <file> (<n> bytes)"}``, an
MP3-looking body). Queue a dict (sent as the JSON answer), a ``str`` (the transcript, or the
speech bytes), ``Error``, ``Delay``, ``Body``, ``Huge(size)`` (an image or audio body of ``size``
bytes), ``Reset`` or ``Garbage``; ``llm.fail_media(kind, status)`` scripts ``Failure``s for them
(``fail_next`` is for chat requests only). Their requests are recorded with the kind (an upload as
``{"model", "filename", "bytes", "response_format", ...}``).

Run standalone with ``python -m tests.fakes.llm_server --port 8765`` (``--bench``: answer everything
at once with varied replies, for ``bench/engine.py``).
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import threading
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeAlias

from aiohttp import web

from tests.fakes.server import HOST, Failure, Failures, ThreadServer

__all__ = [
    "Body",
    "Delay",
    "Error",
    "Garbage",
    "Huge",
    "Raw",
    "Recorded",
    "Reply",
    "ReplyLike",
    "Reset",
    "ScriptedLLM",
    "agent_reply",
    "embed_text",
    "png_bytes",
    "tasks_reply",
]


# --------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """A successful chat reply. A ``dict`` content is sent as ``json.dumps(content)``, a ``str``
    verbatim. Token counts left as ``None`` are computed (see ``ScriptedLLM``)."""

    content: dict[str, Any] | str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class Raw:
    """Content sent verbatim as the assistant message (e.g. broken JSON)."""

    content: str


@dataclass(frozen=True)
class Error:
    """An OpenAI-style error response with HTTP ``status``. For statuses the openai client
    retries (408, 409, 429, 5xx) a ``retry-after-ms`` header is sent when ``retry_after_ms``
    is not None, so the client's built-in retry waits only that long."""

    status: int
    message: str = "scripted error"
    retry_after_ms: int | None = 1


@dataclass(frozen=True)
class Delay:
    """Sleep ``seconds`` (without blocking other requests), then answer ``then``. With
    ``then=None`` the request is answered as if the delay had not been queued: the kind's
    next queued reply at the end of the sleep, else its default, else the unscripted 500."""

    seconds: float
    then: ReplyLike | None = None


@dataclass(frozen=True)
class Body:
    """An HTTP response whose body is exactly ``data`` (invalid UTF-8, not JSON, JSON that is not
    a chat completion, a completion with a lone surrogate escape...), with ``status`` and the
    ``Content-Type`` header ``content_type``."""

    data: bytes
    status: int = 200
    content_type: str = "application/json"


@dataclass(frozen=True)
class Huge:
    """A chat completion whose assistant content is about ``size`` bytes, streamed in chunks (the
    server never holds it whole). ``valid``: the content is a reply of the right shape (an
    ``execution_reply`` whose thoughts text is the filler, or a ``task_list`` with one huge task)
    for the request's kind, else it is filler only (not JSON). ``chunked``: sent with chunked
    transfer encoding, without a Content-Length header."""

    size: int
    valid: bool = True
    chunked: bool = False


@dataclass(frozen=True)
class Reset:
    """The connection is dropped without any response: reset (TCP RST) when ``rst``, else
    closed."""

    rst: bool = True


@dataclass(frozen=True)
class Garbage:
    """Raw bytes that are not HTTP are written to the connection, which is then closed."""

    data: bytes = b"HELLO\r\n\r\n"


# A plain ``str`` is accepted as a shortcut for ``Raw(str)``.
ReplyLike: TypeAlias = dict[str, Any] | str | Reply | Raw | Error | Delay | Body | Huge | Reset | Garbage
DefaultFn: TypeAlias = Callable[[dict[str, Any]], ReplyLike]


@dataclass(frozen=True)
class Recorded:
    """One received request. ``kind`` is the chat kind, or ``"embeddings"``; ``at`` is when it
    arrived (``time.monotonic()``)."""

    path: str
    body: dict[str, Any]
    kind: str
    at: float = field(default_factory=time.monotonic, compare=False)


def agent_reply(
    command: str,
    args: dict[str, Any] | None = None,
    *,
    text: str = "thinking",
    reasoning: str = "because",
    plan: str = "- step",
    criticism: str = "none",
    speak: str = "ok",
) -> dict[str, Any]:
    """AutoGPT's reply shape: ``{"thoughts": {...}, "command": {"name", "args"}}``."""
    return {
        "thoughts": {
            "text": text,
            "reasoning": reasoning,
            "plan": plan,
            "criticism": criticism,
            "speak": speak,
        },
        "command": {"name": command, "args": dict(args) if args else {}},
    }


def tasks_reply(*tasks: str) -> dict[str, Any]:
    """The ``task_list`` reply shape: ``{"tasks": [...]}``."""
    return {"tasks": list(tasks)}


# ------------------------------------------------------------------------ embeddings

_WORD = re.compile(r"[^\W_]+")
_EMPTY_EPSILON = 1e-6


def embed_text(text: str, dim: int = 64) -> list[float]:
    """Deterministic bag-of-words embedding: lowercase words hashed (blake2b) into ``dim``
    buckets, counted and L2-normalised, so texts sharing words get similar vectors. A text
    without words gets a tiny value in bucket 0 instead of an all-zero vector."""
    vec = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
        vec[int.from_bytes(digest, "little") % dim] += 1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0.0:
        vec[0] = _EMPTY_EPSILON
        return vec
    return [v / norm for v in vec]


def _approx_tokens(text: str) -> int:
    return max(1, len(text) // 4)


# ---------------------------------------------------------------------------- server


class _BadRequest(Exception):
    pass


_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def _error_response(status: int, message: str, retry_after_ms: int | None = None) -> web.Response:
    err_type = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    headers: dict[str, str] = {}
    if retry_after_ms is not None and (status in (408, 409, 429) or status >= 500):
        headers["retry-after-ms"] = str(retry_after_ms)
    body = {"error": {"message": message, "type": err_type, "param": None, "code": err_type}}
    return web.json_response(body, status=status, headers=headers)


def _task_list_default(_body: dict[str, Any]) -> ReplyLike:
    return {"tasks": []}


class ScriptedLLM(ThreadServer):
    """Scripted OpenAI-compatible server (chat completions, embeddings, models).

    Usage not overridden by ``Reply``: ``prompt_tokens = max(1, len(json.dumps(messages)) // 4)``,
    ``completion_tokens = max(1, len(content) // 4)``.
    """

    client_max_size: ClassVar[int] = 64 * 1024 * 1024

    def __init__(
        self,
        host: str = HOST,
        port: int = 0,
        *,
        dim: int = 64,
        models: tuple[str, ...] = ("gpt-4o-mini", "text-embedding-3-small"),
    ) -> None:
        super().__init__(host, port)
        self.dim = dim
        self.models: list[str] = list(models)
        self.delay: float = 0.0
        self.embed_delay: float | None = None  # embeddings' own delay (None: `delay`)
        self.first_request_file: Path | None = None  # the first request's time is written there
        self.default: dict[str, DefaultFn] = {}
        self.requests: list[Recorded] = []
        self.last_headers: dict[str, str] = {}  # of the last chat request
        self.unscripted: list[str] = []
        self._lock = threading.Lock()
        self._queues: dict[str, collections.deque[ReplyLike]] = {}
        self._failures = Failures()
        self.media_failures = Failures()
        self._restore_defaults()

    @property
    def base_url(self) -> str:
        if not self.started:
            raise RuntimeError("ScriptedLLM is not started")
        return self.url("/v1")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._handle_chat)
        # Azure OpenAI: the deployment in the path, the API version in the query, key in `api-key`
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._handle_chat)
        app.router.add_post("/v1/embeddings", self._handle_embeddings)
        app.router.add_post("/openai/deployments/{deployment}/embeddings", self._handle_embeddings)
        app.router.add_get("/v1/models", self._handle_models)
        app.router.add_get("/v1/models/{model}", self._handle_model)
        for prefix in ("/v1", "/openai/deployments/{deployment}"):
            app.router.add_post(prefix + "/images/generations", self._handle_images)
            app.router.add_post(prefix + "/audio/transcriptions", self._handle_transcription)
            app.router.add_post(prefix + "/audio/speech", self._handle_speech)

    # -- scripting ----------------------------------------------------------------

    def script(self, kind: str, *replies: ReplyLike) -> ScriptedLLM:
        """Append replies to ``kind``'s FIFO queue."""
        for reply in replies:
            _check_reply(reply)
        with self._lock:
            self._queues.setdefault(kind, collections.deque()).extend(replies)
        return self

    def fail_next(self, status: int, times: int = 1, retry_after_ms: int = 1) -> ScriptedLLM:
        """The next ``times`` chat requests of any kind get HTTP ``status`` (before kind queues)."""
        message = f"scripted failure (HTTP {status})"
        self._failures.add(
            Failure(".*", status, message=message, times=times, retry_after=retry_after_ms / 1000)
        )
        return self

    def fail_media(
        self, kind: str, status: int, times: int = 1, message: str = "", retry_after_ms: int = 1
    ) -> ScriptedLLM:
        """The next ``times`` media requests of ``kind`` (images, transcription, speech; a regular
        expression) get HTTP ``status``."""
        text = message or f"scripted failure (HTTP {status})"
        self.media_failures.add(
            Failure(kind, status, message=text, times=times, retry_after=retry_after_ms / 1000)
        )
        return self

    def remaining(self) -> dict[str, int]:
        """Queued, not yet served replies per kind (kinds with an empty queue are omitted)."""
        with self._lock:
            return {kind: len(q) for kind, q in self._queues.items() if q}

    def requests_of(self, kind: str) -> list[dict[str, Any]]:
        """Bodies of the recorded requests of ``kind``, in arrival order."""
        with self._lock:
            return [r.body for r in self.requests if r.kind == kind]

    def last(self, kind: str) -> dict[str, Any]:
        """Body of the latest request of ``kind``; ``LookupError`` when there is none."""
        bodies = self.requests_of(kind)
        if not bodies:
            with self._lock:
                seen = sorted({r.kind for r in self.requests})
            raise LookupError(f"no request of kind {kind!r} recorded (kinds seen: {seen})")
        return bodies[-1]

    def reset(self) -> None:
        """Clear queues, records, ``unscripted``, pending ``fail_next`` and ``delay``; restore defaults."""
        with self._lock:
            self._queues.clear()
            self._failures.clear()
            self.media_failures.clear()
            self.requests.clear()
            self.unscripted.clear()
            self.delay = 0.0
            self.embed_delay = None
            self._restore_defaults()

    def _restore_defaults(self) -> None:
        self.default.clear()
        self.default["task_list"] = _task_list_default
        self.default["images"] = _images_default
        self.default["transcription"] = _transcription_default
        self.default["speech"] = _speech_default

    def _record(self, path: str, body: dict[str, Any], kind: str) -> None:
        with self._lock:
            self.requests.append(Recorded(path, body, kind))
            if self.first_request_file is not None and not self.first_request_file.exists():
                self.first_request_file.write_text(f"{time.time()}\n")  # bench/cycle.py: start-up

    def _next_reply(self, kind: str, body: dict[str, Any], *, fail_first: bool) -> ReplyLike:
        failure = self._failures.take(kind, body) if fail_first else None
        if failure is not None:
            retry_after_ms = None if failure.retry_after is None else round(failure.retry_after * 1000)
            return Error(failure.status, failure.message, retry_after_ms)
        with self._lock:
            queue = self._queues.get(kind)
            if queue:
                return queue.popleft()
            default = self.default.get(kind)
            if default is None:
                self.unscripted.append(kind)
                return Error(500, f"scripted LLM: no reply queued for kind {kind}", None)
        try:
            return default(body)
        except Exception as exc:
            return Error(500, f"scripted LLM: default for kind {kind} raised {exc!r}", None)

    # -- handlers -----------------------------------------------------------------

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise _BadRequest(f"request body is not valid JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise _BadRequest("request body must be a JSON object")
        return body

    async def _handle_chat(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._read_json(request)
            kind = _chat_kind(body)
        except _BadRequest as exc:
            return _error_response(400, str(exc))
        self._record(request.path_qs if request.query else request.path, body, kind)
        self.last_headers = dict(request.headers)
        if body.get("stream"):
            return _error_response(400, "scripted LLM: streaming is not supported")
        await self.sleep(self.delay)
        reply = self._next_reply(kind, body, fail_first=True)
        while isinstance(reply, Delay):
            await self.sleep(reply.seconds)
            if self.stopping:
                return _error_response(503, "scripted LLM: shutting down", None)
            reply = reply.then if reply.then is not None else self._next_reply(kind, body, fail_first=False)
        if isinstance(reply, Error):
            return _error_response(reply.status, reply.message, reply.retry_after_ms)
        if isinstance(reply, Body):
            return web.Response(
                body=reply.data, status=reply.status, headers={"Content-Type": reply.content_type}
            )
        if isinstance(reply, Huge):
            return await self._huge(request, body, kind, reply)
        if isinstance(reply, Reset | Garbage):
            return _Dropped(reply)
        try:
            content, prompt_tokens, completion_tokens = _resolve_reply(reply, body)
        except (TypeError, ValueError) as exc:
            return _error_response(500, f"scripted LLM: bad scripted reply {reply!r}: {exc}", None)
        return web.json_response(_completion(body, content, prompt_tokens, completion_tokens))

    async def _huge(
        self, request: web.Request, body: dict[str, Any], kind: str, reply: Huge
    ) -> web.StreamResponse:
        """Stream a chat completion whose content is ``reply.size`` bytes, chunk by chunk; a client
        that stops reading ends it quietly."""
        head, fill, tail = _huge_parts(reply, kind, body)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        if reply.chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(head) + fill + len(tail)
        try:
            await resp.prepare(request)
            await resp.write(head)
            left = fill
            while left > 0:
                n = min(left, len(_FILL_CHUNK))
                await resp.write(_FILL_CHUNK if n == len(_FILL_CHUNK) else _FILL_CHUNK[:n])
                left -= n
            await resp.write(tail)
        except ConnectionError:  # the client stopped reading (as it should, past its limit)
            pass
        return resp

    async def _handle_embeddings(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._read_json(request)
            texts, dim, encoding = _embedding_params(body, self.dim)
        except _BadRequest as exc:
            return _error_response(400, str(exc))
        self._record(request.path_qs if request.query else request.path, body, "embeddings")
        await self.sleep(self.delay if self.embed_delay is None else self.embed_delay)
        data: list[dict[str, Any]] = []
        for i, text in enumerate(texts):
            vec = embed_text(text, dim)
            embedding: list[float] | str
            if encoding == "base64":
                embedding = base64.b64encode(struct.pack(f"<{dim}f", *vec)).decode("ascii")
            else:
                embedding = vec
            data.append({"object": "embedding", "index": i, "embedding": embedding})
        tokens = sum(_approx_tokens(t) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    # -- images and audio ------------------------------------------------------------

    async def _handle_images(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._read_json(request)
            if not isinstance(body.get("prompt"), str) or not body["prompt"]:
                raise _BadRequest("'prompt' must be a non-empty string")
        except _BadRequest as exc:
            return _error_response(400, str(exc))
        if "deployment" in request.match_info:
            body = {**body, "deployment": request.match_info["deployment"]}
        return await self._media(request, "images", body)

    async def _handle_transcription(self, request: web.Request) -> web.StreamResponse:
        try:
            form = await request.post()
        except ValueError as exc:
            return _error_response(400, f"not a multipart upload: {exc}")
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return _error_response(400, "'file' must be an uploaded file")
        data = upload.file.read()
        body: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
        body.update({"filename": upload.filename, "bytes": len(data), "head": data[:16].hex()})
        if not body.get("model"):
            return _error_response(400, "'model' is required")
        return await self._media(request, "transcription", body)

    async def _handle_speech(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await self._read_json(request)
            if not isinstance(body.get("input"), str) or not body.get("voice"):
                raise _BadRequest("'input' and 'voice' are required")
        except _BadRequest as exc:
            return _error_response(400, str(exc))
        return await self._media(request, "speech", body)

    async def _media(self, request: web.Request, kind: str, body: dict[str, Any]) -> web.StreamResponse:
        self._record(request.path, body, kind)
        self.last_headers = dict(request.headers)
        await self.sleep(self.delay)
        failure = self.media_failures.take(kind, body)
        if failure is not None:
            retry_after_ms = None if failure.retry_after is None else round(failure.retry_after * 1000)
            return _error_response(failure.status, failure.message, retry_after_ms)
        reply = self._next_reply(kind, body, fail_first=False)
        while isinstance(reply, Delay):
            await self.sleep(reply.seconds)
            if self.stopping:
                return _error_response(503, "scripted LLM: shutting down", None)
            reply = reply.then if reply.then is not None else self._next_reply(kind, body, fail_first=False)
        if isinstance(reply, Error):
            return _error_response(reply.status, reply.message, reply.retry_after_ms)
        if isinstance(reply, Body):
            return web.Response(
                body=reply.data, status=reply.status, headers={"Content-Type": reply.content_type}
            )
        if isinstance(reply, Reset | Garbage):
            return _Dropped(reply)
        if isinstance(reply, Huge):
            if kind == "images":
                head = b'{"created": 0, "data": [{"b64_json": "'
                return await _stream_fill(request, head, reply.size, b'"}]}', "application/json", b"A")
            return await _stream_fill(request, b"", reply.size, b"", _MEDIA_TYPES.get(kind, "audio/mpeg"))
        if isinstance(reply, Reply | Raw):
            reply = reply.content
        if isinstance(reply, dict):
            return web.json_response(reply)
        if kind == "speech":
            return web.Response(body=reply.encode("utf-8"), headers={"Content-Type": "audio/mpeg"})
        if kind == "transcription":
            return web.json_response({"text": reply})
        return web.json_response({"created": int(time.time()), "data": [{"b64_json": reply}]})

    def _model_obj(self, model: str) -> dict[str, Any]:
        return {"id": model, "object": "model", "created": 0, "owned_by": "scripted-llm"}

    async def _handle_models(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"object": "list", "data": [self._model_obj(m) for m in self.models]})

    async def _handle_model(self, request: web.Request) -> web.StreamResponse:
        model = request.match_info["model"]
        if model not in self.models:
            return _error_response(404, f"The model '{model}' does not exist")
        return web.json_response(self._model_obj(model))


class _Dropped(web.StreamResponse):
    """What the handler returns for ``Reset`` and ``Garbage``: preparing it drops the connection
    (after writing the garbage) and raises ``ConnectionResetError``, which aiohttp's server takes
    for a client that went away (logged at debug level, no traceback)."""

    def __init__(self, how: Reset | Garbage) -> None:
        super().__init__()
        self._how = how

    async def prepare(self, request: web.BaseRequest) -> None:  # type: ignore[override]
        transport = request.transport
        if transport is not None and not transport.is_closing():
            if isinstance(self._how, Garbage):
                transport.write(self._how.data)
                transport.close()
            else:
                sock = transport.get_extra_info("socket")
                if self._how.rst and sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    transport.abort()
                else:
                    transport.close()
        raise ConnectionResetError("scripted LLM: the connection was dropped on purpose")


# --------------------------------------------------------------------------- helpers

_MEDIA_TYPES = {"images": "application/json", "transcription": "application/json", "speech": "audio/mpeg"}
# an MPEG audio frame header (MPEG-1 layer III, 128 kbit/s, 44.1 kHz) after an ID3 tag
FAKE_MP3 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + (b"\xff\xfb\x90\x64" + bytes(413)) * 8


def png_bytes(width: int, height: int, rgb: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    """A valid PNG of one colour, made in-process (zlib and struct, no Pillow)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = b"\x00" + bytes(rgb) * width
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(row * height, 6))
        + chunk(b"IEND", b"")
    )


def _images_default(body: dict[str, Any]) -> ReplyLike:
    size = str(body.get("size") or "1024x1024")
    found = re.fullmatch(r"(\d+)x(\d+)", size)
    width, height = (int(found.group(1)), int(found.group(2))) if found else (1024, 1024)
    png = png_bytes(min(width, 4096), min(height, 4096))
    item: dict[str, Any] = {"revised_prompt": body.get("prompt")}
    if body.get("response_format") == "url":
        item["url"] = "https://images.example/generated.png"
    else:
        item["b64_json"] = base64.b64encode(png).decode("ascii")
    return {"created": int(time.time()), "data": [item]}


def _transcription_default(body: dict[str, Any]) -> ReplyLike:
    return {"text": f"heard {body.get('filename')} ({body.get('bytes')} bytes)"}


def _speech_default(body: dict[str, Any]) -> ReplyLike:
    return Body(FAKE_MP3, content_type="audio/mpeg")


async def _stream_fill(
    request: web.Request, head: bytes, size: int, tail: bytes, content_type: str, fill: bytes = b"x"
) -> web.StreamResponse:
    """A body of ``head``, about ``size`` bytes of ``fill``, ``tail``, streamed with its length; a
    client that stops reading ends it quietly."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    resp.content_length = len(head) + size + len(tail)
    chunk = fill * 65536
    try:
        await resp.prepare(request)
        await resp.write(head)
        left = size
        while left > 0:
            n = min(left, len(chunk))
            await resp.write(chunk if n == len(chunk) else chunk[:n])
            left -= n
        await resp.write(tail)
    except ConnectionError:
        pass
    return resp


_FILL_CHUNK = b"x" * 65536
_FILL_MARK = "@@scripted-llm-fill@@"


def _completion(
    body: dict[str, Any], content: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """A chat completion with one assistant message ``content``."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _huge_parts(reply: Huge, kind: str, body: dict[str, Any]) -> tuple[bytes, int, bytes]:
    """A ``Huge`` completion as (bytes before the filler, filler length, bytes after it). The
    filler is ``x`` repeated, which needs no escaping inside a JSON string."""
    if not reply.valid:
        content = _FILL_MARK
    elif kind == "task_list":
        content = json.dumps(tasks_reply(_FILL_MARK))
    else:
        content = json.dumps(agent_reply("list_files", {"directory": "."}, text=_FILL_MARK))
    fill = max(0, reply.size - (len(content) - len(_FILL_MARK)))
    prompt_tokens = _approx_tokens(json.dumps(body["messages"]))
    completion = _completion(body, content, prompt_tokens, max(1, reply.size // 4))
    head, tail = json.dumps(completion).split(_FILL_MARK)
    return head.encode(), fill, tail.encode()


def _check_reply(reply: object) -> None:
    if isinstance(reply, Delay):
        if reply.then is not None:
            _check_reply(reply.then)
        return
    if not isinstance(reply, dict | str | Reply | Raw | Error | Body | Huge | Reset | Garbage):
        raise TypeError(f"not a scripted reply: {reply!r}")


def _chat_kind(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("'model' must be a non-empty string")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _BadRequest("'messages' must be a non-empty array")
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages):
        raise _BadRequest("every message must be an object with a 'role'")
    fmt = body.get("response_format")
    if isinstance(fmt, dict):
        schema = fmt.get("json_schema")
        if isinstance(schema, dict) and isinstance(schema.get("name"), str) and schema["name"]:
            return str(schema["name"])
    return "text"


def _resolve_reply(reply: ReplyLike, body: dict[str, Any]) -> tuple[str, int, int]:
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    if isinstance(reply, Reply):
        prompt_tokens, completion_tokens = reply.prompt_tokens, reply.completion_tokens
        raw: object = reply.content
    elif isinstance(reply, Raw):
        raw = reply.content
    else:
        raw = reply
    if isinstance(raw, dict):
        content = json.dumps(raw)
    elif isinstance(raw, str):
        content = raw
    else:
        raise TypeError("reply content must be a dict or a str")
    if prompt_tokens is None:
        prompt_tokens = _approx_tokens(json.dumps(body["messages"]))
    if completion_tokens is None:
        completion_tokens = _approx_tokens(content)
    return content, prompt_tokens, completion_tokens


def _embedding_params(body: dict[str, Any], default_dim: int) -> tuple[list[str], int, str]:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _BadRequest("'model' must be a non-empty string")
    raw = body.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(t, str) for t in raw):
        texts = list(raw)
    else:
        raise _BadRequest("'input' must be a string or a non-empty array of strings")
    dim = body.get("dimensions", default_dim)
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        raise _BadRequest("'dimensions' must be a positive integer")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _BadRequest("'encoding_format' must be 'float' or 'base64'")
    return texts, dim, str(encoding)


_CYCLES_LEFT = re.compile(r"you have (\d+) cycles left")
_LISTED = re.compile(r"^\d+\. (.+)$", re.MULTILINE)


def _bench_defaults(llm: ScriptedLLM) -> None:
    """``--bench``: answer every request at once, forever, without keeping what was asked.

    Execution replies rotate write_to_file, append_to_file, read_file by the session's own cycle
    count (read from the "cycles left" line of its prompt), with a global counter in the text, so
    no session ever proposes the same command three times in a row (the engine's loop guard).
    Task creation answers 2 or 3 new tasks; prioritisation echoes the listed tasks back."""
    counter = itertools.count(1)
    llm.requests = collections.deque(maxlen=100)  # type: ignore[assignment]

    def execution(body: dict[str, Any]) -> ReplyLike:
        n = next(counter)
        found = _CYCLES_LEFT.search(json.dumps(body["messages"]))
        turn = -int(found.group(1)) % 3 if found else n % 3
        if turn == 0:
            return agent_reply("write_to_file", {"filename": "notes.txt", "text": f"note {n}"})
        if turn == 1:
            return agent_reply("append_to_file", {"filename": "log.txt", "text": f"entry {n}\n"})
        return agent_reply("read_file", {"filename": "notes.txt"})

    def task_list(body: dict[str, Any]) -> ReplyLike:
        prompt = str(body["messages"][0].get("content") or "")
        if "task prioritization AI" in prompt:
            return tasks_reply(*_LISTED.findall(prompt.split("Consider the ultimate objective")[0]))
        n = next(counter)
        return tasks_reply(*[f"task {n}.{i}" for i in range(2 + n % 2)])

    llm.default["execution_reply"] = execution
    llm.default["task_list"] = task_list


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server (built-in defaults).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--bench", action="store_true", help="answer every request at once with varied defaults (benchmarks)"
    )
    parser.add_argument("--first-request-file", type=Path, help="write the first request's time here")
    args = parser.parse_args(argv)
    with ScriptedLLM(args.host, args.port) as llm:
        llm.first_request_file = args.first_request_file
        if args.bench:
            _bench_defaults(llm)
        print(f"scripted LLM serving at {llm.base_url} (Ctrl-C to stop)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
