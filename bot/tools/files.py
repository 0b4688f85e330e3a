"""Workspace file tools with AutoGPT's names and arguments. Each session has its own workspace
under DATA_DIR/workspaces/<session id>/; a path that leaves it is refused.

Writes are bounded: a file may not grow past MAX_FILE_BYTES, nor the workspace past
WORKSPACE_QUOTA_MB (`check_room`, for every tool that writes). The engine keeps a step's long
arguments and results whole in STEP_FILES, so the stored session stays small."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

from pydantic import BaseModel, Field

from bot.tools.base import ToolContext, ToolError, ToolRegistry

READ_LIMIT = 1_000_000
LIST_LIMIT = 500
STEP_FILES = ".autogpt"  # the engine's files in a workspace: long arguments and results of steps


class FileArgs(BaseModel):
    filename: str = Field(min_length=1)


class WriteArgs(FileArgs):
    text: str


class DirArgs(BaseModel):
    directory: str = "."


def workspace_of(data_dir: Path, session_id: str) -> Path:
    return data_dir / "workspaces" / session_id


def copy_workspace(data_dir: Path, source_id: str, target_id: str) -> int:
    """A session's workspace copied into another's (a fork): files and folders as they are now;
    links are copied as links, never followed out of it. Returns the files copied."""
    source, target = workspace_of(data_dir, source_id), workspace_of(data_dir, target_id)
    if not source.is_dir():
        return 0
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    return sum(len(files) for _, _, files in os.walk(target))


def safe_path(workspace: Path, name: str) -> Path:
    """Resolve `name` inside `workspace`; refuse anything that leaves it (.., absolute, symlinks)."""
    root = workspace.resolve()
    candidate = (root / name.strip()).resolve()
    if candidate != root and root not in candidate.parents:
        raise ToolError(f"Access denied: '{name}' is outside the workspace. Use paths relative to it.")
    return candidate


def workspace_bytes(workspace: Path) -> int:
    """Bytes the files of a workspace take (symbolic links not followed)."""
    total = 0
    for root, _dirs, names in os.walk(workspace):
        for name in names:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total


def readable(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1024 or unit == "MB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{size:,.1f} GB"  # pragma: no cover


def check_room(ctx: ToolContext, path: Path, new_size: int, replaces: bool = True) -> None:
    """Refuse (ToolError, which the agent reads) a write that would leave `path` larger than
    MAX_FILE_BYTES or the workspace larger than WORKSPACE_QUOTA_MB. `new_size` is the file's
    size after the write; `replaces`: the write replaces the file (else it grows it)."""
    limit = ctx.settings.max_file_bytes
    name = relative(path, ctx.workspace)
    if new_size > limit:
        raise ToolError(
            f"Not written: {name} would be {readable(new_size)}, more than the {readable(limit)} "
            "a file may have (MAX_FILE_BYTES). Write less, or split it over several files."
        )
    try:
        before = path.stat().st_size if path.is_file() else 0
    except OSError:
        before = 0
    quota = ctx.settings.workspace_quota_mb * 1024 * 1024
    used = workspace_bytes(ctx.workspace)
    after = used - before + new_size
    if after > quota:
        raise ToolError(
            f"Not written: the workspace would hold {readable(after)}, more than its quota of "
            f"{readable(quota)} (WORKSPACE_QUOTA_MB). Delete files you no longer need first."
        )


def relative(path: Path | str, workspace: Path) -> str:
    """`path` as the agent knows it: relative to the workspace."""
    try:
        rel = Path(path).resolve().relative_to(workspace.resolve())
    except (ValueError, OSError):
        return Path(path).name
    return str(rel) if str(rel) != "." else "."


def without_server_paths(text: str, workspace: Path) -> str:
    """`text` (an error message) with the workspace's absolute path taken out: users and the
    LLM see paths relative to the workspace, never where it lies on the server."""
    for root in {str(workspace.resolve()), str(workspace.absolute())}:
        if root in text:
            text = re.sub(re.escape(root) + r"/?", lambda m: "" if m.group(0).endswith("/") else ".", text)
    return text


def error_text(exc: BaseException, workspace: Path) -> str:
    """What went wrong in a tool, for the agent: an OS error by its reason and the file relative
    to the workspace; anything else by its type and message, server paths taken out."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {relative(exc.filename, workspace)}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return without_server_paths(f"{type(exc).__name__}: {exc}", workspace)


