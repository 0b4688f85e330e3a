"""Speech both ways: text to speech (TEXT_TO_SPEECH_PROVIDER) and audio to text
(AUDIO_TO_TEXT_PROVIDER).

Text to speech: espeak (espeak-ng, local: a WAV, free), streamelements (GET
{STREAMELEMENTS_URL}/kappa/v2/speech: an MP3), elevenlabs (the elevenlabs package at ELEVENLABS_URL,
priced as model "elevenlabs"), openai (the speech API of the configured OpenAI server, priced by
OPENAI_TTS_MODEL), gtts (Google Translate's voice through gTTS, whose URL is Google's own) and macos
(`say`, where it exists). Text longer than MAX_SPEECH_CHARS is cut, with a note.

Audio to text: openai (the transcriptions API of the configured OpenAI, Azure or compatible
server, e.g. a local Whisper server) or huggingface (the Inference API, like images). The minutes a
transcript is priced by come from the WAV header for a WAV file; otherwise from the duration the
provider reports (OpenAI's `usage.seconds`); otherwise they are estimated from the file's size at
128 kbit/s (a typical MP3 or M4A bit rate; a low-bit-rate file is under-estimated).

Every provider has MEDIA_TIMEOUT_S to answer (gTTS, which asks once per group of sentences, twice
that in all).
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import struct
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bot.media.images import (
    MediaError,
    connection_error,
    hf_call,
    hf_inference,
    hf_model_url,
    http_fetch,
    openai_media,
    safe,
    status_error,
    too_large,
)
from bot.settings import Settings

__all__ = [
    "MAX_SPEECH_CHARS",
    "Audio",
    "MediaError",
    "Transcript",
    "audio_minutes",
    "speak_file",
    "speech_off",
    "synthesize",
    "transcribe",
    "transcription_off",
    "wav_seconds",
]

MAX_SPEECH_CHARS = 4000
CUT_NOTE = " (the rest is cut)"
_OPENAI = "the OpenAI service configured (OPENAI_API_KEY or OPENAI_BASE_URL)"
ESTIMATE_BYTES_PER_MINUTE = 128_000 // 8 * 60  # 128 kbit/s


class Audio(BaseModel):
    data: bytes
    mime: str  # audio/mpeg, audio/wav, ...
    ext: str  # mp3, wav, ...
    model: str  # priced per "1k_chars" in MODEL_PRICES ("" when free, e.g. espeak)
    chars: int  # characters spoken


class Transcript(BaseModel):
    text: str
    model: str  # priced per "minute" in MODEL_PRICES
    minutes: float


# --------------------------------------------------------------------------- settings


def speech_off(settings: Settings) -> str | None:
    """Why text to speech does not work with these settings (None: it does)."""
    provider = settings.text_to_speech_provider
    if provider == "espeak" and shutil.which("espeak-ng") is None:
        return (
            "espeak-ng is not installed (TEXT_TO_SPEECH_PROVIDER=espeak); install it or pick another provider"
        )
    if provider == "elevenlabs" and settings.elevenlabs_api_key is None:
        return "TEXT_TO_SPEECH_PROVIDER=elevenlabs needs ELEVENLABS_API_KEY"
    if provider == "openai" and not settings.llm_configured():
        return f"TEXT_TO_SPEECH_PROVIDER=openai needs {_OPENAI}"
    if provider == "macos" and shutil.which("say") is None:
        return "TEXT_TO_SPEECH_PROVIDER=macos needs macOS's `say`, which is not here"
    if provider == "streamelements" and not settings.streamelements_url.startswith(("http://", "https://")):
        return "TEXT_TO_SPEECH_PROVIDER=streamelements needs STREAMELEMENTS_URL (http:// or https://)"
    return None


def transcription_off(settings: Settings) -> str | None:
    """Why read_audio_from_file is off with these settings (None: it is on)."""
    provider = settings.audio_to_text_provider
    if provider == "openai" and not settings.llm_configured():
        return f"AUDIO_TO_TEXT_PROVIDER=openai needs {_OPENAI}"
    if (
        provider == "huggingface"
        and settings.huggingface_api_token is None
        and not settings.huggingface_api_url
    ):
        return "AUDIO_TO_TEXT_PROVIDER=huggingface needs HUGGINGFACE_API_TOKEN (or HUGGINGFACE_API_URL)"
    return None


# --------------------------------------------------------------------------- durations


def wav_seconds(data: bytes) -> float | None:
    """The duration of a WAV (RIFF, PCM or any format with a byte rate), None when `data` is not
    one. The data chunk's size is taken from what is there when the header's is a placeholder
    (espeak-ng --stdout writes 0xFFFFFFFF)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk == b"fmt " and size >= 16 and body + 16 <= len(data):
            byte_rate = struct.unpack("<I", data[body + 8 : body + 12])[0]
        elif chunk == b"data":
            if byte_rate <= 0:
                return None
            return min(size, len(data) - body) / byte_rate
        pos = body + size + (size & 1)
    return None


