"""The one command grammar every chat platform shares.

Adapters pass the text typed after the slash command or the bot mention; `parse` turns it into
one of the frozen command models below or raises `UsageError` (and nothing else, for any input).

Adding a command: write a `_parse_<verb>(cur, ctx)` function and add one `_Verb` row to `_VERBS`;
`USAGE` and `help_text` are built from that table.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

__all__ = [
    "DEFAULT_MAX_GOAL_CHARS",
    "MAX_GOALS",
    "PROFILE_KEYS",
    "SESSION_ID_ALPHABET",
    "SESSION_ID_RE",
    "USAGE",
    "VERBS",
    "AllowCommand",
    "ApproveCommand",
    "Command",
    "CommandAdapter",
    "FeedbackCommand",
    "ForkCommand",
    "GoalCommand",
    "GoalsCommand",
    "HelpCommand",
    "ListCommand",
    "ProfileCommand",
    "RetryCommand",
    "StatusCommand",
    "StopCommand",
    "TemplateCommand",
    "TemplatesCommand",
    "UsageCommand",
    "UsageError",
    "help_text",
    "new_session_id",
    "normalize_session_id",
    "parse",
]

# --- session ids -------------------------------------------------------------------------------

SESSION_ID_LENGTH: Final = 6
SESSION_ID_PATTERN: Final = r"[a-z0-9]{6}"  # the one pattern of a session id (buttons use it too)
SESSION_ID_RE: Final = re.compile(f"^{SESSION_ID_PATTERN}$")
#: No 0/o, 1/l/i: ids are read off a screen and typed on a phone.
SESSION_ID_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"
_ID_EXAMPLE: Final = "k3f9qa"


def new_session_id() -> str:
    """A fresh, random, easy-to-type session id such as ``k3f9qa``."""
    return "".join(secrets.choice(SESSION_ID_ALPHABET) for _ in range(SESSION_ID_LENGTH))


def normalize_session_id(text: str) -> str | None:
    """``"#K3F9QA "`` -> ``"k3f9qa"``; None when it is not a session id."""
    candidate = text.strip().lower()
    candidate = candidate.removeprefix("#")
    return candidate if SESSION_ID_RE.fullmatch(candidate) else None


# --- limits ------------------------------------------------------------------------------------

MAX_GOALS: Final = 5  # AutoGPT's limit
DEFAULT_MAX_GOAL_CHARS: Final = 4000
MAX_NAME_CHARS: Final = 80
MAX_NUMBER: Final = 1_000_000  # upper bound for --continuous N and approve N

# --- commands ----------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


SessionId = Annotated[str, Field(pattern=f"^{SESSION_ID_PATTERN}$")]
TEMPLATE_NAME_PATTERN: Final = r"[a-z0-9][a-z0-9_-]{0,39}"
TemplateName = Annotated[str, Field(pattern=f"^{TEMPLATE_NAME_PATTERN}$")]
MAX_USAGE_DAYS: Final = 3650
#: The keys of `profile set KEY VALUE` (and the names they may be typed as) -> the profile's field.
PROFILE_KEYS: Final[dict[str, str]] = {
    "name": "ai_name",
    "ai_name": "ai_name",
    "role": "ai_role",
    "ai_role": "ai_role",
    "smart_llm": "smart_llm",
    "smart": "smart_llm",
    "fast_llm": "fast_llm",
    "fast": "fast_llm",
    "budget": "budget_usd",
    "budget_usd": "budget_usd",
    "session_budget_usd": "budget_usd",
    "continuous_limit": "continuous_limit",
    "memory_scope": "memory_scope",
    "tool_policy": "tool_policy",
    "mcp_servers": "mcp_servers",
}


class GoalCommand(_Frozen):
    """Start a session. ``continuous_limit`` is the cycle limit of a continuous run (None: no limit)."""

    kind: Literal["goal"] = "goal"
    goals: list[str] = Field(min_length=1, max_length=MAX_GOALS)
    continuous: bool = False
    continuous_limit: int | None = Field(default=None, ge=1)
    ai_name: str | None = None
    ai_role: str | None = None
    speak: bool = False  # post each cycle's speak line as audio (AutoGPT's --speak)
    budget_usd: float | None = Field(
        default=None, gt=0
    )  # this session's own budget (ai_settings' api_budget)


class StatusCommand(_Frozen):
    kind: Literal["status"] = "status"
    session_id: SessionId | None = None


class ListCommand(_Frozen):
    kind: Literal["list"] = "list"


class StopCommand(_Frozen):
    kind: Literal["stop"] = "stop"
    session_id: SessionId


class ApproveCommand(_Frozen):
    """Approve the proposed step and the ``count - 1`` after it."""

    kind: Literal["approve"] = "approve"
    session_id: SessionId
    count: int = Field(default=1, ge=1)


class AllowCommand(_Frozen):
    """Approve the proposed step and run its command without asking in this session from now
    on; ``tool``, when given, must be the proposed command."""

    kind: Literal["allow"] = "allow"
    session_id: SessionId
    tool: str | None = None


class FeedbackCommand(_Frozen):
    """Skip the proposed command and tell the agent ``text`` instead."""

    kind: Literal["feedback"] = "feedback"
    session_id: SessionId
    text: str = Field(min_length=1)


class FilesCommand(_Frozen):
    """List the files in a session's workspace."""

    kind: Literal["files"] = "files"
    session_id: SessionId


