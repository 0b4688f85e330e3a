"""SANDBOX=none: the command runs on the bot's machine, as the bot's user, in its workspace, with
a clean environment and the same rlimits and wall clock as in a sandbox, but nothing else
between it and what the bot can reach. It must be chosen explicitly; the bot warns at start-up."""

from __future__ import annotations

import os
import sys
from typing import ClassVar

from bot.sandbox.base import RunRequest, RunResult, Sandbox, prlimit_args, run_process


class DirectSandbox(Sandbox):
    name: ClassVar[str] = "none"
    label: ClassVar[str] = "no sandbox (SANDBOX=none)"

    def __init__(self) -> None:
        self.python = os.path.realpath(sys._base_executable)  # type: ignore[attr-defined]
        self.workdir = "."

    async def run(self, request: RunRequest) -> RunResult:
        workspace = request.workspace.resolve()
        env = {**request.env, "HOME": str(workspace)}
        # RLIMIT_NPROC counts every process of the user: for root it does nothing, for another
        # user it would count the bot's own threads too
        argv = [*prlimit_args(request.limits, processes=False), *request.argv]
        return await run_process(argv, request, self.name, cwd=workspace, env=env)
