"""Workspace file tools with AutoGPT's names and arguments. Each session has its own workspace
under DATA_DIR/workspaces/<session id>/; a path that leaves it is refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel, Field

from bot.tools.base import ToolContext, ToolError, ToolRegistry

READ_LIMIT = 1_000_000
LIST_LIMIT = 500


class FileArgs(BaseModel):
    filename: str = Field(min_length=1)


class WriteArgs(FileArgs):
    text: str


class DirArgs(BaseModel):
    directory: str = "."


def workspace_of(data_dir: Path, session_id: str) -> Path:
    return data_dir / "workspaces" / session_id


def safe_path(workspace: Path, name: str) -> Path:
    """Resolve `name` inside `workspace`; refuse anything that leaves it (.., absolute, symlinks)."""
    root = workspace.resolve()
    candidate = (root / name.strip()).resolve()
    if candidate != root and root not in candidate.parents:
        raise ToolError(f"Access denied: '{name}' is outside the workspace. Use paths relative to it.")
    return candidate


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


def register(registry: ToolRegistry) -> None:
    @registry.tool("write_to_file", "Write to file", WriteArgs)
    async def write_to_file(ctx: ToolContext, args: WriteArgs) -> str:
        path = safe_path(ctx.workspace, args.filename)
        await asyncio.to_thread(_write, path, args.text, "w")
        return f"File {args.filename} written to successfully ({len(args.text)} characters)."

    @registry.tool("append_to_file", "Append to file", WriteArgs)
    async def append_to_file(ctx: ToolContext, args: WriteArgs) -> str:
        path = safe_path(ctx.workspace, args.filename)
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
                if p.is_file():
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
