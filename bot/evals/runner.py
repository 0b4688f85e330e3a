"""Running challenges: each run is a fresh continuous session (its cycle cap and budget cap from
the challenge) on a fresh temporary DATA_DIR (SQLite store, local memory), on a core of its own
with the eval's in-process chat platform, against the LLM the settings configure. The outcome is
checked from the workspace and the session record (bot/evals/challenges.py).

What a run counts: cycles (the session's), LLM calls (chat completion requests this run's client
made, re-asks and failed ones included; embeddings are not calls here but their tokens and cost
are in the session's usage), tokens and cost (the session's usage, as the console's summary
shows it), wall time (from the start of the session to its end), replies repaired and re-asked
(the run's own LLM client counts them: CallStats.repairs and re_asks), invalid
commands (steps the engine marked invalid, with a note to the agent) and loop-guard pauses.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from bot.core import Core
from bot.decisions import Decision
from bot.evals.challenges import Challenge, Finished, select
from bot.evals.platform import EvalPlatform
from bot.evals.report import EXIT_CONFIG, EvalReport, ModelInfo, RunResult, summarise, table
from bot.evals.site import EvalSite
from bot.grammar import GoalCommand
from bot.models import Session, StepStatus
from bot.redact import mask_url
from bot.settings import Settings
from bot.store.base import OpenError, StoreError
from bot.tools import default_registry
from bot.tools.files import workspace_of

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 900.0  # wall time one run may take (a slow local model needs minutes)
NO_LLM = (
    "autogpt-bot eval: no LLM is configured. Set OPENAI_API_KEY (OpenAI) or OPENAI_BASE_URL (an "
    "OpenAI-compatible server such as vLLM, Ollama or llama.cpp's server), or USE_AZURE with "
    "AZURE_OPENAI_ENDPOINT, in .env or the environment."
)

Progress = Callable[[int, int, Challenge, int], None]


# ---------------------------------------------------------------------------- one run


def eval_settings(base: Settings, data_dir: Path, site: EvalSite, challenge: Challenge) -> Settings:
    """The settings of one run: the LLM and tool settings as configured; a fresh DATA_DIR with
    SQLite and local memory (MEMORY_BACKEND=no_memory is kept: a server without embeddings); the
    eval's site allowed to browse; no TOOL_POLICY, DISABLED_COMMANDS or user lists (every model
    sees the same commands); the challenge's caps and its own changes."""
    update: dict[str, Any] = {
        "data_dir": data_dir,
        "redis_url": None,
        "redis_sentinel": None,
        "redis_cluster": False,
        "archive_url": None,  # the runs are archived in their own DATA_DIR, not a shared archive
        "memory_backend": "no_memory" if base.memory_backend == "no_memory" else "local",
        "memory_scope": "session",
        "wipe_memory_on_start": False,
        "browse_allowed_hosts": [*base.browse_allowed_hosts, site.host],
        "allowed_user_ids": [],
        "tool_policy": {},
        "disabled_commands": [],
        "max_cycles": max(base.max_cycles, challenge.cycles),
        "session_budget_usd": challenge.budget_usd,
        "user_daily_budget_usd": max(base.user_daily_budget_usd, challenge.budget_usd),
    }
    if challenge.settings is not None:
        update.update(challenge.settings(base, site))
    return base.model_copy(update=update)


def tool_off(name: str, settings: Settings) -> str | None:
    """Why the command `name` is off with these settings (its `Tool.off`), None when it is on."""
    tool = next((t for t in default_registry().all() if t.name == name), None)
    if tool is None:
        return f"{name} is not a command of this version"
    return tool.off(settings)


def counted(result: RunResult, session: Session, core: Core) -> None:
    result.session_id = session.id
    result.state = session.state.value
    result.reason = session.reason
    result.cycles = session.cycles
    result.llm_calls = core.llm.stats.calls
    result.prompt_tokens = session.usage.prompt_tokens
    result.completion_tokens = session.usage.completion_tokens
    result.cost_usd = session.usage.cost_usd
    result.repairs = core.llm.stats.repairs  # this run's own client: its core is its own
    result.re_asks = core.llm.stats.re_asks
    result.invalid_commands = sum(1 for s in session.steps if s.status == StepStatus.INVALID)
    result.loop_guard_pauses = Finished(session, Path()).loop_guard_pauses


