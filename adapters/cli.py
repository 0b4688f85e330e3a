"""The `autogpt-bot` command: the composition root. Chat adapters are found by their entry points
(group `autogpt_bot.adapters`, bot/adapter.py); the console is the default when none is set up.

autogpt-bot run            start every adapter that has credentials (the console when none has)
autogpt-bot console ...    one session in the terminal, like AutoGPT's CLI
autogpt-bot list           your console sessions; autogpt-bot stop ID ends one
autogpt-bot check-config   print the effective settings, secrets masked
autogpt-bot eval           measure the configured LLM on the evaluation challenges
autogpt-bot usage          sessions, tokens and spend by user, channel and model
autogpt-bot export         every decision, command run and spend, for an audit (CSV or JSON lines)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.console.exits import EXIT_CODES, EXIT_CONFIG, EXIT_INTERRUPTED
from bot import logs
from bot.settings import (
    BaseConfig,
    ConfigError,
    Settings,
    adapter_settings,
    env_file_used,
    load_settings,
    masked,
    unknown_key_warnings,
)

if TYPE_CHECKING:
    from adapters.console.app import ConsoleArgs
    from bot.adapter import ChatAdapter
    from bot.ops import OpsServer

# The console, the core and the adapters are imported where a command needs them: `--version`,
# `--help`, a configuration error and `list` do not pay for the LLM client and the chat SDKs.

log = logging.getLogger(__name__)

RUN_HELP = (
    "Start every chat adapter that has credentials (Slack: SLACK_BOT_TOKEN and SLACK_APP_TOKEN; "
    "Discord: DISCORD_BOT_TOKEN; in .env or the environment) on one core, with /healthz and "
    "/metrics on OPS_PORT, until stopped (Ctrl-C or SIGTERM; sessions are saved). With no chat "
    "set up, `run` is the console in a terminal (it asks for a name, a role and goals, as AutoGPT "
    "did); without a terminal it says what to configure and serves /healthz as 503 until stopped."
)


EVAL_HELP = (
    "Run the evaluation challenges against the LLM the settings configure (OpenAI, Azure or any "
    "OpenAI-compatible server), each as a fresh continuous session with its own cycle and budget "
    "caps, on a temporary DATA_DIR, and check each outcome from the workspace files and the "
    "session record. Prints a table (and writes JSON with --json)."
)
EVAL_EXIT_CODES = (
    "exit codes:\n  0    every challenge that ran passed (skipped ones do not count)\n"
    "  1    some challenge failed\n  2    a usage or configuration error (nothing was run)"
)


def exit_codes_text() -> str:
    return "exit codes:\n" + "\n".join(f"  {code:<4} {meaning}" for code, meaning in EXIT_CODES)


def version() -> str:
    try:
        return metadata.version("autogpt-bot")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="autogpt-bot",
        description="The autonomous AutoGPT agent in team chat, and in this terminal.",
        epilog=exit_codes_text(),
        formatter_class=raw,
    )
    p.add_argument("--version", action="version", version=f"autogpt-bot {version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    r = sub.add_parser(
        "run",
        help="start every adapter that has credentials (the console when none has)",
        description=RUN_HELP,
        epilog=exit_codes_text(),
        formatter_class=raw,
    )
    r.add_argument(
        "--role",
        dest="process_role",
        choices=("all", "ingress", "worker"),
        help="all (the default, or ROLE): receive and drive; ingress: hold the chat connections, "
        "acknowledge and enqueue, never drive; worker: drive queued sessions and post through the "
        "Web APIs, no chat connection (ingress and worker share a Redis: deploy/scaling.md)",
    )
    sub.add_parser("check-config", help="print the effective settings, secrets masked")
    c = sub.add_parser(
        "console",
        help="run one session in this terminal",
        description="One session in this terminal, decided step by step as in AutoGPT.",
        epilog=exit_codes_text(),
        formatter_class=raw,
    )
    c.add_argument("goals", nargs="*", metavar="GOAL", help="one to five goals")
    c.add_argument("--name", help="the AI's name (ai_name)")
    c.add_argument("--role", help="the AI's role (ai_role)")
    c.add_argument(
        "--ai-settings",
        metavar="FILE",
        type=Path,
        help="AutoGPT's ai_settings.yaml: ai_name, ai_role, ai_goals (a list), api_budget (USD)",
    )
    c.add_argument("--continuous", action="store_true", help="run without asking for approval")
    c.add_argument(
        "--continuous-limit",
        type=int,
        metavar="N",
        help="with --continuous: at most N cycles (with --resume: N more cycles)",
    )
    only = c.add_mutually_exclusive_group()
    only.add_argument("--gpt3only", action="store_true", help="use FAST_LLM for everything")
    only.add_argument("--gpt4only", action="store_true", help="use SMART_LLM for everything")
    c.add_argument(
        "--resume",
        metavar="ID",
        help="continue a saved session (one paused by a limit gets one more allotment)",
    )
    c.add_argument(
        "--speak", action="store_true", help="say what the agent says (TEXT_TO_SPEECH_PROVIDER), like AutoGPT"
    )
    sub.add_parser("list", help="your console sessions: id, state, goals, cycles, spend, age")
    s = sub.add_parser("stop", help="stop one of your sessions (its slot is free at once)")
    s.add_argument("session_id", metavar="ID")
    e = sub.add_parser(
        "eval",
        help="measure the configured LLM on the evaluation challenges",
        description=EVAL_HELP,
        epilog=EVAL_EXIT_CODES,
        formatter_class=raw,
    )
    e.add_argument("--suite", choices=("basic", "tools", "all"), default="basic", help="which challenges")
    e.add_argument(
        "--only",
        metavar="NAME",
        action="append",
        help="run only this challenge (repeatable; any suite)",
    )
    e.add_argument("--repeat", type=int, default=1, metavar="N", help="run each challenge N times")
    e.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON to FILE")
    e.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        metavar="S",
        help="seconds one run of a challenge may take (default 900)",
    )
    u = sub.add_parser(
        "usage",
        help="sessions, cycles, LLM calls, tokens and spend by user, channel and model",
        description="Usage of every user on every platform, from the archive and the live sessions.",
    )
    u.add_argument("--user", metavar="U", help="one user: an id, or platform:id (e.g. slack:U012AB3CD)")
    u.add_argument("--channel", metavar="C", help="one channel, by its id")
    u.add_argument("--days", type=int, default=30, metavar="N", help="the last N days (default 30)")
    x = sub.add_parser(
        "export",
        help="every decision, command run and spend, for an audit",
        description="Every decision (who approved, rejected or gave feedback on which command, when), "
        "every command run with its outcome and every spend, from the archive and the live sessions.",
    )
    x.add_argument("--since", required=True, metavar="DATE", help="YYYY-MM-DD (UTC), or an ISO date and time")
    x.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default) or jsonl")
    x.add_argument("--output", type=Path, metavar="FILE", help="write to FILE (default: standard output)")
    return p


def console_args(ns: argparse.Namespace) -> ConsoleArgs:
    from adapters.console.app import ConsoleArgs

    return ConsoleArgs(
        goals=[g.strip() for g in ns.goals],
        name=ns.name,
        role=ns.role,
        continuous=ns.continuous,
        continuous_limit=ns.continuous_limit,
        llm_mode="fast" if ns.gpt3only else "smart" if ns.gpt4only else "default",
        resume=ns.resume,
        speak=ns.speak,
    )


def wanted_adapters(configs: list[BaseConfig]) -> list[tuple[type[ChatAdapter], BaseConfig]]:
    """The installed chat adapters the admin set up, each with its settings (from `configs`)."""
    from bot.adapter import adapter_classes

    found = []
    for cls in adapter_classes().values():
        config = next((c for c in configs if cls.settings_class and isinstance(c, cls.settings_class)), None)
        if config is not None and cls.wanted(config):
            found.append((cls, config))
    return found


def stop_signals(stop: asyncio.Event) -> tuple[signal.Signals, ...]:
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    return signals


async def run_chat(settings: Settings, wanted: list[tuple[type[ChatAdapter], BaseConfig]]) -> int:
    """`run` with chat credentials: every adapter the admin set up, on one core, until
    SIGINT/SIGTERM."""
    from adapters.console.app import open_core
    from bot.adapter import AdapterStartError
    from bot.ops import OpsServer

    for cls, config in wanted:
        if problem := cls.problem(config):
            print(problem, file=sys.stderr)
            return EXIT_CONFIG
    if settings.role != "all" and settings.redis_url is None:
        print(
            f"--role {settings.role} needs REDIS_URL: the ingress and the workers share the work "
            "queue and the sessions in one Redis (deploy/scaling.md).",
            file=sys.stderr,
        )
        return EXIT_CONFIG
    core = await open_core(settings)
    if isinstance(core, int):
        return core
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = stop_signals(stop)
    started: list[ChatAdapter] = []
    ops = OpsServer(core, settings)
    try:
        for cls, config in wanted:
            adapter = cls(core, config)  # type: ignore[call-arg]
            adapter.post_only = settings.role == "worker"  # a worker receives nothing
            await adapter.start()
            started.append(adapter)
        resumed = await core.resume_all()
        core.start_background()  # schedules (when this process leads) and orphaned sessions
        await start_ops(ops)
        # What is loaded by now (libraries, clients, settings) lives as long as the process; left in
        # the collected generations, each full collection re-scanned it for ~90 ms with the event
        # loop stalled, which is what the slowest chat acknowledgements were waiting for.
        gc.freeze()
        names = ", ".join(cls.name.capitalize() for cls, _ in wanted)
        role = "" if settings.role == "all" else f" as {settings.role}"
        print(f"autogpt-bot is running on {names}{role} ({resumed} sessions resumed).", file=sys.stderr)
        await stop.wait()
        print("Stopping: sessions are saved and continue at the next start.", file=sys.stderr)
        return 0
    except AdapterStartError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await ops.stop()
        # In this order: nothing new comes in; the drives wind down (a worker's are handed over)
        # while the adapters can still post what they say on the way out; then the adapters stop
        # (a drive posting through a closed Discord client failed with "Session is closed")
        for adapter in reversed(started):
            await adapter.stop_receiving()
        await core.stop_driving()
        for adapter in reversed(started):
            await adapter.stop()
        await core.close()


def not_configured_reason(settings: Settings) -> str:
    missing = "no chat adapter has credentials and there is no terminal for the console"
    if not settings.llm_configured():
        missing += "; no LLM is configured either"
    return missing


def not_configured_text(settings: Settings) -> str:
    """The one paragraph `run` says when it has nothing to run."""
    from adapters.console.app import env_file_note

    llm = (
        ""
        if settings.llm_configured()
        else " No LLM is configured either: set OPENAI_API_KEY (or OPENAI_BASE_URL for an "
        "OpenAI-compatible server)."
    )
    return (
        "autogpt-bot run: nothing to run. No chat adapter has credentials (Slack needs "
        "SLACK_BOT_TOKEN and SLACK_APP_TOKEN, Discord needs DISCORD_BOT_TOKEN) and standard input "
        f"is not a terminal, so the console cannot ask for goals.{llm} Put the settings in .env "
        f"({env_file_note()}) or the environment and restart; or run one session in a terminal, "
        'e.g. `docker compose run --rm autogpt-bot console "your goal"`. Until then /healthz '
        "answers 503 (not configured)."
    )


async def run_not_configured(settings: Settings) -> int:
    """`run` with nothing to run and nobody to ask: say what to configure, and keep /healthz
    answering "not configured" (a container that restarts in a loop helps nobody) until stopped."""
    from bot.ops import OpsServer

    print(not_configured_text(settings), file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = stop_signals(stop)
    ops = OpsServer.not_configured(settings, not_configured_reason(settings))
    try:
        await start_ops(ops)
        await stop.wait()
        return 0
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await ops.stop()


async def start_ops(ops: OpsServer) -> None:
    """/healthz and /metrics; a port that is taken is said loudly, but does not stop the bot."""
    try:
        await ops.start()
    except OSError as exc:
        log.error("ops: cannot listen on %s:%s (%s): /healthz and /metrics are off", ops.host, ops.port, exc)


def check_arguments(p: argparse.ArgumentParser, ns: argparse.Namespace) -> int | None:
    """The console's own argument rules: an exit code and a line on stderr when one is broken."""
    if ns.command != "console":
        return None
    if ns.continuous_limit is not None:
        if not ns.continuous:
            print("--continuous-limit can only be used with --continuous", file=sys.stderr)
            return EXIT_CONFIG
        if ns.continuous_limit < 1:
            print("--continuous-limit must be at least 1", file=sys.stderr)
            return EXIT_CONFIG
    if len(ns.goals) > 5:
        print("At most 5 goals.", file=sys.stderr)
        return EXIT_CONFIG
    if any(not g.strip() for g in ns.goals):
        print(f"{p.prog} console: error: a goal cannot be empty", file=sys.stderr)
        return EXIT_CONFIG
    if ns.resume and (ns.goals or ns.ai_settings):
        print("--resume continues a saved session: give no goals (or --ai-settings) with it", file=sys.stderr)
        return EXIT_CONFIG
    return None


