"""Image generation (IMAGE_PROVIDER): dalle, huggingface, sdwebui.

- dalle: the OpenAI images API of the configured OpenAI, Azure or compatible server, through the
  openai client `make_openai(settings, media=True)` makes (its answers capped at MAX_MEDIA_BYTES).
- huggingface: the Inference API through huggingface_hub's AsyncInferenceClient.text_to_image, at
  ``{HUGGINGFACE_API_URL}/models/{HUGGINGFACE_IMAGE_MODEL}`` (the layout of Hugging Face's router,
  https://router.huggingface.co/hf-inference, used when HUGGINGFACE_API_URL is empty); the image it
  decodes (with Pillow) is encoded as a PNG.
- sdwebui: a Stable Diffusion WebUI started with --api: POST {SD_WEBUI_URL}/sdapi/v1/txt2img.

Every provider has MEDIA_TIMEOUT_S to answer. Every failure is a `MediaError` whose message names
the provider and what happened, without a key, a server path or a traceback. The helpers here
(capped HTTP reads, the capped Hugging Face client, safe messages, the PNG check) serve
bot/media/speech.py too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import contextvars
import io
import json
import re
import struct
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import openai
from pydantic import BaseModel

from bot.redact import Redactor
from bot.settings import Settings

if TYPE_CHECKING:
    from huggingface_hub import AsyncInferenceClient
    from PIL.Image import Image as Picture

__all__ = ["Image", "MediaError", "generate", "image_off", "png_size", "snap_size"]

HF_ROUTER = "https://router.huggingface.co/hf-inference"
MAX_PROMPT_CHARS = 4000  # the images APIs take about this much (dall-e-3: 4,000; dall-e-2: 1,000)
MAX_SIDE = 4096  # the largest image (MAX_SIDE x MAX_SIDE pixels) a decoded answer may be
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_KEYLIKE = re.compile(r"\b(sk|hf|xi|sess)[-_][A-Za-z0-9*_\-]{6,}")


class MediaError(Exception):
    """A provider failed; the message is clear and safe to show (no key, no server path)."""


class Image(BaseModel):
    png: bytes
    model: str  # the model MODEL_PRICES prices it by ("image")
    provider: str


# --------------------------------------------------------------------------- shared helpers


def readable_bytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KB"


def too_large(provider: str, settings: Settings) -> MediaError:
    return MediaError(
        f"{provider} sent back more than MAX_MEDIA_BYTES ({readable_bytes(settings.max_media_bytes)}); "
        "the answer was refused"
    )


def safe(settings: Settings, text: str, limit: int = 300) -> str:
    """`text` (a provider's message) shortened, on one line, with every secret of the settings
    and anything that looks like a key taken out."""
    text = Redactor.of(settings).text(str(text))
    text = _KEYLIKE.sub("[redacted]", text)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "")


def status_error(settings: Settings, provider: str, status: int, detail: str = "") -> MediaError:
    """A provider's HTTP error status in words."""
    detail = safe(settings, detail)
    said = f": {detail}" if detail else ""
    if status in (401, 403):
        what = f"refused the credentials ({status}); check its key or token{said}"
    elif status == 429:
        what = f"is rate limiting us or the quota is used up (429){said}"
    elif status >= 500:
        what = f"failed ({status}){said}"
    else:
        what = f"refused the request ({status}){said}"
    return MediaError(f"{provider} {what}")


def error_detail(body: bytes) -> str:
    """The message of an error body (JSON with error/message/detail, or text)."""
    text = body[:4096].decode("utf-8", errors="replace")
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text.strip()[:300]
    for _ in range(3):
        if isinstance(data, dict):
            found = next((data[k] for k in ("error", "message", "detail", "errors") if k in data), None)
            if found is None:
                break
            data = found
        elif isinstance(data, list) and data:
            data = data[0]
        else:
            break
    return data if isinstance(data, str) else json.dumps(data)[:300]


def timed_out(settings: Settings, provider: str) -> MediaError:
    return MediaError(f"{provider} did not answer within {settings.media_timeout_s:g} s (MEDIA_TIMEOUT_S)")


def openai_failure(settings: Settings, provider: str, exc: openai.OpenAIError) -> MediaError:
    """An openai client's failure (after its retries) in words; a timeout names MEDIA_TIMEOUT_S."""
    from bot.llm.client import call_failure

    message, _ = call_failure(exc, provider, settings.media_timeout_s)
    if isinstance(exc, openai.APITimeoutError) and "did not answer within" in message:
        message += " (MEDIA_TIMEOUT_S)"
    return MediaError(safe(settings, message, 500))


@contextlib.asynccontextmanager
async def openai_media(
    settings: Settings, provider: str, client: object | None
) -> AsyncIterator[openai.AsyncOpenAI]:
    """The OpenAI client to call `provider` with (`client`, or one made for the call and closed
    after it), its failures turned into a clear MediaError: an answer over MAX_MEDIA_BYTES, or
    the client's error after its retries."""
    from bot.llm.client import ReplyTooLarge, make_openai

    own = client is None
    api: openai.AsyncOpenAI = make_openai(settings, media=True) if client is None else client  # type: ignore[assignment]
    try:
        yield api
    except ReplyTooLarge:
        raise too_large(provider, settings) from None
    except openai.OpenAIError as exc:
        raise openai_failure(settings, provider, exc) from None
    finally:
        if own:
            await api.close()


def connection_error(settings: Settings, provider: str, exc: BaseException) -> MediaError:
    """A failure to talk to a provider (timeout, refused connection, broken answer) in words."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return timed_out(settings, provider)
    if isinstance(exc, httpx.ConnectError):
        seen: BaseException | None = exc
        reason = safe(settings, str(exc), 120) or "connection failed"
        for _ in range(8):
            if seen is None:
                break
            if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
                reason = "connection refused"
                break
            seen = seen.__cause__ or seen.__context__
        return MediaError(f"cannot reach {provider}: {reason}")
    return MediaError(f"the connection to {provider} failed: {type(exc).__name__}")


async def http_fetch(
    settings: Settings,
    provider: str,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
    json_body: Any = None,
    auth: tuple[str, str] | None = None,
) -> tuple[bytes, str]:
    """(body, content type) of a request to a trusted, admin-configured URL, the body read up to
    MAX_MEDIA_BYTES (a larger one is refused), within MEDIA_TIMEOUT_S."""
    limit = settings.max_media_bytes
    try:
        async with (
            httpx.AsyncClient(
                timeout=httpx.Timeout(settings.media_timeout_s), follow_redirects=True
            ) as client,
            client.stream(method, url, headers=headers, params=params, json=json_body, auth=auth) as resp,
        ):
            if resp.status_code >= 400:
                body = b""
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > 4096:
                        break
                raise status_error(settings, provider, resp.status_code, error_detail(body))
            length = resp.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise too_large(provider, settings)
            data = bytearray()
            async for chunk in resp.aiter_bytes():
                data += chunk
                if len(data) > limit:
                    raise too_large(provider, settings)
            return bytes(data), resp.headers.get("content-type", "")
    except httpx.HTTPError as exc:
        raise connection_error(settings, provider, exc) from None


def png_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG, None when `data` is not one."""
    if len(data) < 24 or not data.startswith(_PNG_MAGIC) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return (width, height) if width > 0 and height > 0 else None


def _checked_png(data: bytes, provider: str, settings: Settings) -> bytes:
    if len(data) > settings.max_media_bytes:
        raise too_large(provider, settings)
    if png_size(data) is None:
        kind = "JPEG" if data.startswith(b"\xff\xd8") else "WebP" if data[8:12] == b"WEBP" else ""
        what = f"a {kind} image" if kind else "something that is not an image"
        raise MediaError(f"{provider} sent back {what} ({len(data):,} bytes) instead of a PNG image")
    return data


def _b64(text: str, provider: str, settings: Settings) -> bytes:
    if len(text) * 3 // 4 > settings.max_media_bytes:
        raise too_large(provider, settings)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise MediaError(f"{provider} sent back an image that is not valid base64") from None


# --------------------------------------------------------------------------- settings


def image_off(settings: Settings) -> str | None:
    """Why generate_image is off with these settings (None: it is on)."""
    provider = settings.image_provider
    if provider == "dalle" and not settings.llm_configured():
        return "IMAGE_PROVIDER=dalle needs the OpenAI service configured (OPENAI_API_KEY or OPENAI_BASE_URL)"
    if (
        provider == "huggingface"
        and settings.huggingface_api_token is None
        and not settings.huggingface_api_url
    ):
        return "IMAGE_PROVIDER=huggingface needs HUGGINGFACE_API_TOKEN (or HUGGINGFACE_API_URL of a server)"
    if provider == "sdwebui" and not settings.sd_webui_url.startswith(("http://", "https://")):
        return "IMAGE_PROVIDER=sdwebui needs SD_WEBUI_URL (http:// or https://)"
    return None


def snap_size(settings: Settings, size: int) -> int:
    """The square size the provider will make for a request of `size` pixels."""
    size = max(64, min(int(size), 2048))
    if settings.image_provider == "dalle":
        model = settings.image_model.lower()
        if model == "dall-e-2":
            return min((256, 512, 1024), key=lambda s: (abs(s - size), s))
        if model == "dall-e-3" or model.startswith("gpt-image"):
            return 1024  # their only square size (the others are 1792 or 1536 wide or tall)
        return size
    return max(64, size // 8 * 8)  # diffusion models work in multiples of 8


def hf_model_url(settings: Settings, model: str) -> str:
    base = (settings.huggingface_api_url or HF_ROUTER).rstrip("/")
    return f"{base}/models/{model}"


def hf_token(settings: Settings) -> str | None:
    return settings.huggingface_api_token.get_secret_value() if settings.huggingface_api_token else None


# --------------------------------------------------------------------------- generation


async def generate(settings: Settings, prompt: str, size: int, client: object | None = None) -> Image:
    """An image of `prompt`, `snap_size(settings, size)` pixels square, made by IMAGE_PROVIDER.
    `client`: an openai.AsyncOpenAI for dalle (made with make_openai(settings, media=True) and
    closed after when None)."""
    if reason := image_off(settings):
        raise MediaError(f"Image generation is off: {reason}")
    prompt = prompt.strip()[:MAX_PROMPT_CHARS]
    if not prompt:
        raise MediaError("the prompt is empty")
    side = snap_size(settings, size)
    if settings.image_provider == "dalle":
        return await _dalle(settings, prompt, side, client)
    if settings.image_provider == "huggingface":
        return await _huggingface(settings, prompt, side)
    return await _sdwebui(settings, prompt, side)


async def _dalle(settings: Settings, prompt: str, side: int, client: object | None) -> Image:
    provider = f"OpenAI images API ({settings.image_model})"
    extra: dict[str, Any] = {}
    if not settings.image_model.lower().startswith("gpt-image"):
        extra["response_format"] = "b64_json"  # gpt-image models always answer base64, and refuse it
    async with openai_media(settings, provider, client) as api:
        result = await api.images.generate(
            model=settings.image_model,
            prompt=prompt,
            size=f"{side}x{side}",
            n=1,
            timeout=settings.media_timeout_s,  # the client's own is LLM_TIMEOUT
            **extra,
        )
    data = result.data or []
    if not data:
        raise MediaError(f"{provider} sent back no image")
    first = data[0]
    if first.b64_json:
        png = _b64(first.b64_json, provider, settings)
    elif first.url:
        # fetching it would be a request to a third party's host: refused rather than guarded
        raise MediaError(
            f"{provider} sent back a link instead of the image (it ignores response_format=b64_json)"
        )
    else:
        raise MediaError(f"{provider} sent back no image")
    return Image(png=_checked_png(png, provider, settings), model=settings.image_model, provider="dalle")


async def _huggingface(settings: Settings, prompt: str, side: int) -> Image:
    from PIL.Image import DecompressionBombError, UnidentifiedImageError

    model = settings.huggingface_image_model
    provider = f"Hugging Face ({model})"
    try:
        async with hf_inference(settings) as client:
            picture = await hf_call(
                settings,
                provider,
                client.text_to_image(prompt, model=hf_model_url(settings, model), width=side, height=side),
            )
    except UnidentifiedImageError:
        raise MediaError(f"{provider} sent back something that is not an image") from None
    except DecompressionBombError:
        raise MediaError(f"{provider} sent back an image larger than {MAX_SIDE}x{MAX_SIDE} pixels") from None
    png = await asyncio.to_thread(_png_of, picture, provider, settings)
    return Image(png=_checked_png(png, provider, settings), model=model, provider="huggingface")


_PNG_MODES = {"1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"}


def _png_of(picture: Picture, provider: str, settings: Settings) -> bytes:
    """A decoded image (PNG, JPEG, WebP...) as PNG bytes; one over MAX_SIDE x MAX_SIDE pixels is
    refused before its pixels are read."""
    original = picture
    try:
        width, height = picture.size
        if width * height > MAX_SIDE * MAX_SIDE:
            raise MediaError(
                f"{provider} sent back an image of {width}x{height} pixels, more than {MAX_SIDE}x{MAX_SIDE}"
            )
        if picture.mode not in _PNG_MODES:
            alpha = picture.mode.endswith("A") or "transparency" in picture.info
            picture = picture.convert("RGBA" if alpha else "RGB")
        out = io.BytesIO()
        picture.save(out, format="PNG")
        return out.getvalue()
    except (OSError, SyntaxError, ValueError, EOFError):
        raise MediaError(f"{provider} sent back an image that could not be read") from None
    finally:
        if picture is not original:
            picture.close()
        original.close()


# --------------------------------------------------------------------------- Hugging Face client

# huggingface_hub makes each AsyncInferenceClient's httpx client with the factory its public
# set_async_client_factory installs (process-wide). The one installed here caps the answers while
# `hf_inference` is active (in that task only, through this context variable); any other
# huggingface_hub caller in the process gets a client like huggingface_hub's default (redirects
# followed, no client timeout, HF_HUB_OFFLINE honoured, small error bodies read), minus its
# request-id header and debug log.
_HF_LIMIT: contextvars.ContextVar[int | None] = contextvars.ContextVar("hf_media_limit", default=None)
_hf_factory_installed = False


def _hf_client_factory() -> httpx.AsyncClient:
    limit = _HF_LIMIT.get()
    if limit is not None:
        return httpx.AsyncClient(
            transport=_CappedTransport(limit),
            event_hooks={"response": [_read_error_body]},
            follow_redirects=True,
            timeout=None,  # each call passes the client's own (MEDIA_TIMEOUT_S)
        )
    return httpx.AsyncClient(
        event_hooks={"request": [_offline_check], "response": [_read_error_body]},
        follow_redirects=True,
        timeout=None,
    )


async def _offline_check(request: httpx.Request) -> None:
    from huggingface_hub import constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    if constants.is_offline_mode():
        raise OfflineModeIsEnabled(f"Cannot reach {request.url}: offline mode is enabled (HF_HUB_OFFLINE)")


async def _read_error_body(response: httpx.Response) -> None:
    """An error's body read (when small), for its message, as huggingface_hub's default does."""
    if response.status_code >= 400:
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) < 1_000_000:
            await response.aread()


@contextlib.asynccontextmanager
async def hf_inference(settings: Settings) -> AsyncIterator[AsyncInferenceClient]:
    """huggingface_hub's AsyncInferenceClient (HUGGINGFACE_API_TOKEN, MEDIA_TIMEOUT_S) whose answers
    are read only up to MAX_MEDIA_BYTES (a larger one raises `_TooLarge`, which `hf_call` reports)."""
    global _hf_factory_installed
    from huggingface_hub import AsyncInferenceClient, set_async_client_factory

    if not _hf_factory_installed:
        set_async_client_factory(_hf_client_factory)
        _hf_factory_installed = True
    token = _HF_LIMIT.set(settings.max_media_bytes)
    try:
        async with AsyncInferenceClient(token=hf_token(settings), timeout=settings.media_timeout_s) as client:
            yield client
    finally:
        _HF_LIMIT.reset(token)


class _TooLarge(httpx.HTTPError):
    def __init__(self) -> None:
        super().__init__("the answer is larger than MAX_MEDIA_BYTES")


class _CappedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> Any:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._limit:
                raise _TooLarge()
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedTransport(httpx.AsyncBaseTransport):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            await response.aclose()
            raise _TooLarge()
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _CappedStream(response.stream, self.limit)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def hf_call(settings: Settings, provider: str, call: Any) -> Any:
    """Await a huggingface_hub call; its failures as MediaError."""
    from huggingface_hub.errors import HfHubHTTPError, InferenceTimeoutError

    try:
        return await call
    except _TooLarge:
        raise too_large(provider, settings) from None
    except HfHubHTTPError as exc:
        response = exc.response
        detail = ""
        try:
            detail = error_detail(response.content)
        except (httpx.HTTPError, RuntimeError):
            pass
        raise status_error(settings, provider, response.status_code, detail) from None
    except InferenceTimeoutError:
        raise timed_out(settings, provider) from None
    except httpx.HTTPError as exc:
        if isinstance(exc.__cause__ or exc.__context__, _TooLarge):
            raise too_large(provider, settings) from None
        raise connection_error(settings, provider, exc) from None
    except (ValueError, KeyError, TypeError) as exc:  # an answer of the wrong shape
        raise MediaError(
            f"{provider} sent back an answer that could not be read: {type(exc).__name__}"
        ) from None


async def _sdwebui(settings: Settings, prompt: str, side: int) -> Image:
    provider = "the Stable Diffusion WebUI"
    auth: tuple[str, str] | None = None
    if settings.sd_webui_auth is not None:
        user, _, password = settings.sd_webui_auth.get_secret_value().partition(":")
        auth = (user, password)
    body, _ = await http_fetch(
        settings,
        provider,
        "POST",
        settings.sd_webui_url.rstrip("/") + "/sdapi/v1/txt2img",
        json_body={
            "prompt": prompt,
            "width": side,
            "height": side,
            "steps": 20,
            "batch_size": 1,
            "n_iter": 1,
        },
        auth=auth,
    )
    try:
        images = json.loads(body).get("images")
        first = images[0]
        assert isinstance(first, str)
    except (ValueError, AttributeError, TypeError, IndexError, AssertionError):
        raise MediaError(f"{provider} sent back an answer without an image") from None
    if first.startswith("data:") and "," in first:
        first = first.split(",", 1)[1]
    png = _b64(first, provider, settings)
    return Image(png=_checked_png(png, provider, settings), model="sdwebui", provider="sdwebui")
