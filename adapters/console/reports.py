"""The operator's reports on the command line: `autogpt-bot usage` (everyone's, on every
platform), `autogpt-bot export` (the audit trail, CSV or JSON lines) and the channel profiles
that `check-config` lists. They read the session store and the archive; they need no LLM."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

from adapters.console.exits import EXIT_CONFIG, EXIT_ERROR, EXIT_FINISHED
from bot import audit, profiles, usage
from bot.presenter import wording
from bot.redact import Redactor
from bot.settings import Settings
from bot.store import SQLiteStore, make_archive, make_store
from bot.store.archive import SessionArchive
from bot.store.base import OpenError, SessionStore, StoreError


@asynccontextmanager
async def opened(settings: Settings) -> AsyncIterator[tuple[SessionStore, SessionArchive]]:
    """The session store and the archive, open (StoreError when one cannot be opened; OpenError
    when it is the archive)."""
    store, archive = make_store(settings), make_archive(settings)
    await store.open()
    try:
        try:
            await archive.open()
        except StoreError as exc:
            raise OpenError("archive", exc) from exc
        try:
            yield store, archive
        finally:
            await archive.close()
    finally:
        await store.close()


def store_failure(exc: StoreError) -> str:
    """One line on what could not be read: the archive says so itself, else the session store."""
    return str(exc) if isinstance(exc, OpenError) else f"Cannot read the session store: {exc}"


def _redactor(settings: Settings, extra: list[Any]) -> Redactor:
    return Redactor.of(settings, *extra)


async def usage_command(
    settings: Settings,
    days: int = 30,
    user: str | None = None,
    channel: str | None = None,
    out: TextIO | None = None,
    redact: list[Any] | None = None,
) -> int:
    """`autogpt-bot usage`: everyone's usage on every platform (`user`: an id, or
    `platform:id`; `channel`: an id), as the chat's `usage` shows an admin."""
    out = out or sys.stdout
    if not 1 <= days <= usage.MAX_USAGE_DAYS:
        print(f"--days must be from 1 to {usage.MAX_USAGE_DAYS}", file=sys.stderr)
        return EXIT_CONFIG
    query = usage.UsageQuery(days=days, user=user or None, channel=channel or None)
    redactor = _redactor(settings, redact or [])
    try:
        async with opened(settings) as (store, archive):
            view = await usage.report(store, archive, query)
    except StoreError as exc:
        print(redactor.text(store_failure(exc)), file=sys.stderr)
        return EXIT_ERROR
    print(redactor.text(wording.usage_text(view)), file=out)
    return EXIT_FINISHED


async def export_command(
    settings: Settings,
    since: str,
    fmt: str,
    output: Path | None = None,
    out: TextIO | None = None,
    redact: list[Any] | None = None,
) -> int:
    """`autogpt-bot export`: every decision, command run and spend since `since`, to `output`
    (or standard output); how many records is said on standard error."""
    try:
        moment = audit.parse_since(since)
    except audit.ExportError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    if fmt not in audit.FORMATS:
        print(f"--format must be csv or jsonl, not {fmt!r}", file=sys.stderr)
        return EXIT_CONFIG
    redactor = _redactor(settings, redact or [])
    target: TextIO
    try:
        target = output.open("w", encoding="utf-8", newline="") if output is not None else (out or sys.stdout)
    except OSError as exc:
        print(f"Cannot write {output}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        async with opened(settings) as (store, archive):
            count = await audit.export(store, archive, moment, fmt, target, redactor)
    except StoreError as exc:
        print(redactor.text(store_failure(exc)), file=sys.stderr)
        return EXIT_ERROR
    finally:
        if output is not None:
            target.close()
    where = f" to {output}" if output is not None else ""
    print(f"Exported {count} records since {moment:%Y-%m-%d %H:%M} UTC{where}.", file=sys.stderr)
    return EXIT_FINISHED


async def profile_lines(settings: Settings) -> list[str]:
    """The channel profiles, a line each, for `check-config`. A SQLite store that was never
    made is not made here; a store that cannot be read is said in one line."""
    store = make_store(settings)
    if isinstance(store, SQLiteStore) and not store.path.exists():
        return ["Channel profiles: none (no session store yet)"]
    try:
        await store.open()
        try:
            found = await store.list_profiles()
        finally:
            await store.close()
    except StoreError as exc:
        return [Redactor.of(settings).text(f"Channel profiles: the session store could not be read ({exc})")]
    if not found:
        return ["Channel profiles: none"]
    lines = [f"Channel profiles ({len(found)}):"]
    for p in sorted(found, key=lambda p: p.key):
        lines.append(f"  {p.key}: " + "; ".join(profiles.profile_lines(p)))
    return lines