def audio_minutes(data: bytes, reported_seconds: float | None = None) -> float:
    """Minutes of audio for pricing: the WAV header's, else the provider's, else by size."""
    seconds = wav_seconds(data)
    if seconds is None and reported_seconds is not None and reported_seconds >= 0:
        seconds = reported_seconds
    if seconds is None:
        return len(data) / ESTIMATE_BYTES_PER_MINUTE
    return seconds / 60


# --------------------------------------------------------------------------- text to speech


def _cut(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_SPEECH_CHARS:
        text = text[: MAX_SPEECH_CHARS - len(CUT_NOTE)].rstrip() + CUT_NOTE
    return text


async def synthesize(settings: Settings, text: str, client: object | None = None) -> Audio:
    """`text` spoken by TEXT_TO_SPEECH_PROVIDER (cut to MAX_SPEECH_CHARS, with a note). `client`:
    an openai.AsyncOpenAI for openai (made with make_openai(settings, media=True) and closed after
    when None)."""
    if reason := speech_off(settings):
        raise MediaError(f"Text to speech is off: {reason}")
    text = _cut(text)
    if not text:
        raise MediaError("there is no text to speak")
    provider = settings.text_to_speech_provider
    if provider == "espeak":
        return await _espeak(settings, text)
    if provider == "streamelements":
        return await _streamelements(settings, text)
    if provider == "elevenlabs":
        return await _elevenlabs(settings, text)
    if provider == "openai":
        return await _openai_speech(settings, text, client)
    if provider == "gtts":
        return await _gtts(settings, text)
    return await _macos(settings, text)


speak_file = synthesize  # the name the chat's --speak may use


def _speech_env() -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "HOME": tempfile.gettempdir(),
    }


