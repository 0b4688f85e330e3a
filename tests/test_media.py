"""Images and speech both ways: each provider end to end against its local fake through its real
client (openai, huggingface_hub, elevenlabs, httpx, espeak-ng), the tools through the registry with
a real ToolContext, a whole agent cycle through the core, every failure's message (clear, naming
the provider, no secret) and the reasons a provider is off."""

from __future__ import annotations

import base64
import io
import os
import shutil
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.core import Core
from bot.decisions import Decision
from bot.grammar import GoalCommand
from bot.llm.client import make_openai
from bot.media import images, speech
from bot.media.images import MediaError, png_size
from bot.models import Actor, Place, Session, SessionState, StepStatus
from bot.presenter.views import ResultView
from bot.settings import Settings
from bot.tools import default_registry
from bot.tools.base import ToolContext, ToolError, ToolOutput
from bot.tools.files import workspace_of
from tests.conftest import make_settings, started_core
from tests.fakes.llm_server import Body, Delay, Error, Huge, ScriptedLLM, agent_reply, png_bytes
from tests.fakes.media_api import FakeMedia
from tests.fakes.server import Failure

KEY = "sk-test-secret"
HF_TOKEN = "hf_fakeSecretToken123"
SD_AUTH = "painter:sd-secret-pw"
XI_KEY = "xi-fake-secret-key-42"
SECRETS = (KEY, HF_TOKEN, "sd-secret-pw", XI_KEY)
HUGE = 20 * 1024 * 1024  # a 20 MB answer, twice MAX_MEDIA_BYTES
FREE_CHAT = {
    m: (0.0, 0.0) for m in ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small", "text-embedding-ada-002")
}


@pytest.fixture(scope="module")
def media_server() -> Iterator[FakeMedia]:
    with FakeMedia(hf_token=HF_TOKEN, sd_auth=SD_AUTH, elevenlabs_key=XI_KEY) as fake:
        yield fake


@pytest.fixture
def media(media_server: FakeMedia) -> Iterator[FakeMedia]:
    media_server.failures.clear()
    media_server.requests.clear()
    media_server._queues.clear()
    yield media_server


def conf(tmp_path: Path, llm: ScriptedLLM, media: FakeMedia | None = None, **over: Any) -> Settings:
    values: dict[str, Any] = {"llm_max_retries": 0, "llm_timeout": 2.0, "media_timeout_s": 2.0}
    if media is not None:
        values.update(
            huggingface_api_url=media.origin,
            huggingface_api_token=HF_TOKEN,
            sd_webui_url=media.origin,
            sd_webui_auth=SD_AUTH,
            streamelements_url=media.origin,
            elevenlabs_url=media.origin,
            elevenlabs_api_key=XI_KEY,
        )
    values.update(over)
    return make_settings(tmp_path, llm, **values)


def wav(seconds: float, rate: int = 8000) -> bytes:
    """A WAV of silence: 8-bit mono PCM."""
    frames = bytes([128]) * int(seconds * rate)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(frames))
        + b"WAVE"
        + b"fmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(frames))
        + frames
    )