class FileCommand(_Frozen):
    """Upload one file of a session's workspace into its thread."""

    kind: Literal["file"] = "file"
    session_id: SessionId
    name: str = Field(min_length=1, max_length=500)


class HelpCommand(_Frozen):
    kind: Literal["help"] = "help"
    topic: str | None = None


class PauseCommand(_Frozen):
    """Return a continuous run to step-by-step approval."""

    kind: Literal["pause"] = "pause"
    session_id: SessionId


class ResumeCommand(_Frozen):
    """Continue a paused or stopped-at-a-limit session, step by step or continuously."""

    kind: Literal["resume"] = "resume"
    session_id: SessionId
    continuous: bool = False
    continuous_limit: int | None = Field(default=None, ge=1)


class ScheduleCommand(_Frozen):
    """A recurring goal: ``when`` is a 5-field cron expression or an interval ("every 30m").
    Its goals are given, or a template's (``template``: its name; ``goals`` then empty)."""

    kind: Literal["schedule"] = "schedule"
    when: str = Field(min_length=1)
    tz: str | None = None
    goals: list[str] = Field(default_factory=list, max_length=MAX_GOALS)
    ai_name: str | None = None
    template: TemplateName | None = None

    @model_validator(mode="after")
    def _goals_or_template(self) -> ScheduleCommand:
        if bool(self.goals) == (self.template is not None):
            raise ValueError("a schedule runs either its goals or a template")
        return self


class SchedulesCommand(_Frozen):
    kind: Literal["schedules"] = "schedules"


class ScheduleChangeCommand(_Frozen):
    kind: Literal["schedule_change"] = "schedule_change"
    action: Literal["unschedule", "pause", "resume"]
    schedule_id: SessionId


class UsageCommand(_Frozen):
    """Sessions, cycles, LLM calls, tokens and spend of the last ``days`` days: the asker's, or
    (admins) anyone's; ``user`` and ``channel`` are ids on the asker's platform (``channel``
    None and ``here``: where it is asked)."""

    kind: Literal["usage"] = "usage"
    user: str | None = None
    channel: str | None = None
    here: bool = False
    days: int = Field(default=30, ge=1, le=MAX_USAGE_DAYS)


class ProfileCommand(_Frozen):
    """Show the channel's profile, or set or unset one of its keys (``field``: the profile's
    field the typed key stands for; ``value``: as typed, checked by the service)."""

    kind: Literal["profile"] = "profile"
    action: Literal["show", "set", "unset"] = "show"
    field: str | None = None
    key: str | None = None  # as typed
    value: str | None = None


class TemplateCommand(_Frozen):
    """Save a session's goals under a name, start a session from a template, or delete one.
    ``session_id`` None in ``save``: the session of the thread it is typed in."""

    kind: Literal["template"] = "template"
    action: Literal["save", "run", "delete"]
    name: TemplateName
    session_id: SessionId | None = None
    continuous: bool = False
    continuous_limit: int | None = Field(default=None, ge=1)


class TemplatesCommand(_Frozen):
    kind: Literal["templates"] = "templates"


class GoalsCommand(_Frozen):
    """Show a session's goals, or (its owner) add, remove or edit one while it runs; ``index``
    counts from 1."""

    kind: Literal["goals"] = "goals"
    session_id: SessionId
    action: Literal["show", "add", "remove", "edit"] = "show"
    index: int | None = Field(default=None, ge=1, le=MAX_GOALS)
    text: str | None = None


class RetryCommand(_Frozen):
    """Set the waiting step aside and ask the agent again."""

    kind: Literal["retry"] = "retry"
    session_id: SessionId


class ForkCommand(_Frozen):
    """A new session from a copy of another at a step (None: its last step that ran)."""

    kind: Literal["fork"] = "fork"
    session_id: SessionId
    step: int | None = Field(default=None, ge=0)
    continuous: bool = False
    continuous_limit: int | None = Field(default=None, ge=1)


Command = Annotated[
    GoalCommand
    | StatusCommand
    | ListCommand
    | StopCommand
    | ApproveCommand
    | AllowCommand
    | FeedbackCommand
    | FilesCommand
    | FileCommand
    | HelpCommand
    | PauseCommand
    | ResumeCommand
    | ScheduleCommand
    | SchedulesCommand
    | ScheduleChangeCommand
    | UsageCommand
    | ProfileCommand
    | TemplateCommand
    | TemplatesCommand
    | GoalsCommand
    | RetryCommand
    | ForkCommand,
    Field(discriminator="kind"),
]
#: Validates / dumps any `Command` (e.g. ``CommandAdapter.validate_python({"kind": "list"})``).
CommandAdapter: Final[TypeAdapter[Command]] = TypeAdapter(Command)


# --- errors ------------------------------------------------------------------------------------