def main(argv: list[str] | None = None) -> int:
    args: ConsoleArgs | None = None
    try:
        p = parser()
        ns = p.parse_args(argv)
        if (code := check_arguments(p, ns)) is not None:
            return code
        if ns.command == "console":
            args = console_args(ns)
            if ns.ai_settings is not None:
                from adapters.console.app import AISettingsError, apply_ai_settings, load_ai_settings

                try:
                    apply_ai_settings(args, load_ai_settings(ns.ai_settings))
                except AISettingsError as exc:
                    print(exc, file=sys.stderr)
                    return EXIT_CONFIG
        try:
            settings = load_settings()
            configs = adapter_settings()  # every adapter's, so their secrets are redacted in any mode
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return EXIT_CONFIG
        for warning in unknown_key_warnings(os.environ, env_file_used()):
            print(f"Warning: {warning}", file=sys.stderr)
        if ns.command == "check-config":
            from adapters.console.app import env_file_note
            from adapters.console.reports import profile_lines

            for key, value in masked(settings, *configs).items():
                print(f"{key}={value}")
            print(f"# Settings file: {env_file_note()}")
            for line in effective(settings).splitlines():  # what the settings add up to, as comments
                print(f"# {line}".rstrip())
            for line in asyncio.run(profile_lines(settings)):  # the channels' own defaults
                print(f"# {line}".rstrip())
            return 0
        # the role is `run`'s: every other command (the console, list, stop) drives here itself
        role = getattr(ns, "process_role", None) or (settings.role if ns.command in (None, "run") else "all")
        if role != settings.role:
            settings = settings.model_copy(update={"role": role})
        wanted = wanted_adapters(configs) if ns.command in (None, "run") else []
        chat = bool(wanted)
        logs.setup(settings, quiet=not chat, extra=configs)
        if ns.command in ("list", "stop"):
            from adapters.console.app import list_sessions, stop_session

            if ns.command == "list":
                return asyncio.run(list_sessions(settings))
            return asyncio.run(stop_session(settings, ns.session_id))
        if ns.command in ("usage", "export"):
            from adapters.console.reports import export_command, usage_command

            if ns.command == "usage":
                return asyncio.run(usage_command(settings, ns.days, ns.user, ns.channel, redact=configs))
            return asyncio.run(export_command(settings, ns.since, ns.format, ns.output, redact=configs))
        from adapters.console.app import ConsoleArgs, run_console

        if ns.command == "eval":
            from bot.evals.runner import command as eval_command

            return asyncio.run(
                eval_command(
                    settings,
                    suite=ns.suite,
                    only=ns.only,
                    repeat=ns.repeat,
                    json_path=ns.json,
                    timeout_s=ns.timeout,
                )
            )
        if ns.command == "console":
            assert args is not None
            return asyncio.run(run_console(settings, args, redact=configs))
        # `run` (and no command): the chat adapters that have credentials; the console otherwise.
        if chat:
            return asyncio.run(run_chat(settings, wanted))
        if settings.role != "all":
            print(f"--role {settings.role} needs a chat adapter with credentials.", file=sys.stderr)
            return EXIT_CONFIG
        if not sys.stdin.isatty():
            return asyncio.run(run_not_configured(settings))
        return asyncio.run(run_console(settings, ConsoleArgs(), redact=configs))
    except KeyboardInterrupt:  # before or after a session's own handling (which says more)
        print("\nInterrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def effective(settings: Settings) -> str:
    """Where commands run and which need an approval, for `check-config`; each MCP server is
    connected to (started, for a stdio one) to list its tools, then closed."""
    from bot import policy, sandbox
    from bot.mcp_servers import McpServers
    from bot.redact import Redactor
    from bot.tools import by_section, default_registry

    chosen = sandbox.select(settings)
    where = f"{chosen.name}: {chosen.reason}"
    if not settings.execute_local_commands:
        where += " (the execution tools are off: EXECUTE_LOCAL_COMMANDS=false)"
    registry = default_registry()

    async def described() -> str:
        servers = McpServers(settings, registry, Redactor.of(settings))
        logging.disable(logging.CRITICAL)  # a server that is off is said below, once
        try:
            await servers.start()
            mcp = servers.status_lines()
            return policy.describe(settings, registry) + "\n" + by_section(settings, registry, mcp)
        finally:
            await servers.close()
            logging.disable(logging.NOTSET)

    return f"Sandbox: {where}\n" + asyncio.run(described())


if __name__ == "__main__":
    sys.exit(main())