async def run_challenge(
    settings: Settings,
    challenge: Challenge,
    site: EvalSite,
    run: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> RunResult:
    """One run of `challenge`: a fresh session on a fresh DATA_DIR, checked once it has ended, or
    waits for a human (the eval has none: it is stopped there), or ran out of `timeout_s`."""
    result = RunResult(challenge=challenge.name, suite=challenge.suite, run=run, status="error")
    with tempfile.TemporaryDirectory(prefix="autogpt-eval-") as tmp:
        s = eval_settings(settings, Path(tmp), site, challenge)
        if challenge.tool is not None and (why := tool_off(challenge.tool, s)) is not None:
            result.status, result.reasons = "skipped", [f"{challenge.tool} is off: {why}"]
            return result
        try:
            core = await Core.start(s)
        except OpenError as exc:  # the memory or the archive: it says which
            result.reasons = [str(exc)]
            return result
        except StoreError as exc:
            result.reasons = [f"could not open the run's store: {exc}"]
            return result
        platform = EvalPlatform()
        core.add_platform(platform)
        actor = platform.actor()
        fetched_before = len(site.requests)
        started = time.monotonic()
        try:
            command = GoalCommand(
                goals=challenge.goals(site),
                continuous=True,
                continuous_limit=challenge.cycles,
                budget_usd=challenge.budget_usd,
            )
            outcome = await core.service.start(actor, platform.place(), command, autostart=False)
            if not outcome.ok or outcome.session_id is None:
                result.reasons = [f"the session did not start: {outcome.message}"]
                return result
            session_id = outcome.session_id
            workspace = workspace_of(s.data_dir, session_id)
            if challenge.seed is not None:
                await asyncio.to_thread(challenge.seed, workspace)
            timed_out = False
            try:
                session = await asyncio.wait_for(core.service.run_until_waiting(session_id), timeout_s)
            except TimeoutError:
                timed_out = True
                session = await core.service.session_of(session_id)
            session = session or await core.archive.get(session_id)
            result.seconds = time.monotonic() - started
            if session is None:
                result.reasons = ["the session was lost"]
                return result
            if not session.state.terminal:  # waiting for a human, or paused: nobody will come
                await core.service.decide(session_id, actor, Decision(action="stop"))
            counted(result, session, core)
            found = challenge.check(Finished(session, workspace, site.requests[fetched_before:]))
            reasons = list(found.reasons)
            if timed_out:
                reasons.append(f"the run took longer than {timeout_s:g} s")
            result.status = "passed" if found.passed and not timed_out else "failed"
            result.reasons = reasons
        except Exception as exc:  # the eval's own failure: said, and the next challenge runs
            log.exception("eval: %s failed to run", challenge.name)
            result.status, result.reasons = "error", [f"the run failed: {type(exc).__name__}: {exc}"]
        finally:
            result.seconds = result.seconds or time.monotonic() - started
            await core.close()
    return result


# ---------------------------------------------------------------------------- a whole eval


def model_info(settings: Settings) -> ModelInfo:
    if settings.use_azure:
        endpoint = (
            mask_url(settings.azure_openai_endpoint or "") + f" (Azure, {settings.azure_openai_deployment})"
        )
    else:
        endpoint = mask_url(settings.openai_base_url or "https://api.openai.com/v1")
    return ModelInfo(smart_llm=settings.smart_llm, fast_llm=settings.fast_llm, endpoint=endpoint)


async def run_eval(
    settings: Settings,
    challenges: Sequence[Challenge],
    *,
    suite: str = "basic",
    repeat: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: Progress | None = None,
) -> EvalReport:
    """Every challenge `repeat` times, in order (a skipped one once), with the eval's site up."""
    report = EvalReport(suite=suite, repeat=repeat, model=model_info(settings))
    runs: list[RunResult] = []
    total = len(challenges) * repeat
    done = 0
    async with EvalSite() as site:
        for challenge in challenges:
            for run in range(1, repeat + 1):
                if progress is not None:
                    progress(done, total, challenge, run)
                result = await run_challenge(settings, challenge, site, run, timeout_s)
                runs.append(result)
                done += 1
                if result.status == "skipped":
                    done += repeat - run
                    break
    order = [(c.name, c.suite, c.description) for c in challenges]
    return summarise(report, order, runs)


class Spinner:
    """The progress line on a terminal: which challenge runs, and how far the eval is."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.on = out.isatty()

    def __call__(self, done: int, total: int, challenge: Challenge, run: int) -> None:
        if not self.on:
            return
        of = f" run {run}" if run > 1 else ""
        self.out.write(f"\r\x1b[K[{done + 1}/{total}] {challenge.name}{of}: {challenge.description}...")
        self.out.flush()

    def clear(self) -> None:
        if self.on:
            self.out.write("\r\x1b[K")
            self.out.flush()


async def command(
    settings: Settings,
    *,
    suite: str = "basic",
    only: list[str] | None = None,
    repeat: int = 1,
    json_path: Path | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    out: TextIO | None = None,
) -> int:
    """`autogpt-bot eval`: run, print the table (and write the JSON report). Exit code 0 when every
    challenge that ran passed every run, 1 when any failed, 2 for a usage or configuration error."""
    out = out or sys.stdout
    if repeat < 1:
        print("autogpt-bot eval: --repeat must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    if timeout_s <= 0:
        print("autogpt-bot eval: --timeout must be more than 0 seconds", file=sys.stderr)
        return EXIT_CONFIG
    try:
        chosen = select(suite, only)
    except ValueError as exc:
        print(f"autogpt-bot eval: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if json_path is not None and not json_path.parent.is_dir():
        print(f"autogpt-bot eval: cannot write {json_path}: no folder {json_path.parent}", file=sys.stderr)
        return EXIT_CONFIG
    if not settings.llm_configured():
        print(NO_LLM, file=sys.stderr)
        return EXIT_CONFIG
    spinner = Spinner(out)
    try:
        report = await run_eval(
            settings,
            chosen,
            suite="custom" if only else suite,
            repeat=repeat,
            timeout_s=timeout_s,
            progress=spinner,
        )
    finally:
        spinner.clear()
    print(table(report), file=out)
    if json_path is not None:
        try:
            await asyncio.to_thread(json_path.write_text, report.model_dump_json(indent=2) + "\n", "utf-8")
        except OSError as exc:
            print(f"autogpt-bot eval: cannot write {json_path}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_CONFIG
        print(f"JSON report: {json_path}", file=out)
    return report.exit_code
