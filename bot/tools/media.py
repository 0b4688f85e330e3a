"""generate_image and read_audio_from_file (AutoGPT's commands), through bot/media.

generate_image saves a PNG in the workspace (images/<slug>-<step>.png, never over another file)
and shows it in chat; read_audio_from_file transcribes an audio file of the workspace. Each is
priced per unit (MODEL_PRICES: an image, a minute of audio), refused before the call when the
session's budget cannot pay, and charged to the session after it.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, field_validator

from bot.media import images, speech
from bot.media.images import MediaError
from bot.tools.base import OutFile, ToolContext, ToolError, ToolOutput, ToolRegistry
from bot.tools.files import check_room, readable, relative, safe_path

IMAGE_FOLDER = "images"
AUDIO_TYPES = {
    ".wav",
    ".mp3",
    ".m4a",
    ".mp4",
    ".mpeg",
    ".mpga",
    ".ogg",
    ".oga",
    ".webm",
    ".flac",
    ".aac",
    ".opus",
}


class ImageArgs(BaseModel):
    prompt: str = Field(min_length=1)
    size: int | None = None

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> Any:
        if isinstance(v, str):
            text = v.strip().lower()
            if not text:
                return None
            found = re.fullmatch(r"(\d+)\s*(?:x\s*(\d+))?(?:\s*px)?", text)
            if found is None:
                raise ValueError("give the size in pixels, e.g. 1024 (or 1024x1024)")
            return int(found.group(1))
        return v

    @field_validator("size")
    @classmethod
    def _range(cls, v: int | None) -> int | None:
        if v is not None and not 64 <= v <= 4096:
            raise ValueError("the size must be between 64 and 4096 pixels")
        return v


class AudioArgs(BaseModel):
    filename: str = Field(min_length=1)


def slug(text: str, limit: int = 40) -> str:
    words = re.findall(r"[a-z0-9]+", text.lower())
    out = ""
    for word in words:
        if len(out) + len(word) + 1 > limit:
            break
        out = f"{out}-{word}" if out else word
    return out or "image"


def _free_name(workspace: Path, stem: str) -> Path:
    folder = workspace / IMAGE_FOLDER
    path = folder / f"{stem}.png"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.png"
        n += 1
    return path


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("xb") as fh:  # never over a file that appeared meanwhile
        fh.write(data)


def _media_client(ctx: ToolContext) -> Any:
    return ctx.llm.media if ctx.llm is not None else None


def register(registry: ToolRegistry) -> None:
    @registry.tool(
        "generate_image",
        "Generate an image from a text prompt (saved as a PNG in the workspace); size in pixels, optional",
        ImageArgs,
        outside_effects=False,
        off=images.image_off,
        section="Image generation",
    )
    async def generate_image(ctx: ToolContext, args: ImageArgs) -> ToolOutput:
        settings = ctx.settings
        asked = args.size or settings.image_size
        side = images.snap_size(settings, asked)
        model = {"dalle": settings.image_model, "huggingface": settings.huggingface_image_model}.get(
            settings.image_provider, "sdwebui"
        )
        ctx.afford(model, "image", 1)
        # room for the image, checked before paying for it (its size not known yet: ~a quarter byte a pixel)
        target = _free_name(ctx.workspace, f"{slug(args.prompt)}-{ctx.step_no}")
        await asyncio.to_thread(check_room, ctx, target, min(side * side, settings.max_media_bytes) // 4)
        client = _media_client(ctx) if settings.image_provider == "dalle" else None
        try:
            made = await images.generate(settings, args.prompt, asked, client)
        except MediaError as exc:
            raise ToolError(f"Image not generated: {exc}") from None
        ctx.charge(made.model, "image", 1)
        target = _free_name(ctx.workspace, f"{slug(args.prompt)}-{ctx.step_no}")
        await asyncio.to_thread(check_room, ctx, target, len(made.png))
        await asyncio.to_thread(_save, target, made.png)
        name = relative(target, ctx.workspace)
        width, height = images.png_size(made.png) or (side, side)
        note = f"; asked for {asked}, {made.model} makes {width}x{height}" if asked != width else ""
        text = f"Saved the image as {name} ({width}x{height}, {made.model}{note})"
        return ToolOutput(
            text, files=[OutFile(name=name, content=made.png, comment=args.prompt[:200], mime="image/png")]
        )

    @registry.tool(
        "read_audio_from_file",
        "Convert an audio file of the workspace to text",
        AudioArgs,
        outside_effects=False,
        off=speech.transcription_off,
        section="Audio to text",
    )
    async def read_audio_from_file(ctx: ToolContext, args: AudioArgs) -> str:
        settings = ctx.settings
        path = safe_path(ctx.workspace, args.filename)
        name = relative(path, ctx.workspace)
        if not path.is_file():
            raise ToolError(f"No such file: {args.filename}")
        size = path.stat().st_size
        if size > settings.max_media_bytes:
            raise ToolError(
                f"{name} is {readable(size)}, more than the {readable(settings.max_media_bytes)} "
                "an audio file may have (MAX_MEDIA_BYTES)."
            )
        data = await asyncio.to_thread(path.read_bytes)
        if path.suffix.lower() not in AUDIO_TYPES and speech.wav_seconds(data) is None:
            raise ToolError(f"{name} does not look like an audio file ({', '.join(sorted(AUDIO_TYPES))}).")
        model = (
            settings.openai_transcription_model
            if settings.audio_to_text_provider == "openai"
            else settings.huggingface_audio_to_text_model
        )
        ctx.afford(model, "minute", speech.audio_minutes(data))
        client = _media_client(ctx) if settings.audio_to_text_provider == "openai" else None
        try:
            heard = await speech.transcribe(settings, data, path.name, client)
        except MediaError as exc:
            raise ToolError(f"Audio not transcribed: {exc}") from None
        ctx.charge(heard.model, "minute", heard.minutes)
        text = heard.text or "(no speech heard)"
        return f"Transcript of {name} ({heard.minutes:.1f} min): {text}"