def keep_whole(workspace: Path, name: str, text: str) -> None:
    """Save a step's long arguments or result in the workspace (the engine's own file)."""
    path = workspace / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def keep_bytes(workspace: Path, name: str, data: bytes) -> None:
    """Save bytes the engine made (speech) in the workspace."""
    path = workspace / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _write(path: Path, text: str, mode: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open(mode, encoding="utf-8") as fh:
        fh.write(text)


def _read(path: Path) -> str:
    if not path.is_file():
        raise ToolError(f"No such file: {path.name}")
    with path.open("rb") as fh:
        data = fh.read(READ_LIMIT + 1)
    text = data[:READ_LIMIT].decode("utf-8", errors="replace")
    if len(data) > READ_LIMIT:
        text += f"\n[... file is longer than {READ_LIMIT} bytes; the rest is not shown]"
    return text


def file_path(ctx: ToolContext, name: str) -> Path:
    path = safe_path(ctx.workspace, name)
    if path == ctx.workspace.resolve() or path.is_dir():
        raise ToolError(f"'{name}' is a directory; give a file name.")
    return path


def register(registry: ToolRegistry) -> None:
    @registry.tool("write_to_file", "Write to file", WriteArgs)
    async def write_to_file(ctx: ToolContext, args: WriteArgs) -> str:
        path = file_path(ctx, args.filename)
        size = len(args.text.encode("utf-8"))
        await asyncio.to_thread(check_room, ctx, path, size)
        await asyncio.to_thread(_write, path, args.text, "w")
        return f"File {args.filename} written to successfully ({len(args.text)} characters)."

    @registry.tool("append_to_file", "Append to file", WriteArgs)
    async def append_to_file(ctx: ToolContext, args: WriteArgs) -> str:
        path = file_path(ctx, args.filename)
        before = path.stat().st_size if path.is_file() else 0
        await asyncio.to_thread(check_room, ctx, path, before + len(args.text.encode("utf-8")))
        await asyncio.to_thread(_write, path, args.text, "a")
        return f"Text appended to {args.filename} successfully."

    @registry.tool("read_file", "Read a file", FileArgs)
    async def read_file(ctx: ToolContext, args: FileArgs) -> str:
        return await asyncio.to_thread(_read, safe_path(ctx.workspace, args.filename))

    @registry.tool("list_files", "List files in a directory", DirArgs)
    async def list_files(ctx: ToolContext, args: DirArgs) -> str:
        base = safe_path(ctx.workspace, args.directory or ".")
        if not base.is_dir():
            return f"No such directory: {args.directory}" if base != ctx.workspace.resolve() else "(empty)"
        root = ctx.workspace.resolve()

        def listing() -> list[str]:
            found = []
            for p in sorted(base.rglob("*")):
                if p.is_file() and p.relative_to(root).parts[0] != STEP_FILES:
                    found.append(str(p.relative_to(root)))
                    if len(found) >= LIST_LIMIT:
                        found.append(f"[... more than {LIST_LIMIT} files]")
                        break
            return found

        files = await asyncio.to_thread(listing)
        return "\n".join(files) if files else "(no files)"

    @registry.tool("delete_file", "Delete file", FileArgs)
    async def delete_file(ctx: ToolContext, args: FileArgs) -> str:
        path = safe_path(ctx.workspace, args.filename)
        if not path.is_file():
            raise ToolError(f"No such file: {args.filename}")
        await asyncio.to_thread(path.unlink)
        return f"File {args.filename} deleted successfully."