def png_header(width: int, height: int) -> bytes:
    """The start of a PNG that says it is `width` x `height` pixels (no pixels follow)."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = b"IDAT" + zlib.compress(b"\x00")
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", 13)
        + ihdr
        + struct.pack(">I", zlib.crc32(ihdr))
        + struct.pack(">I", len(idat) - 4)
        + idat
        + struct.pack(">I", zlib.crc32(idat))
    )


def no_secret(text: str) -> str:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked: {text}"
    assert "Traceback" not in text and "/tmp/" not in text and "site-packages" not in text
    return text


async def media_error(call: Any) -> str:
    with pytest.raises(MediaError) as caught:
        await call
    return no_secret(str(caught.value))


# --------------------------------------------------------------------------- dalle


async def test_dalle_sizes_models_and_what_was_sent(tmp_path: Path, llm: ScriptedLLM) -> None:
    s2 = conf(tmp_path, llm, image_model="dall-e-2")
    made = await images.generate(s2, "a red fox", 600)
    assert made.provider == "dalle" and made.model == "dall-e-2" and png_size(made.png) == (512, 512)
    body = llm.last("images")
    assert (
        body["size"] == "512x512" and body["response_format"] == "b64_json" and body["prompt"] == "a red fox"
    )
    assert body["model"] == "dall-e-2" and body["n"] == 1
    assert llm.last_headers["Authorization"] == f"Bearer {KEY}"

    s3 = conf(tmp_path, llm)  # dall-e-3: its one square size
    assert png_size((await images.generate(s3, "fox", 800)).png) == (1024, 1024)
    assert llm.last("images")["size"] == "1024x1024"

    gpt = conf(tmp_path, llm, image_model="gpt-image-1")  # base64 always, response_format refused
    assert (await images.generate(gpt, "fox", 1024)).model == "gpt-image-1"
    assert "response_format" not in llm.last("images")


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Error(401, f"Incorrect API key provided: {KEY}"), "refused the request (401)"),
        (Error(429, "Rate limit reached"), "rate limiting us (429)"),
        (Error(500, "boom"), "failed (500)"),
        (Delay(5.0), "did not answer within 0.5 s"),
        (Huge(HUGE), "more than MAX_MEDIA_BYTES (10.0 MB)"),
        ({"data": [{"b64_json": base64.b64encode(b"<html>no</html>").decode()}]}, "not an image"),
        ({"data": [{"url": "https://x.example/a.png"}]}, "a link instead of the image"),
        ({"data": [{"b64_json": "%%%"}]}, "not valid base64"),
    ],
)
async def test_dalle_failures_are_clear(tmp_path: Path, llm: ScriptedLLM, reply: Any, expected: str) -> None:
    llm.script("images", reply)
    message = await media_error(images.generate(conf(tmp_path, llm, media_timeout_s=0.5), "fox", 1024))
    assert "OpenAI images API (dall-e-3)" in message and expected in message


async def test_dalle_unreachable(tmp_path: Path, llm: ScriptedLLM) -> None:
    closed = conf(tmp_path, llm, openai_base_url="http://127.0.0.1:9/v1")
    message = await media_error(images.generate(closed, "fox", 1024))
    assert "cannot reach the OpenAI images API" in message


# --------------------------------------------------------------------------- huggingface, sdwebui


async def test_huggingface_image(tmp_path: Path, llm: ScriptedLLM, media: FakeMedia) -> None:
    s = conf(tmp_path, llm, media, image_provider="huggingface", huggingface_image_model="org/diffuse-1")
    made = await images.generate(s, "a lighthouse", 300)
    assert made.provider == "huggingface" and made.model == "org/diffuse-1"
    assert png_size(made.png) == (296, 296)  # a multiple of 8
    assert media.of("hf-image") == [
        {"model": "org/diffuse-1", "inputs": "a lighthouse", "width": 296, "height": 296}
    ]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Failure("hf-image", 401, message="Invalid token"), "refused the credentials (401)"),
        (Failure("hf-image", 429, message="Too many requests"), "rate limiting us"),
        (Failure("hf-image", 503, message="Model is loading"), "failed (503): Model is loading"),
        (Huge(HUGE), "more than MAX_MEDIA_BYTES"),
        (Huge(HUGE, chunked=True), "more than MAX_MEDIA_BYTES"),  # no Content-Length: cut off reading
        (Delay(3.0), "did not answer within 0.5 s (MEDIA_TIMEOUT_S)"),
        (Body(b"<html>oops</html>", content_type="image/png"), "not an image"),
        (Body(png_bytes(64, 64)[:60], content_type="image/png"), "an image that could not be read"),
        (Body(png_header(5000, 5000), content_type="image/png"), "5000x5000 pixels, more than 4096x4096"),
    ],
)
async def test_huggingface_image_failures(
    tmp_path: Path, llm: ScriptedLLM, media: FakeMedia, failure: Any, expected: str
) -> None:
    if isinstance(failure, Failure):
        media.failures.add(failure)
    else:
        media.script("hf-image", failure)
    s = conf(tmp_path, llm, media, image_provider="huggingface", media_timeout_s=0.5)
    message = await media_error(images.generate(s, "x", 512))
    assert "Hugging Face (stabilityai/stable-diffusion-xl-base-1.0)" in message and expected in message


async def test_huggingface_image_not_png_is_made_one(
    tmp_path: Path, llm: ScriptedLLM, media: FakeMedia
) -> None:
    from PIL import Image as Pil

    jpeg = io.BytesIO()
    Pil.new("RGB", (320, 200), (10, 200, 30)).save(jpeg, format="JPEG")
    media.script("hf-image", Body(jpeg.getvalue(), content_type="image/jpeg"))
    s = conf(tmp_path, llm, media, image_provider="huggingface")
    made = await images.generate(s, "a meadow", 512)
    assert png_size(made.png) == (320, 200)  # the size the model made, as a PNG
    with Pil.open(io.BytesIO(made.png)) as back:
        assert back.format == "PNG" and back.getpixel((5, 5)) == pytest.approx((10, 200, 30), abs=4)


async def test_huggingface_wrong_token(tmp_path: Path, llm: ScriptedLLM, media: FakeMedia) -> None:
    s = conf(tmp_path, llm, media, image_provider="huggingface", huggingface_api_token="hf_wrongTokenValue99")
    message = await media_error(images.generate(s, "x", 512))
    assert "refused the credentials (401)" in message and "hf_wrongTokenValue99" not in message


async def test_sdwebui(tmp_path: Path, llm: ScriptedLLM, media: FakeMedia) -> None:
    s = conf(tmp_path, llm, media, image_provider="sdwebui")
    made = await images.generate(s, "a castle", 512)
    assert made.provider == "sdwebui" and png_size(made.png) == (512, 512)
    sent = media.of("sdwebui")[0]
    assert sent["prompt"] == "a castle" and sent["width"] == sent["height"] == 512

    wrong = conf(tmp_path, llm, media, image_provider="sdwebui", sd_webui_auth="painter:nope")
    assert "refused the credentials (401); check its key or token: Not authenticated" in await media_error(
        images.generate(wrong, "x", 512)
    )
    media.script("sdwebui", Huge(HUGE))
    assert "more than MAX_MEDIA_BYTES" in await media_error(images.generate(s, "x", 512))
    media.script("sdwebui", Body(b'{"images": ["aGVsbG8="]}'))
    assert "not an image" in await media_error(images.generate(s, "x", 512))
    media.failures.add(Failure("sdwebui", 500, message="CUDA out of memory"))
    assert "Stable Diffusion WebUI failed (500): CUDA out of memory" in await media_error(
        images.generate(s, "x", 512)
    )
    down = conf(tmp_path, llm, image_provider="sdwebui", sd_webui_url="http://127.0.0.1:9")
    assert "cannot reach the Stable Diffusion WebUI: connection refused" in await media_error(
        images.generate(down, "x", 512)
    )


# --------------------------------------------------------------------------- MEDIA_TIMEOUT_S


@pytest.mark.parametrize("provider", ["dalle", "huggingface", "sdwebui", "transcription"])
async def test_media_timeout_s_not_llm_timeout(
    tmp_path: Path, llm: ScriptedLLM, media: FakeMedia, provider: str
) -> None:
    """MEDIA_TIMEOUT_S bounds a media call, LLM_TIMEOUT does not: also through the openai client
    make_openai(media=True) makes, whose own timeout is LLM_TIMEOUT."""

    async def call(s: Settings) -> object:
        if provider == "transcription":
            api = make_openai(s, media=True)
            try:
                return await speech.transcribe(s, wav(0.5), "a.wav", api)
            finally:
                await api.close()
        api = make_openai(s, media=True) if provider == "dalle" else None
        try:
            return await images.generate(s, "fox", 512, api)
        finally:
            if api is not None:
                await api.close()

    def slow(seconds: float) -> None:
        if provider in ("dalle", "transcription"):
            llm.script("images" if provider == "dalle" else "transcription", Delay(seconds))
        else:
            media.script("hf-image" if provider == "huggingface" else provider, Delay(seconds))

    image = provider if provider != "transcription" else "dalle"
    short = conf(tmp_path, llm, media, image_provider=image, llm_timeout=30.0, media_timeout_s=0.5)
    slow(5.0)
    started = time.monotonic()
    message = await media_error(call(short))
    assert "within 0.5 s" in message and "(MEDIA_TIMEOUT_S)" in message and "LLM_TIMEOUT" not in message
    assert time.monotonic() - started < 4.0

    long = conf(tmp_path, llm, media, image_provider=image, llm_timeout=0.3, media_timeout_s=5.0)
    slow(1.0)
    assert await call(long)  # slower than LLM_TIMEOUT, within MEDIA_TIMEOUT_S


# --------------------------------------------------------------------------- audio to text


async def test_openai_transcription(tmp_path: Path, llm: ScriptedLLM) -> None:
    s = conf(tmp_path, llm, openai_transcription_model="gpt-4o-mini-transcribe")
    heard = await speech.transcribe(s, wav(3.0), "talk.wav")
    assert heard.text == f"heard talk.wav ({len(wav(3.0))} bytes)" and heard.model == "gpt-4o-mini-transcribe"
    assert heard.minutes == pytest.approx(0.05)  # from the WAV header
    sent = llm.last("transcription")
    assert sent["model"] == "gpt-4o-mini-transcribe" and sent["filename"] == "talk.wav"
    # not a WAV: the provider's duration, else estimated by size
    llm.script("transcription", {"text": "hi", "usage": {"type": "duration", "seconds": 90}})
    assert (await speech.transcribe(s, b"ID3" + bytes(1000), "a.mp3")).minutes == pytest.approx(1.5)
    estimated = await speech.transcribe(s, b"ID3" + bytes(960_000 - 3), "b.mp3")
    assert estimated.minutes == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (Error(401, f"Incorrect API key provided: {KEY}"), "refused the request (401)"),
        (Error(429, "quota"), "rate limiting us (429)"),
        (Error(500, "boom"), "failed (500)"),
        (Delay(5.0), "did not answer within 0.5 s"),
        (Huge(HUGE), "more than MAX_MEDIA_BYTES"),
    ],
)
async def test_openai_transcription_failures(
    tmp_path: Path, llm: ScriptedLLM, reply: Any, expected: str
) -> None:
    llm.script("transcription", reply)
    message = await media_error(
        speech.transcribe(conf(tmp_path, llm, media_timeout_s=0.5), wav(0.5), "a.wav")
    )
    assert "OpenAI transcriptions API (whisper-1)" in message and expected in message


async def test_huggingface_transcription(tmp_path: Path, llm: ScriptedLLM, media: FakeMedia) -> None:
    s = conf(
        tmp_path, llm, media, audio_to_text_provider="huggingface", huggingface_audio_to_text_model="org/asr"
    )
    heard = await speech.transcribe(s, wav(6.0), "x.wav")
    assert (
        heard.text == "hello from the fake"
        and heard.model == "org/asr"
        and heard.minutes == pytest.approx(0.1)
    )
    assert media.of("hf-asr")[0]["model"] == "org/asr" and media.of("hf-asr")[0]["head"] == b"RIFF"
    media.failures.add(Failure("hf-asr", 429, message="slow down"))
    assert "Hugging Face (org/asr) is rate limiting us" in await media_error(
        speech.transcribe(s, wav(1), "x.wav")
    )


# --------------------------------------------------------------------------- text to speech


async def test_espeak(tmp_path: Path, llm: ScriptedLLM) -> None:
    if shutil.which("espeak-ng") is None and not os.environ.get("CI"):
        pytest.skip("espeak-ng is not installed here (CI installs it)")
    said = await speech.synthesize(conf(tmp_path, llm, espeak_voice="en-us"), "Hello there, this is a test.")
    assert said.mime == "audio/wav" and said.ext == "wav" and said.model == ""
    seconds = speech.wav_seconds(said.data)
    assert seconds is not None and 0.5 < seconds < 10
    assert struct.unpack("<I", said.data[4:8])[0] == len(said.data) - 8  # sizes fixed after a pipe
    other = await speech.synthesize(conf(tmp_path, llm, espeak_voice="fr"), "Hello there, this is a test.")
    assert other.data != said.data  # ESPEAK_VOICE is the voice used


async def test_streamelements(tmp_path: Path, llm: ScriptedLLM, media: FakeMedia) -> None:
    s = conf(tmp_path, llm, media, text_to_speech_provider="streamelements", streamelements_voice="Amy")
    said = await speech.synthesize(s, "good  morning")
    assert said.mime == "audio/mpeg" and said.data.startswith(b"ID3") and said.chars == len("good morning")
    assert media.of("streamelements") == [{"voice": "Amy", "text": "good morning"}]
    media.failures.add(Failure("streamelements", 500, message="upstream down"))
    assert "StreamElements (voice Amy) failed (500)" in await media_error(speech.synthesize(s, "x"))
    media.script("streamelements", Body(b"<html></html>", content_type="text/html"))
    assert "text/html instead of audio" in await media_error(speech.synthesize(s, "x"))


async def test_elevenlabs(tmp_path: Path, llm: ScriptedLLM, media: FakeMedia) -> None:
    s = conf(tmp_path, llm, media, text_to_speech_provider="elevenlabs", elevenlabs_voice_id="voice123")
    said = await speech.synthesize(s, "hello")
    assert said.model == "elevenlabs" and said.ext == "mp3" and said.data.startswith(b"ID3")
    assert (
        media.of("elevenlabs")[0]["voice_id"] == "voice123" and media.of("elevenlabs")[0]["text"] == "hello"
    )
    wrong = conf(
        tmp_path, llm, media, text_to_speech_provider="elevenlabs", elevenlabs_api_key="xi-wrong-key-0000"
    )
    message = await media_error(speech.synthesize(wrong, "hello"))
    assert (
        "ElevenLabs refused the credentials (401); check its key or token: Invalid API key" in message
        and "xi-wrong" not in message
    )
    media.script("elevenlabs", Huge(HUGE))
    assert "ElevenLabs sent back more than MAX_MEDIA_BYTES" in await media_error(speech.synthesize(s, "x"))
    media.failures.add(Failure("elevenlabs", 429, message="quota"))
    assert "ElevenLabs is rate limiting us" in await media_error(speech.synthesize(s, "x"))


async def test_openai_speech_and_long_text(tmp_path: Path, llm: ScriptedLLM) -> None:
    s = conf(
        tmp_path, llm, text_to_speech_provider="openai", openai_tts_model="tts-1-hd", openai_tts_voice="nova"
    )
    said = await speech.synthesize(s, "word " * 3000)
    sent = llm.last("speech")
    assert sent["model"] == "tts-1-hd" and sent["voice"] == "nova"
    assert len(sent["input"]) == speech.MAX_SPEECH_CHARS and sent["input"].endswith(speech.CUT_NOTE)
    assert said.model == "tts-1-hd" and said.chars == speech.MAX_SPEECH_CHARS and said.mime == "audio/mpeg"
    llm.script("speech", Huge(HUGE))
    assert "OpenAI speech API (tts-1-hd) sent back more than" in await media_error(speech.synthesize(s, "x"))
    llm.fail_media("speech", 401, message=f"Incorrect API key provided: {KEY}")
    assert "refused the request (401)" in await media_error(speech.synthesize(s, "x"))


async def test_gtts_unreachable_is_clear(tmp_path: Path, llm: ScriptedLLM) -> None:
    # gTTS's URL is Google's and cannot be set: a domain that never resolves stands for no internet
    s = conf(tmp_path, llm, text_to_speech_provider="gtts", gtts_tld="invalid", media_timeout_s=1.0)
    message = await media_error(speech.synthesize(s, "hello"))
    assert "gTTS, translate.google.invalid" in message


# --------------------------------------------------------------------------- off reasons


def test_off_reasons(tmp_path: Path, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    bare = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert "IMAGE_PROVIDER=dalle needs" in (images.image_off(bare) or "")
    assert images.image_off(conf(tmp_path, llm)) is None
    hf = bare.model_copy(update={"image_provider": "huggingface"})
    assert images.image_off(hf) == (
        "IMAGE_PROVIDER=huggingface needs HUGGINGFACE_API_TOKEN (or HUGGINGFACE_API_URL of a server)"
    )
    assert images.image_off(bare.model_copy(update={"image_provider": "sdwebui"})) is None
    assert "AUDIO_TO_TEXT_PROVIDER=openai needs" in (speech.transcription_off(bare) or "")
    assert "HUGGINGFACE_API_TOKEN" in (
        speech.transcription_off(bare.model_copy(update={"audio_to_text_provider": "huggingface"})) or ""
    )
    tts = {
        p: bare.model_copy(update={"text_to_speech_provider": p}) for p in ("elevenlabs", "openai", "gtts")
    }
    assert (
        speech.speech_off(tts["elevenlabs"]) == "TEXT_TO_SPEECH_PROVIDER=elevenlabs needs ELEVENLABS_API_KEY"
    )
    assert "TEXT_TO_SPEECH_PROVIDER=openai needs" in (speech.speech_off(tts["openai"]) or "")
    assert speech.speech_off(tts["gtts"]) is None
    monkeypatch.setenv("PATH", str(tmp_path))  # neither espeak-ng nor say
    assert speech.speech_off(bare) == (
        "espeak-ng is not installed (TEXT_TO_SPEECH_PROVIDER=espeak); install it or pick another provider"
    )
    macos = bare.model_copy(update={"text_to_speech_provider": "macos"})
    assert "needs macOS's `say`" in (speech.speech_off(macos) or "")
    registry = default_registry()
    offered = {t.name for t in registry.available(bare)}
    assert "generate_image" not in offered and "read_audio_from_file" not in offered
    assert {"generate_image", "read_audio_from_file"} <= {
        t.name for t in registry.available(conf(tmp_path, llm))
    }


# --------------------------------------------------------------------------- the tools


def context(settings: Settings, step_no: int = 3, budget: float | None = None) -> ToolContext:
    session = Session(id="media", owner="U1", place=Place(platform="test", channel="C1"), goals=["x"])
    if budget is not None:
        session.budget_usd = budget
    workspace = workspace_of(settings.data_dir, session.id)
    workspace.mkdir(parents=True, exist_ok=True)
    return ToolContext(session=session, settings=settings, workspace=workspace, step_no=step_no)


async def run(ctx: ToolContext, tool: str, **args: Any) -> str | ToolOutput:
    found = default_registry().get(tool, ctx.settings)
    assert found is not None
    return await found.run(ctx, found.validate(args))


async def test_generate_image_tool(tmp_path: Path, llm: ScriptedLLM) -> None:
    ctx = context(conf(tmp_path, llm, image_model="dall-e-2"))
    out = await run(ctx, "generate_image", prompt="A Red Fox, at dawn!", size="600x600")
    assert isinstance(out, ToolOutput) and out.ok
    assert out.text == (
        "Saved the image as images/a-red-fox-at-dawn-3.png (512x512, dall-e-2; asked for 600, "
        "dall-e-2 makes 512x512)"
    )
    saved = ctx.workspace / "images" / "a-red-fox-at-dawn-3.png"
    assert png_size(saved.read_bytes()) == (512, 512)
    [file] = out.files
    assert (
        file.name == "images/a-red-fox-at-dawn-3.png"
        and file.mime == "image/png"
        and file.content == saved.read_bytes()
    )
    assert ctx.usage.cost_usd == pytest.approx(0.02) and ctx.usage.calls == 1
    again = await run(
        ctx, "generate_image", prompt="A Red Fox, at dawn!"
    )  # no size: IMAGE_SIZE; no collision
    assert isinstance(again, ToolOutput) and "images/a-red-fox-at-dawn-3-2.png (1024x1024" in again.text
    assert ctx.usage.cost_usd == pytest.approx(0.04)


async def test_image_tool_errors_budget_and_secrets(tmp_path: Path, llm: ScriptedLLM) -> None:
    ctx = context(conf(tmp_path, llm))
    llm.script("images", Error(401, f"Incorrect API key provided: {KEY}"))
    with pytest.raises(ToolError) as caught:
        await run(ctx, "generate_image", prompt="fox")
    assert no_secret(str(caught.value)).startswith(
        "Image not generated: the OpenAI images API (dall-e-3) refused"
    )
    assert ctx.usage.cost_usd == 0 and not (ctx.workspace / "images").exists()
    poor = context(conf(tmp_path, llm), budget=0.01)
    with pytest.raises(ToolError, match=r"would cost \$0.0400"):
        await run(poor, "generate_image", prompt="fox")
    assert llm.requests_of("images") == [llm.requests_of("images")[0]]  # refused before asking


async def test_read_audio_tool(tmp_path: Path, llm: ScriptedLLM) -> None:
    ctx = context(conf(tmp_path, llm))
    (ctx.workspace / "memo.wav").write_bytes(wav(6.0))
    out = await run(ctx, "read_audio_from_file", filename="memo.wav")
    assert out == f"Transcript of memo.wav (0.1 min): heard memo.wav ({len(wav(6.0))} bytes)"
    assert ctx.usage.cost_usd == pytest.approx(0.006 * 0.1)
    with pytest.raises(ToolError, match="No such file"):
        await run(ctx, "read_audio_from_file", filename="gone.wav")
    with pytest.raises(ToolError, match="outside the workspace"):
        await run(ctx, "read_audio_from_file", filename="../../secret.wav")
    (ctx.workspace / "notes.txt").write_text("hello")
    with pytest.raises(ToolError, match="does not look like an audio file"):
        await run(ctx, "read_audio_from_file", filename="notes.txt")
    llm.script("transcription", Error(429, "quota"))
    with pytest.raises(ToolError, match=r"Audio not transcribed: the OpenAI transcriptions API .* \(429\)"):
        await run(ctx, "read_audio_from_file", filename="memo.wav")


# --------------------------------------------------------------------------- a whole agent cycle


async def test_agent_cycle_makes_an_image_and_reads_audio(tmp_path: Path, llm: ScriptedLLM) -> None:
    settings = conf(tmp_path, llm, model_prices=FREE_CHAT, llm_max_retries=1, llm_timeout=5.0)
    llm.script(
        "execution_reply",
        agent_reply("generate_image", {"prompt": "a blue whale", "size": 1024}),
        agent_reply("read_audio_from_file", {"filename": "memo.wav"}),
        agent_reply("finish", {"reason": "done"}),
    )
    async with started_core(settings) as (core, chat):
        actor = Actor(platform="test", user_id="U1", name="user U1")
        outcome = await core.service.start(
            actor, Place(platform="test", channel="C1"), GoalCommand(goals=["draw"])
        )
        assert outcome.ok and outcome.session_id is not None
        sid = outcome.session_id
        await core.runner.idle(10)
        workspace = workspace_of(settings.data_dir, sid)

        assert (await chat.press(core.service, sid, 1, "approve", "U1")).ok
        await core.runner.idle(10)
        image = workspace / "images" / "a-blue-whale-1.png"
        assert png_size(image.read_bytes()) == (1024, 1024)
        session = await core.store.get(sid)
        assert session is not None and session.steps[0].status == StepStatus.DONE
        assert "Saved the image as images/a-blue-whale-1.png (1024x1024, dall-e-3" in (
            session.steps[0].result or ""
        )
        assert session.usage.cost_usd == pytest.approx(0.04)
        [result] = [r for r in chat.of(sid, "result") if isinstance(r, ResultView) and r.step_no == 1]
        assert [f.name for f in result.files] == ["images/a-blue-whale-1.png"]
        assert result.files[0].content == image.read_bytes()

        (workspace / "memo.wav").write_bytes(wav(30.0))
        assert (await chat.press(core.service, sid, 2, "approve", "U1")).ok
        await core.runner.idle(10)
        session = await core.store.get(sid)
        assert session is not None and session.steps[1].status == StepStatus.DONE
        assert (session.steps[1].result or "").startswith("Transcript of memo.wav (0.5 min): heard memo.wav")
        assert session.usage.cost_usd == pytest.approx(0.04 + 0.006 * 0.5)
        assert (await chat.press(core.service, sid, 3, "approve", "U1")).ok
        await core.runner.idle(10)
        session = await core.store.get(sid)
        assert session is not None and session.state == SessionState.FINISHED
    assert llm.last("images")["model"] == "dall-e-3" and llm.last("transcription")["filename"] == "memo.wav"
    _ = Decision, Core  # imported for type references in helpers
