"""execute_shell, as AutoGPT had it: off unless EXECUTE_LOCAL_COMMANDS, run in the session's
workspace with a time limit and a clean environment (bot/tools/env.py: no key or token of the
bot), and declared as having effects outside the session (so it always waits for a human's
explicit approval unless ALLOW_OUTSIDE_EFFECTS_IN_CONTINUOUS).

DENIED is a courtesy, not a security boundary: `/bin/rm`, `bash -c 'rm ...'` or a script pass
it. The command runs as the bot's user on the bot's machine."""

from __future__ import annotations

import asyncio
import contextlib
import shlex

from pydantic import BaseModel, Field

from bot.tools.base import ToolContext, ToolError, ToolRegistry
from bot.tools.env import tool_env

TIMEOUT_S = 60.0
OUTPUT_LIMIT = 100_000
DENIED = frozenset({"sudo", "su", "rm", "shutdown", "reboot", "mkfs", "dd"})


class ShellArgs(BaseModel):
    command_line: str = Field(min_length=1)


def register(registry: ToolRegistry) -> None:
    @registry.tool(
        "execute_shell",
        "Execute Shell Command, non-interactive commands only",
        ShellArgs,
        outside_effects=True,
        enabled=lambda s: s.execute_local_commands,
    )
    async def execute_shell(ctx: ToolContext, args: ShellArgs) -> str:
        try:
            words = shlex.split(args.command_line)
        except ValueError as exc:
            raise ToolError(f"Cannot parse the command line: {exc}") from None
        if not words:
            raise ToolError("Empty command line.")
        if words[0] in DENIED:
            raise ToolError(f"'{words[0]}' is not allowed.")
        proc = await asyncio.create_subprocess_exec(
            *words,
            cwd=ctx.workspace,
            env=tool_env(ctx.settings, ctx.workspace.resolve()),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise ToolError(f"The command did not finish within {TIMEOUT_S:g} s and was killed.") from None
        text = out[:OUTPUT_LIMIT].decode("utf-8", errors="replace")
        return f"Exit code {proc.returncode}. Output:\n{text}"