class UsageError(ValueError):
    """The text is not a valid command. ``message`` says why; ``usage`` is the full help text."""

    def __init__(self, message: str, usage: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.usage = USAGE if usage is None else usage

    def __str__(self) -> str:
        return self.message


# --- scanning ----------------------------------------------------------------------------------

_WS_RE: Final = re.compile(r"\s*")
_TOKEN_RE: Final = re.compile(r"\S*")
_DIGITS_RE: Final = re.compile(r"[0-9]+")
# ``--name``, ``--name=``; phones turn ``--`` into an em or en dash.
_FLAG_RE: Final = re.compile(r"(--|[—–]-?)([^\s=]*)(=?)")
# C0/C1 controls other than tab and newline (line breaks are normalised to \n first).
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_INVISIBLE_RE: Final = re.compile(r"[\u200b\u2060\ufeff]")  # zero-width space, word joiner, BOM
_GOAL_SPLIT_RE: Final = re.compile(r"[;\n]")
# A list marker a user may type before each goal: "- ", "* ", "• ", "1. ", "2) ".
_BULLET_RE: Final = re.compile(r"(?:[-*•·‣◦]|[0-9]{1,2}[.)])(?:\s+|$)")

_DOUBLE_QUOTES: Final = '"“”„'
_SINGLE_QUOTES: Final = "'‘’"
#: opening quote -> the characters that may close it (phones mix straight and curly quotes)
_CLOSERS: Final[dict[str, str]] = {
    **dict.fromkeys(_DOUBLE_QUOTES, _DOUBLE_QUOTES),
    **dict.fromkeys(_SINGLE_QUOTES, _SINGLE_QUOTES),
    "«": "»",
}


def _clean(text: str) -> str:
    """Normalise line breaks to \\n, drop control and invisible characters, strip."""
    text = "\n".join(text.splitlines())
    text = _CONTROL_RE.sub("", text)
    text = _INVISIBLE_RE.sub("", text)
    return text.strip()


def _show(value: str, limit: int = 30) -> str:
    """A user-typed value, shortened and on one line, for an error message."""
    value = " ".join(value.split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


class _Cursor:
    """A position in the text after the verb. Tokens are whitespace-separated."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        match = _WS_RE.match(self.text, self.pos)
        if match:
            self.pos = match.end()

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek_token(self) -> str:
        self.skip_ws()
        match = _TOKEN_RE.match(self.text, self.pos)
        return match.group() if match else ""

    def take_token(self) -> str:
        token = self.peek_token()
        self.pos += len(token)
        return token

    def take_value(self, what: str) -> str:
        """One token, or text in matching quotes ("...", '...', “...”) which may contain spaces."""
        self.skip_ws()
        if self.pos >= len(self.text):
            return ""
        opener = self.text[self.pos]
        closers = _CLOSERS.get(opener)
        if closers is None:
            return self.take_token()
        ends = [i for i in (self.text.find(c, self.pos + 1) for c in closers) if i >= 0]
        if not ends:
            raise UsageError(f"The {what} starts with a quote ({opener}) that is never closed.")
        end = min(ends)
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def rest(self) -> str:
        """Everything not yet read, raw but stripped."""
        value = self.text[self.pos :].strip()
        self.pos = len(self.text)
        return value


@dataclass(frozen=True)
class _Context:
    max_goal_chars: int


_Parser = Callable[[_Cursor, _Context], Command]


@dataclass(frozen=True)
class _Verb:
    parse: _Parser
    syntax: str
    summary: str
    example: str = ""
    details: str = ""  # more, shown by `help VERB` only


def _fail(verb: str, problem: str) -> UsageError:
    """A usage error for ``verb``: the problem, then that command's syntax."""
    return UsageError(f"{problem}\nUsage: {_VERBS[verb].syntax}")


def _positive_int(token: str, verb: str, what: str) -> int:
    if not _DIGITS_RE.fullmatch(token):
        raise _fail(verb, f"'{_show(token)}' is not a valid {what}: use a whole number of 1 or more.")
    significant = token.lstrip("0") or "0"
    if len(significant) > len(str(MAX_NUMBER)) or int(significant) > MAX_NUMBER:
        raise _fail(verb, f"{what.capitalize()} {_show(token)} is too large (at most {MAX_NUMBER:,}).")
    value = int(significant)
    if value < 1:
        raise _fail(verb, f"{what.capitalize()} must be at least 1, not {value}.")
    return value


def _session_id(cur: _Cursor, verb: str) -> str:
    token = cur.take_token()
    if not token:
        raise _fail(verb, f"{verb} needs a session id, e.g. {verb} {_ID_EXAMPLE}")
    session_id = normalize_session_id(token)
    if session_id is None:
        raise UsageError(f"'{_show(token)}' is not a session id (6 letters and digits, e.g. {_ID_EXAMPLE})")
    return session_id


def _expect_end(cur: _Cursor, verb: str) -> None:
    if not cur.at_end():
        raise _fail(verb, f"Unexpected '{_show(cur.rest())}' after {verb}.")


_M = TypeVar("_M", bound=BaseModel)


def _build(model: type[_M], **fields: object) -> _M:
    """Construct a command; the parsers validate first, so this is only a safety net."""
    try:
        return model(**fields)
    except ValidationError as exc:
        raise UsageError(f"Invalid {model.__name__}: {exc.errors()[0]['msg']}") from exc


# --- parsers -----------------------------------------------------------------------------------

_GOAL_FLAGS: Final = ("continuous", "name", "role", "speak")


def _value_after_equals(cur: _Cursor, what: str) -> str:
    """The value glued to ``--flag=``; empty when a space or the end follows the ``=``."""
    following = cur.text[cur.pos : cur.pos + 1]
    if not following or following.isspace():
        return ""
    return cur.take_value(what)


def _parse_goal(cur: _Cursor, ctx: _Context) -> GoalCommand:
    continuous = False
    limit: int | None = None
    values: dict[str, str] = {}
    seen: set[str] = set()
    while not cur.at_end():
        match = _FLAG_RE.match(cur.text, cur.pos)
        if match is None:
            break
        dashes, raw_name, equals = match.groups()
        name = raw_name.lower()
        if dashes == "--" and not raw_name and not equals:
            cur.pos = match.end()  # a bare "--" ends the options: what follows is goal text
            break
        if name not in _GOAL_FLAGS:
            if dashes != "--":
                break  # a goal that happens to start with a dash
            options = "--continuous [N], --name NAME, --role ROLE, --speak"
            raise _fail("goal", f"Unknown option '{_show(match.group())}' for goal. Options: {options}.")
        if name in seen:
            raise _fail("goal", f"--{name} was given twice.")
        seen.add(name)
        cur.pos = match.end()
        if name == "speak":
            if equals:
                raise _fail("goal", "--speak takes no value.")
            continue
        if name == "continuous":
            continuous = True
            if equals:
                token = _value_after_equals(cur, "--continuous value")
                if not token:
                    raise _fail("goal", "--continuous= needs a number of steps, e.g. --continuous=10")
                limit = _positive_int(token, "goal", "cycle limit")
            elif _DIGITS_RE.fullmatch(cur.peek_token()):
                limit = _positive_int(cur.take_token(), "goal", "cycle limit")
            continue
        # --name / --role: "--name X", "--name=X"; a quoted value may contain spaces
        if equals:
            value = _value_after_equals(cur, f"--{name} value")
        elif cur.peek_token().startswith("--"):
            value = ""
        else:
            value = cur.take_value(f"--{name} value")
        value = value.strip()
        if not value:
            raise _fail("goal", f'--{name} needs a value, e.g. --{name} "Research Bot"')
        value = " ".join(value.split())
        cap = MAX_NAME_CHARS if name == "name" else ctx.max_goal_chars
        if len(value) > cap:
            raise _fail("goal", f"--{name} is {len(value):,} characters long; the limit is {cap:,}.")
        values[name] = value

    text = cur.rest()
    if len(text) > ctx.max_goal_chars:
        raise _fail(
            "goal",
            f"Your goals are {len(text):,} characters long; the limit is {ctx.max_goal_chars:,}.",
        )
    goals: list[str] = []
    for part in _GOAL_SPLIT_RE.split(text):
        goal = part.strip()
        bullet = _BULLET_RE.match(goal)
        if bullet:
            goal = goal[bullet.end() :].strip()
        if goal:
            goals.append(goal)
    if not goals:
        raise _fail("goal", "Give at least one goal, e.g. goal research note-taking apps; write a summary")
    if len(goals) > MAX_GOALS:
        raise _fail(
            "goal",
            f"You gave {len(goals)} goals; a session takes at most {MAX_GOALS}. "
            "Goals are separated by ; or new lines.",
        )
    return _build(
        GoalCommand,
        goals=goals,
        continuous=continuous,
        continuous_limit=limit,
        ai_name=values.get("name"),
        ai_role=values.get("role"),
        speak="speak" in seen,
    )


def _parse_status(cur: _Cursor, ctx: _Context) -> StatusCommand:
    session_id = None if cur.at_end() else _session_id(cur, "status")
    _expect_end(cur, "status")
    return _build(StatusCommand, session_id=session_id)


def _parse_list(cur: _Cursor, ctx: _Context) -> ListCommand:
    _expect_end(cur, "list")
    return ListCommand()


def _parse_stop(cur: _Cursor, ctx: _Context) -> StopCommand:
    session_id = _session_id(cur, "stop")
    _expect_end(cur, "stop")
    return _build(StopCommand, session_id=session_id)


def _parse_approve(cur: _Cursor, ctx: _Context) -> ApproveCommand:
    session_id = _session_id(cur, "approve")
    count = 1 if cur.at_end() else _positive_int(cur.take_token(), "approve", "number of steps")
    _expect_end(cur, "approve")
    return _build(ApproveCommand, session_id=session_id, count=count)


def _parse_allow(cur: _Cursor, ctx: _Context) -> AllowCommand:
    session_id = _session_id(cur, "allow")
    tool = None if cur.at_end() else cur.take_token()
    _expect_end(cur, "allow")
    return _build(AllowCommand, session_id=session_id, tool=tool)


def _parse_feedback(cur: _Cursor, ctx: _Context) -> FeedbackCommand:
    session_id = _session_id(cur, "feedback")
    text = cur.rest()
    if not text:
        raise _fail("feedback", f"feedback needs text for the agent, e.g. feedback {session_id} use the docs")
    return _build(FeedbackCommand, session_id=session_id, text=text)


def _parse_pause(cur: _Cursor, ctx: _Context) -> PauseCommand:
    session_id = _session_id(cur, "pause")
    _expect_end(cur, "pause")
    return _build(PauseCommand, session_id=session_id)


def _parse_resume(cur: _Cursor, ctx: _Context) -> ResumeCommand:
    session_id = _session_id(cur, "resume")
    continuous = False
    limit: int | None = None
    token = cur.peek_token()
    if token:
        match = _FLAG_RE.fullmatch(token.split("=", 1)[0] + ("=" if "=" in token else ""))
        if match is None or match.group(2).lower() != "continuous":
            raise _fail("resume", f"Unexpected '{_show(token)}' after resume {session_id}.")
        cur.take_token()
        continuous = True
        if "=" in token:
            limit = _positive_int(token.split("=", 1)[1], "resume", "cycle limit")
        elif _DIGITS_RE.fullmatch(cur.peek_token()):
            limit = _positive_int(cur.take_token(), "resume", "cycle limit")
    _expect_end(cur, "resume")
    return _build(ResumeCommand, session_id=session_id, continuous=continuous, continuous_limit=limit)


def _parse_schedule(cur: _Cursor, ctx: _Context) -> ScheduleCommand:
    tz: str | None = None
    name: str | None = None
    template: str | None = None
    while True:
        token = cur.peek_token()
        match = _FLAG_RE.match(token) if token else None
        if match is None:
            break
        flag = match.group(2).lower()
        if flag not in ("tz", "name", "template"):
            raise _fail(
                "schedule",
                f"Unknown option '{_show(token)}' for schedule. Options: --tz ZONE, --name NAME, "
                "--template NAME.",
            )
        cur.pos += len(match.group(0))
        value = (
            _value_after_equals(cur, f"--{flag} value")
            if match.group(3)
            else cur.take_value(f"--{flag} value")
        )
        if not value.strip():
            raise _fail("schedule", f"--{flag} needs a value, e.g. --tz Europe/Paris")
        if flag == "tz":
            tz = value.strip()
        elif flag == "template":
            template = _template_name(value.strip(), "schedule")
        else:
            name = " ".join(value.split())[:MAX_NAME_CHARS]
    cur.skip_ws()
    if cur.at_end() or cur.text[cur.pos] not in _CLOSERS:
        raise _fail("schedule", 'Put the time in quotes, e.g. schedule "0 9 * * 1-5" summarise the news')
    when = " ".join(cur.take_value("time").split())
    if not when:
        raise _fail("schedule", 'The time is empty; e.g. "every 2h" or "0 9 * * 1-5".')
    if template is None and (found := _TEMPLATE_GOAL_RE.fullmatch(cur.text[cur.pos :].strip())):
        template = _template_name(found.group(1), "schedule")  # schedule "<when>" template NAME
        cur.rest()
    if template is not None:
        _expect_end(cur, "schedule")
        return _build(ScheduleCommand, when=when, tz=tz, ai_name=name, template=template)
    if cur.at_end():
        raise _fail(
            "schedule", f'Give the goal to run after the time, e.g. schedule "{when}" summarise the news'
        )
    goal = _parse_goal(cur, ctx)
    return _build(ScheduleCommand, when=when, tz=tz, goals=list(goal.goals), ai_name=name or goal.ai_name)


def _parse_schedules(cur: _Cursor, ctx: _Context) -> SchedulesCommand:
    _expect_end(cur, "schedules")
    return SchedulesCommand()


def _schedule_change(action: Literal["unschedule", "pause", "resume"], verb: str) -> _Parser:
    def parse_change(cur: _Cursor, ctx: _Context) -> ScheduleChangeCommand:
        schedule_id = _session_id(cur, verb)
        _expect_end(cur, verb)
        return _build(ScheduleChangeCommand, action=action, schedule_id=schedule_id)

    return parse_change


def _parse_files(cur: _Cursor, ctx: _Context) -> FilesCommand:
    session_id = _session_id(cur, "files")
    _expect_end(cur, "files")
    return FilesCommand(session_id=session_id)


def _parse_file(cur: _Cursor, ctx: _Context) -> FileCommand:
    session_id = _session_id(cur, "file")
    name = cur.rest().strip().strip('"').strip("'").strip()
    if not name:
        raise _fail("file", "Give the file's name as `files ID` lists it, e.g. file k3f9qa report.md")
    if len(name) > 500:
        raise _fail("file", f"That file name is {len(name):,} characters long; the limit is 500.")
    return _build(FileCommand, session_id=session_id, name=name)


def _parse_help(cur: _Cursor, ctx: _Context) -> HelpCommand:
    topic = " ".join(cur.rest().split()).lower()
    return HelpCommand(topic=topic or None)


# usage, profile, template -------------------------------------------------------------------

_TEMPLATE_NAME_RE: Final = re.compile(f"^{TEMPLATE_NAME_PATTERN}$")
_TEMPLATE_GOAL_RE: Final = re.compile(r"template\s+(\S+)", re.IGNORECASE)
# a user or a channel as chat clients send them: <@U1>, <@!1>, <@U1|name>, <#C1|name>, or the id
_USER_REF_RE: Final = re.compile(r"^<@!?([A-Za-z0-9._-]{1,64})(?:\|[^>]*)?>$|^([A-Za-z0-9._-]{1,64})$")
_CHANNEL_REF_RE: Final = re.compile(r"^<#([A-Za-z0-9._-]{1,64})(?:\|[^>]*)?>$|^#?([A-Za-z0-9._-]{1,64})$")


def _template_name(token: str, verb: str) -> str:
    name = token.strip().lower()
    if not _TEMPLATE_NAME_RE.fullmatch(name):
        raise _fail(
            verb,
            f"'{_show(token)}' is not a template name: up to 40 letters, digits, - and _, e.g. weekly-report",
        )
    return name


def _flags(cur: _Cursor, verb: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """``--flag VALUE`` / ``--flag=VALUE`` pairs up to the end of the text."""
    values: dict[str, str] = {}
    while not cur.at_end():
        token = cur.peek_token()
        match = _FLAG_RE.match(token)
        if match is None or match.group(2).lower() not in allowed:
            options = ", ".join(f"--{a}" for a in allowed)
            raise _fail(verb, f"Unexpected '{_show(token)}' after {verb}. Options: {options}.")
        flag = match.group(2).lower()
        if flag in values:
            raise _fail(verb, f"--{flag} was given twice.")
        cur.pos += len(match.group(0))
        value = _value_after_equals(cur, f"--{flag} value") if match.group(3) else cur.take_value(f"--{flag}")
        if not value.strip() or (not match.group(3) and value.startswith("--")):
            raise _fail(verb, f"--{flag} needs a value.")
        values[flag] = value.strip()
    return values


def _parse_usage(cur: _Cursor, ctx: _Context) -> UsageCommand:
    values = _flags(cur, "usage", ("user", "channel", "days"))
    fields: dict[str, object] = {}
    if "user" in values:
        found = _USER_REF_RE.fullmatch(values["user"])
        if found is None:
            raise _fail("usage", f"'{_show(values['user'])}' is not a user id (or a mention of one).")
        fields["user"] = found.group(1) or found.group(2)
    if "channel" in values:
        if values["channel"].lower() == "here":
            fields["here"] = True
        else:
            found = _CHANNEL_REF_RE.fullmatch(values["channel"])
            if found is None:
                raise _fail("usage", f"'{_show(values['channel'])}' is not a channel id (or here).")
            fields["channel"] = found.group(1) or found.group(2)
    if "days" in values:
        days = _positive_int(values["days"], "usage", "number of days")
        if days > MAX_USAGE_DAYS:
            raise _fail("usage", f"At most {MAX_USAGE_DAYS} days.")
        fields["days"] = days
    return _build(UsageCommand, **fields)


def _parse_profile(cur: _Cursor, ctx: _Context) -> ProfileCommand:
    action = cur.take_token().lower()
    if action in ("", "show"):
        _expect_end(cur, "profile")
        return ProfileCommand()
    if action not in ("set", "unset"):
        raise _fail(
            "profile", f"Unknown '{_show(action)}': profile, profile set KEY VALUE or profile unset KEY."
        )
    typed = cur.take_token()
    key = typed.lower().replace("-", "_")
    field = PROFILE_KEYS.get(key)
    if field is None:
        keys = ", ".join(sorted({k for k, f in PROFILE_KEYS.items() if k == _PROFILE_KEY_SHOWN[f]}))
        what = f"'{_show(typed)}' is not" if typed else "Give"
        raise _fail("profile", f"{what} a profile key: {keys}.")
    if action == "unset":
        _expect_end(cur, "profile")
        return _build(ProfileCommand, action="unset", field=field, key=key)
    value = cur.rest()
    if len(value) >= 2 and value[0] in _CLOSERS and value[-1] in _CLOSERS[value[0]]:
        value = value[1:-1].strip()  # a quoted value
    if not value:
        raise _fail("profile", f"profile set {key} needs a value; profile unset {key} removes it.")
    if len(value) > max(ctx.max_goal_chars, 1000):
        raise _fail("profile", f"That value is {len(value):,} characters long.")
    return _build(ProfileCommand, action="set", field=field, key=key, value=value)


#: the key each profile field is shown as (the first of its names in PROFILE_KEYS)
_PROFILE_KEY_SHOWN: Final[dict[str, str]] = {f: k for k, f in reversed(PROFILE_KEYS.items())}


def _parse_template(cur: _Cursor, ctx: _Context) -> TemplateCommand:
    action = cur.take_token().lower()
    if action not in ("save", "run", "delete"):
        what = f"Unknown '{_show(action)}'" if action else "Say what to do"
        raise _fail(
            "template", f"{what}: template save NAME [ID], template run NAME or template delete NAME."
        )
    token = cur.take_token()
    if not token:
        raise _fail("template", f"template {action} needs a name, e.g. template {action} weekly-report")
    name = _template_name(token, "template")
    fields: dict[str, object] = {"action": action, "name": name}
    if action == "save" and not cur.at_end():
        fields["session_id"] = _session_id(cur, "template")
    elif action == "run":
        fields.update(_continuous_flag(cur, "template", f"template run {name}"))
    _expect_end(cur, "template")
    return _build(TemplateCommand, **fields)


def _parse_templates(cur: _Cursor, ctx: _Context) -> TemplatesCommand:
    _expect_end(cur, "templates")
    return TemplatesCommand()


def _continuous_flag(cur: _Cursor, verb: str, after: str) -> dict[str, object]:
    """An optional ``--continuous [N]`` / ``--continuous=N`` closing a command."""
    if cur.at_end():
        return {}
    token = cur.peek_token()
    match = _FLAG_RE.fullmatch(token.split("=", 1)[0])
    if match is None or match.group(2).lower() != "continuous":
        raise _fail(verb, f"Unexpected '{_show(cur.rest())}' after {after}.")
    cur.take_token()
    fields: dict[str, object] = {"continuous": True}
    if "=" in token:
        fields["continuous_limit"] = _positive_int(token.split("=", 1)[1], verb, "cycle limit")
    elif _DIGITS_RE.fullmatch(cur.peek_token()):
        fields["continuous_limit"] = _positive_int(cur.take_token(), verb, "cycle limit")
    return fields


def _goal_number(cur: _Cursor, session_id: str, action: str) -> int:
    token = cur.take_token()
    if not token:
        raise _fail("goals", f"Say which goal, e.g. goals {session_id} {action} 2")
    number = _positive_int(token.removeprefix("#"), "goals", "goal number")
    if number > MAX_GOALS:
        raise _fail("goals", f"A session has at most {MAX_GOALS} goals; there is no goal {number}.")
    return number


def _parse_goals(cur: _Cursor, ctx: _Context) -> GoalsCommand:
    token = cur.peek_token()
    if token and normalize_session_id(token) is None:  # "goals research X": meant `goal`
        raise _fail("goals", f"'{_show(token)}' is not a session id. To start a session: goal <your goals>")
    session_id = _session_id(cur, "goals")
    action = cur.take_token().lower()
    if action in ("", "show", "list"):
        _expect_end(cur, "goals")
        return _build(GoalsCommand, session_id=session_id)
    if action not in ("add", "remove", "edit"):
        raise _fail("goals", f"Unknown '{_show(action)}': goals ID add <goal>, remove N or edit N <goal>.")
    index = None if action == "add" else _goal_number(cur, session_id, action)
    text: str | None = None
    if action != "remove":
        text = " ".join(cur.rest().split())
        if len(text) >= 2 and text[0] in _CLOSERS and text[-1] in _CLOSERS[text[0]]:
            text = text[1:-1].strip()
        if not text:
            example = "add write a summary" if action == "add" else f"edit {index} write a summary"
            raise _fail("goals", f"Give the goal's text, e.g. goals {session_id} {example}")
        if len(text) > ctx.max_goal_chars:
            raise _fail(
                "goals", f"That goal is {len(text):,} characters long; the limit is {ctx.max_goal_chars:,}."
            )
    _expect_end(cur, "goals")
    return _build(GoalsCommand, session_id=session_id, action=action, index=index, text=text)


def _parse_retry(cur: _Cursor, ctx: _Context) -> RetryCommand:
    session_id = _session_id(cur, "retry")
    _expect_end(cur, "retry")
    return _build(RetryCommand, session_id=session_id)


def _parse_fork(cur: _Cursor, ctx: _Context) -> ForkCommand:
    session_id = _session_id(cur, "fork")
    fields: dict[str, object] = {"session_id": session_id}
    token = cur.peek_token()
    if token and _DIGITS_RE.fullmatch(token.removeprefix("#")):
        cur.take_token()
        digits = token.removeprefix("#").lstrip("0") or "0"
        if len(digits) > 7:
            raise _fail("fork", f"There is no step {_show(token)}.")
        fields["step"] = int(digits)
    fields.update(_continuous_flag(cur, "fork", f"fork {session_id}"))
    _expect_end(cur, "fork")
    return _build(ForkCommand, **fields)


_VERBS: Final[dict[str, _Verb]] = {
    "goal": _Verb(
        _parse_goal,
        "goal [--continuous [N]] [--name NAME] [--role ROLE] [--speak] <goal; ...>",
        "start a session (1-5 goals)",
        'goal --name "Scout" find 3 note-taking apps; compare their prices',
    ),
    "status": _Verb(_parse_status, "status [ID]", "show a session, or an overview"),
    "list": _Verb(_parse_list, "list", "list the active sessions"),
    "stop": _Verb(_parse_stop, "stop ID", "stop a session"),
    "approve": _Verb(
        _parse_approve,
        "approve ID [N]",
        "approve the proposed step; with N, approve the next N steps",
        "approve k3f9qa 5",
    ),
    "allow": _Verb(_parse_allow, "allow ID [COMMAND]", "approve; always allow it here"),
    "feedback": _Verb(
        _parse_feedback,
        "feedback ID <text>",
        "skip the proposed command and tell the agent why",
        "feedback k3f9qa use the official docs instead",
    ),
    "files": _Verb(_parse_files, "files ID", "list a session's files"),
    "file": _Verb(
        _parse_file,
        "file ID NAME",
        "post a workspace file in the thread",
    ),
    "pause": _Verb(_parse_pause, "pause ID", "back to step-by-step approval"),
    "resume": _Verb(
        _parse_resume,
        "resume ID [--continuous [N]]",
        "continue a paused session, step by step or continuously",
    ),
    "schedule": _Verb(
        _parse_schedule,
        'schedule [--tz ZONE] [--name NAME] "<when>" <goal; goal; ...> | template NAME',
        "run a goal on a schedule: cron, or every 30m / every day at 09:00",
        'schedule "0 9 * * 1-5" summarise the AI news',
    ),
    "schedules": _Verb(_parse_schedules, "schedules", "your schedules and their next run"),
    "unschedule": _Verb(_schedule_change("unschedule", "unschedule"), "unschedule ID", "remove a schedule"),
    "pause-schedule": _Verb(
        _schedule_change("pause", "pause-schedule"), "pause-schedule ID", "pause a schedule"
    ),
    "resume-schedule": _Verb(
        _schedule_change("resume", "resume-schedule"), "resume-schedule ID", "resume a schedule"
    ),
    "usage": _Verb(
        _parse_usage,
        "usage [--user U] [--channel C] [--days N]",
        "sessions, tokens and spend (admins: anyone's)",
        details="By user, channel and model; the last 30 days unless --days. --channel here: this channel.",
    ),
    "profile": _Verb(
        _parse_profile,
        "profile [set KEY VALUE | unset KEY]",
        "this channel's defaults (channel admins set)",
        "profile set budget 0.50",
        details="Keys: name, role, smart_llm, fast_llm, budget (USD a session), continuous_limit, "
        "memory_scope (session|user|channel), tool_policy (web_search=allow,*=ask), mcp_servers (a,b).",
    ),
    "template": _Verb(
        _parse_template,
        "template save NAME [ID] | run NAME | delete NAME",
        "goals kept under a name",
        "template run weekly-report",
        details="save: a session's goals once it has ended (in its thread, ID may be left out). "
        'run NAME [--continuous [N]]. A schedule runs one with: schedule "<when>" template NAME',
    ),
    "templates": _Verb(_parse_templates, "templates", "the saved templates"),
    "goals": _Verb(
        _parse_goals,
        "goals ID [add <goal> | remove N | edit N <goal>]",
        "show or change a session's goals",
        details="The owner changes the goals of a session under way; the agent is told at its next step. "
        "N is the goal's number as `goals ID` shows it.",
    ),
    "retry": _Verb(
        _parse_retry,
        "retry ID",
        "ask the agent again for the waiting step",
        details="Also asks again in a session an error paused (a reply that could not be read).",
    ),
    "fork": _Verb(
        _parse_fork,
        "fork ID [STEP] [--continuous [N]]",
        "a new session from a copy at a step",
        details="Copies the goals, the steps up to STEP (default: the last that ran) and the workspace's "
        "files; the new session is yours, in a thread of its own here. fork ID 0: the goals only.",
    ),
    "help": _Verb(_parse_help, "help [command|policy]", "this help, a command's, or the policy"),
}
#: The verbs `parse` understands.
VERBS: Final = frozenset(_VERBS)


def _describe(verb: _Verb) -> str:
    example = f"\n    e.g. {verb.example}" if verb.example else ""
    return f"{verb.syntax}  {verb.summary}{example}"


USAGE: Final = "\n".join(
    [
        "Commands:",
        *(_describe(verb) for verb in _VERBS.values()),
        "",
        "Goals are separated by ; or new lines. --continuous: no approvals (at most N steps).",
        "--speak: what the agent says, as audio.",
        "NAME and ROLE may be quoted. Files attached to a goal or its thread go to the agent.",
        f"ID is a session id such as {_ID_EXAMPLE}.",
    ]
)


def help_text(topic: str | None = None) -> str:
    """Help on one command (``help goal``), or the whole `USAGE` for no or an unknown topic."""
    verb = _VERBS.get((topic or "").strip().lower())
    if verb is None:
        return USAGE
    return _describe(verb) + (f"\n{verb.details}" if verb.details else "")


# --- entry point -------------------------------------------------------------------------------


def parse(text: str, *, max_goal_chars: int = DEFAULT_MAX_GOAL_CHARS) -> Command:
    """Parse the text after the trigger (``/autogpt``, a mention) into a `Command`.

    Raises only `UsageError`, for any input. Empty text is a request for help.
    """
    if not isinstance(text, str):
        raise UsageError(f"Expected text, got {type(text).__name__}.")
    cur = _Cursor(_clean(text))
    typed = cur.take_token()
    if not typed:
        return HelpCommand()
    verb = typed.lower()
    spec = _VERBS.get(verb)
    if spec is None:
        raise UsageError(f"Unknown command '{_show(typed)}'.")
    try:
        return spec.parse(cur, _Context(max_goal_chars=max_goal_chars))
    except UsageError:
        raise
    except Exception as exc:  # a bug here must not reach the adapter as anything but a usage error
        raise UsageError(f"Could not understand that {verb} command.") from exc