async def _run(settings: Settings, provider: str, argv: list[str], stdin: bytes) -> bytes:
    """Run a local speech program (clean environment, MEDIA_TIMEOUT_S); its stdout, capped."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=_speech_env(),
        )
    except OSError as exc:
        raise MediaError(f"{provider} could not be started: {exc.strerror or type(exc).__name__}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout=settings.media_timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise MediaError(
            f"{provider} did not finish within {settings.media_timeout_s:g} s (MEDIA_TIMEOUT_S)"
        ) from None
    if proc.returncode != 0:
        detail = safe(settings, err.decode("utf-8", errors="replace"), 200)
        raise MediaError(f"{provider} failed (exit code {proc.returncode}){': ' + detail if detail else ''}")
    if len(out) > settings.max_media_bytes:
        raise too_large(provider, settings)
    return out


async def _espeak(settings: Settings, text: str) -> Audio:
    provider = f"espeak-ng (voice {settings.espeak_voice})"
    argv = ["espeak-ng", "-v", settings.espeak_voice, "--stdout"]
    data = await _run(settings, provider, argv, text.encode("utf-8"))
    if wav_seconds(data) is None:
        raise MediaError(f"{provider} made no sound (is the voice {settings.espeak_voice!r} installed?)")
    return Audio(data=_fixed_wav(data), mime="audio/wav", ext="wav", model="", chars=len(text))


def _fixed_wav(data: bytes) -> bytes:
    """A WAV whose RIFF and data sizes are the real ones (a piped espeak-ng leaves placeholders)."""
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        if chunk == b"data":
            real = len(data) - pos - 8
            if size != real:
                data = (
                    data[:4]
                    + struct.pack("<I", len(data) - 8)
                    + data[8 : pos + 4]
                    + struct.pack("<I", real)
                    + data[pos + 8 :]
                )
            return data
        pos += 8 + size + (size & 1)
    return data


async def _macos(settings: Settings, text: str) -> Audio:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "speech.aiff"
        await _run(settings, "macOS say", ["say", "-o", str(out), "-f", "-"], text.encode("utf-8"))
        data = out.read_bytes() if out.is_file() else b""
    if not data:
        raise MediaError("macOS say made no sound")
    if len(data) > settings.max_media_bytes:
        raise too_large("macOS say", settings)
    return Audio(data=data, mime="audio/aiff", ext="aiff", model="", chars=len(text))


def _mp3(data: bytes, content_type: str, provider: str) -> bytes:
    if not data:
        raise MediaError(f"{provider} sent back no audio")
    if content_type and not content_type.startswith(("audio/", "application/octet-stream", "binary/")):
        raise MediaError(f"{provider} sent back {content_type.split(';')[0]} instead of audio")
    return data


async def _streamelements(settings: Settings, text: str) -> Audio:
    provider = f"StreamElements (voice {settings.streamelements_voice})"
    data, kind = await http_fetch(
        settings,
        provider,
        "GET",
        settings.streamelements_url.rstrip("/") + "/kappa/v2/speech",
        params={"voice": settings.streamelements_voice, "text": text},
    )
    return Audio(data=_mp3(data, kind, provider), mime="audio/mpeg", ext="mp3", model="", chars=len(text))


async def _elevenlabs(settings: Settings, text: str) -> Audio:
    import httpx
    from elevenlabs.client import AsyncElevenLabs
    from elevenlabs.core.api_error import ApiError

    provider = "ElevenLabs"
    key = settings.elevenlabs_api_key.get_secret_value() if settings.elevenlabs_api_key else ""
    limit = settings.max_media_bytes
    async with httpx.AsyncClient(timeout=settings.media_timeout_s, follow_redirects=True) as http:
        client = AsyncElevenLabs(
            api_key=key,
            base_url=settings.elevenlabs_url.rstrip("/"),
            timeout=settings.media_timeout_s,
            httpx_client=http,
        )
        data = bytearray()
        try:
            async for chunk in client.text_to_speech.convert(
                settings.elevenlabs_voice_id,
                text=text,
                output_format="mp3_44100_128",
                request_options={
                    "max_retries": settings.llm_max_retries,
                    "timeout_in_seconds": math.ceil(settings.media_timeout_s),
                },
            ):
                data += chunk
                if len(data) > limit:
                    raise too_large(provider, settings)
        except ApiError as exc:
            body = exc.body
            detail = body if isinstance(body, str) else ""
            if isinstance(body, dict):
                inner = body.get("detail", body)
                detail = str(inner.get("message", inner) if isinstance(inner, dict) else inner)
            raise status_error(settings, provider, exc.status_code or 500, detail) from None
        except httpx.HTTPError as exc:
            raise connection_error(settings, provider, exc) from None
    return Audio(
        data=_mp3(bytes(data), "", provider),
        mime="audio/mpeg",
        ext="mp3",
        model="elevenlabs",
        chars=len(text),
    )


async def _openai_speech(settings: Settings, text: str, client: object | None) -> Audio:
    provider = f"OpenAI speech API ({settings.openai_tts_model})"
    async with openai_media(settings, provider, client) as api:
        response = await api.audio.speech.create(
            model=settings.openai_tts_model,
            voice=settings.openai_tts_voice,
            input=text,
            response_format="mp3",
            timeout=settings.media_timeout_s,  # the client's own is LLM_TIMEOUT
        )
        data = await response.aread()
    if len(data) > settings.max_media_bytes:
        raise too_large(provider, settings)
    kind = response.response.headers.get("content-type", "")
    return Audio(
        data=_mp3(data, kind, provider),
        mime="audio/mpeg",
        ext="mp3",
        model=settings.openai_tts_model,
        chars=len(text),
    )


async def _gtts(settings: Settings, text: str) -> Audio:
    """gTTS speaks through translate.google.<GTTS_TLD>; it needs the internet, and its URL cannot
    be set, so a bot without it gets the clear error."""
    import io

    from gtts import gTTS
    from gtts.tts import gTTSError

    provider = f"Google Translate's voice (gTTS, translate.google.{settings.gtts_tld})"

    def speak() -> bytes:
        buffer = io.BytesIO()
        gTTS(text, tld=settings.gtts_tld, timeout=settings.media_timeout_s).write_to_fp(buffer)
        return buffer.getvalue()

    limit = settings.media_timeout_s * 2  # gTTS asks once per sentence group, each within MEDIA_TIMEOUT_S
    try:
        data = await asyncio.wait_for(asyncio.to_thread(speak), timeout=limit)
    except TimeoutError:
        raise MediaError(f"{provider} did not answer within {limit:g} s (twice MEDIA_TIMEOUT_S)") from None
    except gTTSError as exc:
        raise MediaError(f"{provider} failed: {safe(settings, str(exc), 200)}") from None
    except (OSError, ValueError, AssertionError) as exc:
        raise MediaError(
            f"{provider} failed: {safe(settings, str(exc), 200) or type(exc).__name__}"
        ) from None
    if len(data) > settings.max_media_bytes:
        raise too_large(provider, settings)
    return Audio(data=_mp3(data, "", provider), mime="audio/mpeg", ext="mp3", model="", chars=len(text))


# --------------------------------------------------------------------------- audio to text


async def transcribe(
    settings: Settings, data: bytes, filename: str, client: object | None = None
) -> Transcript:
    """The text spoken in `data` (an audio file named `filename`), by AUDIO_TO_TEXT_PROVIDER.
    `client`: an openai.AsyncOpenAI for openai (made and closed after when None)."""
    if reason := transcription_off(settings):
        raise MediaError(f"Audio to text is off: {reason}")
    if not data:
        raise MediaError(f"{filename} is empty")
    if len(data) > settings.max_media_bytes:
        raise MediaError(f"{filename} is larger than MAX_MEDIA_BYTES; send a shorter recording")
    if settings.audio_to_text_provider == "openai":
        return await _openai_transcribe(settings, data, filename, client)
    return await _hf_transcribe(settings, data)


async def _openai_transcribe(
    settings: Settings, data: bytes, filename: str, client: object | None
) -> Transcript:
    model = settings.openai_transcription_model
    provider = f"OpenAI transcriptions API ({model})"
    async with openai_media(settings, provider, client) as api:
        result = await api.audio.transcriptions.create(
            model=model,
            file=(Path(filename).name, data),
            timeout=settings.media_timeout_s,  # the client's own is LLM_TIMEOUT
        )
    text = getattr(result, "text", None)
    if not isinstance(text, str):
        raise MediaError(f"{provider} sent back no transcript")
    usage: Any = getattr(result, "usage", None)
    seconds = getattr(usage, "seconds", None) if getattr(usage, "type", "") == "duration" else None
    return Transcript(text=text.strip(), model=model, minutes=audio_minutes(data, seconds))


async def _hf_transcribe(settings: Settings, data: bytes) -> Transcript:
    model = settings.huggingface_audio_to_text_model
    provider = f"Hugging Face ({model})"
    async with hf_inference(settings) as client:
        result = await hf_call(
            settings, provider, client.automatic_speech_recognition(data, model=hf_model_url(settings, model))
        )
    text = getattr(result, "text", None)
    if not isinstance(text, str):
        raise MediaError(f"{provider} sent back no transcript")
    return Transcript(text=text.strip(), model=model, minutes=audio_minutes(data))
