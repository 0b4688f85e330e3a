"""Structured logs: JSON lines when stderr is not a terminal (a container, a service manager),
plain text on a terminal. Every line carries `time`, `level`, `logger` and `message`, and
`session`, `user` and `platform` when known.

Those three come from context variables, set where work on a session or for a user starts:

    with log_context(session=sid, user=actor.user_id, platform=actor.platform): ...
    @logged                      # an async function: from its arguments session_id / actor / place / session
    bind(user=..., platform=...) # for the rest of the current task (e.g. in a chat listener's middleware)

asyncio tasks copy the context they were created in, so a session's background work logs its id.

No secrets: every line passes through the settings' redaction filter (bot/redact.py), which
replaces the value of each secret with `[redacted NAME]`. Prompts are logged only at DEBUG
(bot/llm/client.py).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, ParamSpec, TypeVar

from bot.redact import NO_SECRETS, Redactor

FIELDS = ("session", "user", "platform")
_VARS: dict[str, ContextVar[str | None]] = {name: ContextVar(f"log_{name}", default=None) for name in FIELDS}
NOISY = ("httpx", "httpx2", "openai", "aiosqlite", "asyncio", "apscheduler")  # they log every request at INFO

P = ParamSpec("P")
R = TypeVar("R")


def current() -> dict[str, str]:
    """The context fields set now (those known)."""
    return {name: value for name, var in _VARS.items() if (value := var.get()) is not None}


@contextlib.contextmanager
def log_context(
    *, session: str | None = None, user: str | None = None, platform: str | None = None
) -> Iterator[None]:
    """Set the given fields (None: leave as is) for the block. After it every field is back to
    what it was before, `bind` calls inside included."""
    given = {"session": session, "user": user, "platform": platform}
    tokens = [(var, var.set(given[name] or var.get())) for name, var in _VARS.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind(*, session: str | None = None, user: str | None = None, platform: str | None = None) -> None:
    """Set the given fields for the rest of the current context (task), without a block."""
    for name, value in (("session", session), ("user", user), ("platform", platform)):
        if value is not None:
            _VARS[name].set(value)


def fields_of(arguments: dict[str, Any]) -> dict[str, str]:
    """Context fields from a call's arguments: session_id, session (a Session), actor (an Actor:
    the acting user and their platform) and place (a Place: its platform)."""
    found: dict[str, str] = {}
    session = arguments.get("session")
    if session is not None and hasattr(session, "owner"):
        found.update(session=session.id, user=session.owner, platform=session.place.platform)
    if isinstance(sid := arguments.get("session_id"), str):
        found["session"] = sid
    if (place := arguments.get("place")) is not None and hasattr(place, "platform"):
        found["platform"] = place.platform
    if (actor := arguments.get("actor")) is not None and hasattr(actor, "user_id"):
        found.update(user=actor.user_id, platform=actor.platform)
    return found


def logged(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Run an async function in a log context taken from its arguments (see `fields_of`)."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            arguments = signature.bind_partial(*args, **kwargs).arguments
        except TypeError:  # let the call itself raise
            arguments = {}
        with log_context(**fields_of(arguments)):
            return await fn(*args, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------- formatting


class ContextFilter(logging.Filter):
    """Stamps each record with the context fields (a field passed in `extra=` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _VARS.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class _Redacting(logging.Formatter):
    def __init__(self, redactor: Redactor | None = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.redactor = redactor or NO_SECRETS

    def redact(self, text: str) -> str:
        return self.redactor.text(text)


class JsonFormatter(_Redacting):
    """One JSON object a line: time, level, logger, message, the known context fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = _VARS[name].get()
            if value is not None:
                line[name] = str(value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return self.redact(json.dumps(line, ensure_ascii=False, default=str))


class TextFormatter(_Redacting):
    """`time LEVEL logger [session=.. user=.. platform=..]: message` for a person at a terminal."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__(redactor, fmt="%(asctime)s %(levelname)s %(name)s%(ctx)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is None:
                value = _VARS[name].get()
            if value is not None:
                parts.append(f"{name}={value}")
        record.ctx = f" [{' '.join(parts)}]" if parts else ""
        return self.redact(super().format(record))


def make_handler(
    stream: IO[str], *, json_lines: bool | None = None, redactor: Redactor | None = None
) -> logging.Handler:
    """A handler writing to `stream`: JSON lines, or text when `json_lines` is None and the
    stream is a terminal."""
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter(redactor) if json_lines else TextFormatter(redactor))
    handler._autogpt_bot = True  # type: ignore[attr-defined]  # ours: replaced by the next setup
    return handler


def setup(
    settings: Any,
    quiet: bool = False,
    *,
    stream: IO[str] | None = None,
    json_lines: bool | None = None,
    extra: Sequence[Any] = (),
) -> logging.Handler:
    """Configure the root logger from LOG_LEVEL: one handler on stderr (or `stream`), JSON lines
    unless it is a terminal. `quiet` (the console) shows warnings and errors only, unless
    LOG_LEVEL=DEBUG. Libraries that log every request stay at WARNING. Returns the handler."""
    level_name = str(getattr(settings, "log_level", "INFO"))
    level = logging.WARNING if quiet and level_name != "DEBUG" else logging.getLevelName(level_name)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_autogpt_bot", False)]:
        root.removeHandler(old)
    handler = make_handler(
        stream or sys.stderr, json_lines=json_lines, redactor=Redactor.of(settings, *extra)
    )
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    return handler
