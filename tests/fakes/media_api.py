"""Local fakes of the media providers that are not OpenAI's (the scripted LLM server speaks those).

``FakeMedia`` is one ``ThreadServer`` (tests/fakes/server.py) that speaks:

- Hugging Face inference, as huggingface_hub's AsyncInferenceClient calls a model URL
  (``{HUGGINGFACE_API_URL}/models/<model id>``): a JSON ``{"inputs": prompt, "parameters": {width,
  height}}`` is text to image (the answer: PNG bytes; route ``hf-image``); raw audio bytes are speech
  recognition (the answer ``{"text": ...}``; route ``hf-asr``). ``Authorization: Bearer <token>``
  must be ``hf_token`` when that is set.
- Stable Diffusion WebUI: ``POST /sdapi/v1/txt2img`` (route ``sdwebui``), basic auth checked when
  ``sd_auth`` is set; answers ``{"images": [base64 PNG]}``.
- StreamElements: ``GET /kappa/v2/speech?voice=..&text=..`` (route ``streamelements``): MP3 bytes.
- ElevenLabs: ``POST /v1/text-to-speech/{voice_id}`` (route ``elevenlabs``), ``xi-api-key`` checked
  against ``elevenlabs_key``: MP3 bytes.

Scripted failures: ``fake.failures.add(Failure("sdwebui", 500))`` (any status, ``retry_after``), and
per route a queue of special answers: ``fake.script("hf-image", Huge(20_000_000))`` (a body of that
many bytes, announced by its Content-Length, or sent chunked without one with ``chunked=True``),
``Delay(seconds)``, ``Body(data, status, content_type)``. Every request is recorded in
``fake.requests`` as ``(route, details)``.
"""

from __future__ import annotations

import base64
import collections
import json
import threading
from typing import Any

from aiohttp import web

from tests.fakes.llm_server import FAKE_MP3, Body, Delay, Huge, png_bytes
from tests.fakes.server import HOST, Failures, ThreadServer

__all__ = ["Body", "Delay", "FakeMedia", "Huge"]

Special = Body | Delay | Huge


class FakeMedia(ThreadServer):
    client_max_size = 32 * 1024 * 1024

    def __init__(
        self,
        host: str = HOST,
        port: int = 0,
        *,
        hf_token: str | None = None,
        sd_auth: str | None = None,
        elevenlabs_key: str | None = None,
    ) -> None:
        super().__init__(host, port)
        self.hf_token = hf_token
        self.sd_auth = sd_auth
        self.elevenlabs_key = elevenlabs_key
        self.failures = Failures()
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.transcript = "hello from the fake"
        self._queues: dict[str, collections.deque[Special]] = {}
        self._lock = threading.Lock()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/models/{model:.+}", self._hf)
        app.router.add_post("/sdapi/v1/txt2img", self._sdwebui)
        app.router.add_get("/kappa/v2/speech", self._streamelements)
        app.router.add_post("/v1/text-to-speech/{voice_id}", self._elevenlabs)

    def script(self, route: str, *answers: Special) -> FakeMedia:
        with self._lock:
            self._queues.setdefault(route, collections.deque()).extend(answers)
        return self

    def of(self, route: str) -> list[dict[str, Any]]:
        with self._lock:
            return [d for r, d in self.requests if r == route]

    # -- plumbing

    def _record(self, route: str, details: dict[str, Any]) -> None:
        with self._lock:
            self.requests.append((route, details))

    async def _special(
        self, request: web.Request, route: str, content_type: str
    ) -> web.StreamResponse | None:
        """A scripted failure or special answer for this request, if any."""
        failure = self.failures.take(route, None, request.method)
        if failure is not None:
            headers = {} if failure.retry_after is None else {"Retry-After": f"{failure.retry_after:g}"}
            return web.json_response({"error": failure.message}, status=failure.status, headers=headers)
        with self._lock:
            queue = self._queues.get(route)
            answer = queue.popleft() if queue else None
        while isinstance(answer, Delay):
            await self.sleep(answer.seconds)
            answer = answer.then if isinstance(answer.then, Body | Huge) else None
        if isinstance(answer, Body):
            return web.Response(
                body=answer.data, status=answer.status, headers={"Content-Type": answer.content_type}
            )
        if isinstance(answer, Huge):
            resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
            if not answer.chunked:
                resp.content_length = answer.size
            chunk = b"\0" * 65536
            try:
                await resp.prepare(request)
                left = answer.size
                while left > 0:
                    n = min(left, len(chunk))
                    await resp.write(chunk[:n])
                    left -= n
            except ConnectionError:
                pass
            return resp
        return None

    @staticmethod
    def _denied(message: str) -> web.Response:
        return web.json_response({"error": message}, status=401)

    # -- routes

    async def _hf(self, request: web.Request) -> web.StreamResponse:
        model = request.match_info["model"]
        if self.hf_token is not None and request.headers.get("Authorization") != f"Bearer {self.hf_token}":
            return self._denied("Invalid credentials in Authorization header")
        data = await request.read()
        if request.content_type == "application/json":
            body = json.loads(data)
            params = body.get("parameters") or {}
            self._record("hf-image", {"model": model, "inputs": body.get("inputs"), **params})
            if (special := await self._special(request, "hf-image", "image/png")) is not None:
                return special
            width, height = int(params.get("width") or 512), int(params.get("height") or 512)
            return web.Response(body=png_bytes(width, height), headers={"Content-Type": "image/png"})
        self._record("hf-asr", {"model": model, "bytes": len(data), "head": data[:4]})
        if (special := await self._special(request, "hf-asr", "application/json")) is not None:
            return special
        return web.json_response({"text": self.transcript})

    async def _sdwebui(self, request: web.Request) -> web.StreamResponse:
        if self.sd_auth is not None:
            expected = "Basic " + base64.b64encode(self.sd_auth.encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.json_response({"detail": "Not authenticated"}, status=401)
        body = await request.json()
        self._record("sdwebui", body)
        if (special := await self._special(request, "sdwebui", "application/json")) is not None:
            return special
        png = png_bytes(int(body.get("width", 512)), int(body.get("height", 512)), (200, 80, 40))
        return web.json_response(
            {"images": [base64.b64encode(png).decode()], "parameters": body, "info": "{}"}
        )

    async def _streamelements(self, request: web.Request) -> web.StreamResponse:
        self._record("streamelements", dict(request.query))
        if (special := await self._special(request, "streamelements", "audio/mpeg")) is not None:
            return special
        if not request.query.get("text"):
            return web.json_response({"error": "text is required"}, status=400)
        return web.Response(body=FAKE_MP3, headers={"Content-Type": "audio/mpeg"})

    async def _elevenlabs(self, request: web.Request) -> web.StreamResponse:
        if self.elevenlabs_key is not None and request.headers.get("xi-api-key") != self.elevenlabs_key:
            return web.json_response(
                {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}, status=401
            )
        body = await request.json()
        self._record("elevenlabs", {"voice_id": request.match_info["voice_id"], **body, **request.query})
        if (special := await self._special(request, "elevenlabs", "audio/mpeg")) is not None:
            return special
        return web.Response(body=FAKE_MP3, headers={"Content-Type": "audio/mpeg"})
