"""Files in and out of chat, platform-neutral.

In: a file a session's owner (or an admin) attached to its goal or posted in its thread. The
adapter describes it (`Incoming`: name, type, size and how to read it, at most so many bytes);
`receive` saves it in the session's workspace under `uploads/` within MAX_FILE_BYTES and
WORKSPACE_QUOTA_MB, transcribes audio (AUDIO_TO_TEXT_PROVIDER, charged to the session), marks
images for the model's eyes (SMART_LLM_VISION), and records it in the session's inbox (one
atomic store update): the agent is told of it in its next cycle (`bot.llm.prompts`).

Out: `listing` lists a workspace for `files ID`; `one_file` reads one for `file ID NAME`.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from bot.models import Shared, Usage
from bot.settings import Settings
from bot.tools.base import ToolError
from bot.tools.files import STEP_FILES, readable, safe_path, workspace_bytes

UPLOADS = "uploads"
MAX_LISTED = 100
MAX_TRANSCRIPT_CHARS = 8_000
MAX_INBOX = 20  # files waiting for the agent; more are refused until it has seen them
AUDIO_EXT = frozenset({"wav", "mp3", "m4a", "ogg", "oga", "opus", "webm", "flac", "mp4", "mpeg", "mpga"})
IMAGE_EXT = frozenset({"png", "jpg", "jpeg", "gif", "webp"})


class IncomingError(Exception):
    """A shared file could not be read from the platform; the message is for the user."""


Reader = Callable[[int], Awaitable[bytes]]


@dataclass
class Incoming:
    """A file a user shared, as the adapter knows it. `read(limit)` returns its bytes, or raises
    IncomingError (also when it is larger than `limit`); `size` is what the platform says (None:
    unknown until read)."""

    name: str
    mime: str
    size: int | None
    read: Reader


@dataclass
class Saved:
    shared: Shared | None  # None: not saved (see `problem`)
    problem: str | None = None
    usage: Usage | None = None


def clean_name(name: str) -> str:
    """A file name safe in a workspace: no folders, no control characters, not hidden."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip().lstrip(".")
    base = re.sub(r"[^\w.\- ()+,@]", "_", base)
    return base[:120] or "file"


def kind_of(name: str, mime: str) -> str:
    """'audio', 'image' or 'other', by the type the platform gave or else the extension."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    mime = (mime or "").lower()
    if mime.startswith("audio/") or (ext in AUDIO_EXT and not mime.startswith(("image/", "text/"))):
        return "audio"
    if mime.startswith("image/") or ext in IMAGE_EXT:
        return "image"
    return "other"


def mime_of(name: str, given: str | None = None) -> str:
    if given and "/" in given:
        return given
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


def free_name(workspace: Path, name: str) -> str:
    """`uploads/<name>`, or `uploads/<stem>-2.<ext>`... when taken."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    candidate = f"{UPLOADS}/{name}"
    n = 2
    while (workspace / candidate).exists():
        candidate = f"{UPLOADS}/{stem}-{n}{dot}{ext}"
        n += 1
    return candidate


async def save(
    settings: Settings,
    workspace: Path,
    incoming: Incoming,
    by: str,
    transcribe: Callable[[bytes, str], Awaitable[tuple[str, Usage]]] | None,
) -> Saved:
    """Save one shared file in `workspace` within the limits; transcribe it when it is audio.
    Never raises: what went wrong is `problem`, in words for the user."""
    name = clean_name(incoming.name)
    limit = settings.max_file_bytes
    if incoming.size is not None and incoming.size > limit:
        return Saved(
            None,
            f"{name} was not taken: it is {readable(incoming.size)}, more than the "
            f"{readable(limit)} a file may have (MAX_FILE_BYTES).",
        )
    quota = settings.workspace_quota_mb * 1024 * 1024
    used = await asyncio.to_thread(workspace_bytes, workspace)
    if used + (incoming.size or 0) > quota:
        return Saved(None, f"{name} was not taken: the session's workspace is full (WORKSPACE_QUOTA_MB).")
    try:
        data = await incoming.read(limit)
    except IncomingError as exc:
        return Saved(None, f"{name} could not be fetched: {exc}")
    if len(data) > limit:
        return Saved(None, f"{name} was not taken: it is larger than {readable(limit)} (MAX_FILE_BYTES).")
    if used + len(data) > quota:
        return Saved(None, f"{name} was not taken: the session's workspace is full (WORKSPACE_QUOTA_MB).")
    path_name = await asyncio.to_thread(_write_new, workspace, name, data)
    mime = mime_of(name, incoming.mime)
    kind = kind_of(name, mime)
    shared = Shared(name=path_name, mime=mime, size=len(data), by=by, image=kind == "image")
    usage: Usage | None = None
    if kind == "audio" and transcribe is not None:
        try:
            text, usage = await transcribe(data, name)
        except ToolError as exc:
            return Saved(shared, f"{path_name} was saved, but not transcribed: {exc}")
        if len(text) > MAX_TRANSCRIPT_CHARS:
            text = text[:MAX_TRANSCRIPT_CHARS] + f" [... {len(text):,} characters in all]"
        shared.transcript = text
    return Saved(shared, usage=usage)


