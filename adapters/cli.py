"""The `autogpt-bot` command: the composition root. Chat adapters are found by their entry points
(group `autogpt_bot.adapters`, bot/adapter.py); the console is the default when none is set up.

autogpt-bot run            start every adapter that has credentials (the console when none has)
autogpt-bot console ...    one session in the terminal, like AutoGPT's CLI
autogpt-bot check-config   print the effective settings, secrets masked
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from adapters.console.app import EXIT_CONFIG, ConsoleArgs, open_core, run_console
from bot import logs
from bot.adapter import AdapterStartError, ChatAdapter, adapter_classes
from bot.ops import OpsServer
from bot.settings import BaseConfig, ConfigError, Settings, adapter_settings, load_settings, masked

log = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autogpt-bot", description="The autonomous AutoGPT agent in team chat.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="start every adapter that has credentials (the console when none has)")
    sub.add_parser("check-config", help="print the effective settings, secrets masked")
    c = sub.add_parser("console", help="run one session in this terminal")
    c.add_argument("goals", nargs="*", metavar="GOAL", help="one to five goals")
    c.add_argument("--name", help="the AI's name (ai_name)")
    c.add_argument("--role", help="the AI's role (ai_role)")
    c.add_argument("--continuous", action="store_true", help="run without asking for approval")
    c.add_argument("--continuous-limit", type=int, metavar="N", help="with --continuous: at most N cycles")
    only = c.add_mutually_exclusive_group()
    only.add_argument("--gpt3only", action="store_true", help="use FAST_LLM for everything")
    only.add_argument("--gpt4only", action="store_true", help="use SMART_LLM for everything")
    c.add_argument("--resume", metavar="ID", help="continue a saved session")
    c.add_argument(
        "--speak", action="store_true", help="say what the agent says (TEXT_TO_SPEECH_PROVIDER), like AutoGPT"
    )
    return p


def console_args(ns: argparse.Namespace) -> ConsoleArgs:
    return ConsoleArgs(
        goals=[g for g in ns.goals if g.strip()],
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
    found = []
    for cls in adapter_classes().values():
        config = next((c for c in configs if cls.settings_class and isinstance(c, cls.settings_class)), None)
        if config is not None and cls.wanted(config):
            found.append((cls, config))
    return found


async def run_chat(settings: Settings, wanted: list[tuple[type[ChatAdapter], BaseConfig]]) -> int:
    """`run` with chat credentials: every adapter the admin set up, on one core, until
    SIGINT/SIGTERM."""
    for cls, config in wanted:
        if problem := cls.problem(config):
            print(problem, file=sys.stderr)
            return EXIT_CONFIG
    core = await open_core(settings)
    if isinstance(core, int):
        return core
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    started: list[ChatAdapter] = []
    ops = OpsServer(core, settings)
    try:
        for cls, config in wanted:
            adapter = cls(core, config)  # type: ignore[call-arg]
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
        print(f"autogpt-bot is running on {names} ({resumed} sessions resumed).", file=sys.stderr)
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
        for adapter in reversed(started):
            await adapter.stop()
        await core.close()


async def start_ops(ops: OpsServer) -> None:
    """/healthz and /metrics; a port that is taken is said loudly, but does not stop the bot."""
    try:
        await ops.start()
    except OSError as exc:
        log.error("ops: cannot listen on %s:%s (%s): /healthz and /metrics are off", ops.host, ops.port, exc)


def main(argv: list[str] | None = None) -> int:
    ns = parser().parse_args(argv)
    if ns.command == "console" and ns.continuous_limit is not None:
        if not ns.continuous:
            print("--continuous-limit can only be used with --continuous", file=sys.stderr)
            return EXIT_CONFIG
        if ns.continuous_limit < 1:
            print("--continuous-limit must be at least 1", file=sys.stderr)
            return EXIT_CONFIG
    if ns.command == "console" and len(ns.goals) > 5:
        print("At most 5 goals.", file=sys.stderr)
        return EXIT_CONFIG
    try:
        settings = load_settings()
        configs = adapter_settings()  # every adapter's, so their secrets are redacted in any mode
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if ns.command == "check-config":
        for key, value in masked(settings, *configs).items():
            print(f"{key}={value}")
        for line in effective(settings).splitlines():  # what the settings add up to, as comments
            print(f"# {line}".rstrip())
        return 0
    wanted = wanted_adapters(configs) if ns.command in (None, "run") else []
    chat = bool(wanted)
    logs.setup(settings, quiet=not chat, extra=configs)
    try:
        if ns.command == "console":
            return asyncio.run(run_console(settings, console_args(ns), redact=configs))
        # `run` (and no command): the chat adapters that have credentials; the console otherwise.
        if chat:
            return asyncio.run(run_chat(settings, wanted))
        return asyncio.run(run_console(settings, ConsoleArgs(), redact=configs))
    except KeyboardInterrupt:
        print(
            "\nInterrupted. Sessions are saved; resume one with: autogpt-bot console --resume ID",
            file=sys.stderr,
        )
        return 130


def effective(settings: Settings) -> str:
    """Where commands run and which need an approval, for `check-config`."""
    from bot import policy, sandbox
    from bot.tools import by_section, default_registry

    chosen = sandbox.select(settings)
    where = f"{chosen.name}: {chosen.reason}"
    if not settings.execute_local_commands:
        where += " (the execution tools are off: EXECUTE_LOCAL_COMMANDS=false)"
    registry = default_registry()
    return f"Sandbox: {where}\n" + policy.describe(settings, registry) + "\n" + by_section(settings, registry)


if __name__ == "__main__":
    sys.exit(main())