def _write_new(workspace: Path, name: str, data: bytes) -> str:
    (workspace / UPLOADS).mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        rel = free_name(workspace, name)
        try:
            with (workspace / rel).open("xb") as fh:  # never over a file that appeared meanwhile
                fh.write(data)
            return rel
        except FileExistsError:
            continue
    raise OSError("no free file name")


def describe_shared(items: list[Shared]) -> str:
    """The note the agent reads about files shared since its last cycle."""
    lines = ["The user shared these files with you; they are in your workspace:"]
    for item in items:
        line = f"- {item.name} ({item.mime}, {readable(item.size)})"
        if item.image:
            line += ", an image"
        if item.transcript is not None:
            line += f". What it says (transcribed): {item.transcript}"
        lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------------- out


def listing(workspace: Path) -> list[tuple[str, int]]:
    """The files of a workspace (its engine files under .autogpt/ last), path and size."""
    if not workspace.is_dir():
        return []
    found: list[tuple[str, int]] = []
    for root, dirs, names in os.walk(workspace):
        dirs.sort()
        for name in sorted(names):
            path = Path(root) / name
            try:
                size = os.lstat(path).st_size
            except OSError:
                continue
            found.append((str(path.relative_to(workspace)), size))
    found.sort(key=lambda f: (f[0].startswith(f"{STEP_FILES}/"), f[0]))
    return found


def listing_text(session_id: str, files: list[tuple[str, int]]) -> str:
    if not files:
        return f"Session {session_id} has no files yet."
    total = sum(size for _, size in files)
    lines = [f"Files of session {session_id} ({len(files)}, {readable(total)}):"]
    lines += [f"{name}  {readable(size)}" for name, size in files[:MAX_LISTED]]
    if len(files) > MAX_LISTED:
        lines.append(f"... and {len(files) - MAX_LISTED} more")
    lines.append(f"Get one in the thread with: file {session_id} NAME")
    return "\n".join(lines)


def one_file(workspace: Path, name: str, limit: int) -> tuple[str, bytes]:
    """A workspace file's path (relative) and bytes, for `file ID NAME`; ToolError when it is
    not there, not a file, outside the workspace or larger than `limit`."""
    path = safe_path(workspace, name)
    if not path.is_file():
        raise ToolError(f"No file '{name}' in the session's workspace (see: files ID).")
    size = path.stat().st_size
    if size > limit:
        raise ToolError(f"{name} is {readable(size)}, more than the {readable(limit)} that can be uploaded.")
    return str(path.relative_to(workspace.resolve())), path.read_bytes()


MAX_VISION_BYTES = 4 * 1024 * 1024


def data_url(workspace: Path, item: Shared) -> str | None:
    """An image of the workspace as a data: URL for the model (None: gone, or too large)."""
    import base64

    try:
        path = safe_path(workspace, item.name)
        if path.stat().st_size > MAX_VISION_BYTES:
            return None
        data = path.read_bytes()
    except (OSError, ToolError):
        return None
    return f"data:{item.mime};base64,{base64.b64encode(data).decode('ascii')}"
