"""Channel profiles and goal templates: what a channel sets for the sessions started in it, and
goals saved under a name.

A profile's value is checked here (`parse_value`) before it is stored; a session started in the
channel takes the profile's name, role, budget and continuous limit as its own fields, and its
models, memory scope, approval policy and MCP servers as a `SessionProfile` kept with it
(`apply`): the engine reads them through `session_settings` and `model_for`, the memory through
`bot.memory.base.scope_key`. A command's own `--name` / `--role` still wins for one session.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Final

from bot import policy
from bot.grammar import MAX_NAME_CHARS, PROFILE_KEYS
from bot.models import PROFILE_FIELDS, ChannelProfile, Session, SessionProfile
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.llm.client import LLMClient

MAX_BUDGET_USD: Final = 100_000.0
MAX_CONTINUOUS: Final = 1_000_000
MAX_MCP_SERVERS: Final = 20
MAX_POLICY_ENTRIES: Final = 100
_MODEL_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")
_SERVER_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TOOL_RE: Final = re.compile(r"^[A-Za-z0-9_*?.\[\]-]{1,128}$")
_SCOPES: Final = ("session", "user", "channel")
_WORDS: Final = ("allow", "ask", "deny")

#: What each field is, in words (`profile` shows them; `profile set` names them in its errors).
LABELS: Final[dict[str, str]] = {
    "ai_name": "agent name",
    "ai_role": "agent role",
    "smart_llm": "SMART model",
    "fast_llm": "FAST model",
    "budget_usd": "budget per session",
    "continuous_limit": "continuous limit",
    "memory_scope": "memory scope",
    "tool_policy": "tool policy",
    "mcp_servers": "MCP servers",
}
#: The key a user types for each field (`profile set KEY VALUE`).
TYPED: Final[dict[str, str]] = {
    "ai_name": "name",
    "ai_role": "role",
    "smart_llm": "smart_llm",
    "fast_llm": "fast_llm",
    "budget_usd": "budget",
    "continuous_limit": "continuous_limit",
    "memory_scope": "memory_scope",
    "tool_policy": "tool_policy",
    "mcp_servers": "mcp_servers",
}
assert set(PROFILE_KEYS.values()) == set(PROFILE_FIELDS) == set(LABELS) == set(TYPED)


class ProfileError(ValueError):
    """A profile value that cannot be taken; the message says why, with an example."""


def parse_value(field: str, text: str, settings: Settings) -> Any:
    """The value of `field` that `text` (as typed after `profile set KEY`) stands for, checked;
    ProfileError says what is wrong."""
    value = " ".join(text.split())
    key = TYPED[field]
    if not value:
        raise ProfileError(f"profile set {key} needs a value; `profile unset {key}` removes it.")
    match field:
        case "ai_name":
            if len(value) > MAX_NAME_CHARS:
                raise ProfileError(
                    f"The name is {len(value):,} characters long; the limit is {MAX_NAME_CHARS}."
                )
            return value
        case "ai_role":
            if len(value) > settings.max_goal_chars:
                raise ProfileError(
                    f"The role is {len(value):,} characters long; the limit is {settings.max_goal_chars:,}."
                )
            return value
        case "smart_llm" | "fast_llm":
            if not _MODEL_RE.fullmatch(value):
                raise ProfileError(f"'{value[:40]}' is not a model name, e.g. profile set {key} gpt-4o")
            return value
        case "budget_usd":
            try:
                usd = float(value.removeprefix("$"))
            except ValueError:
                raise ProfileError(
                    f"'{value[:40]}' is not an amount in USD, e.g. profile set budget 0.50"
                ) from None
            if not math.isfinite(usd) or usd <= 0 or usd > MAX_BUDGET_USD:
                raise ProfileError(
                    f"A budget per session is more than $0 and at most ${MAX_BUDGET_USD:,.0f}."
                )
            return usd
        case "continuous_limit":
            if not value.isdigit() or not 1 <= int(value) <= MAX_CONTINUOUS:
                raise ProfileError(
                    f"'{value[:40]}' is not a cycle limit: a whole number from 1 to {MAX_CONTINUOUS:,}."
                )
            return int(value)
        case "memory_scope":
            scope = value.lower()
            if scope not in _SCOPES:
                raise ProfileError(f"'{value[:40]}' is not a memory scope: session, user or channel.")
            return scope
        case "tool_policy":
            return _policy(value)
        case "mcp_servers":
            return _servers(value)
    raise ProfileError(f"Unknown profile key {key}.")  # pragma: no cover (PROFILE_KEYS is checked above)


def _policy(value: str) -> dict[str, str]:
    """`web_search=allow,execute_shell=ask,*=ask`, as TOOL_POLICY takes it."""
    words: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in re.split(r"[,\s]+", value))):
        name, eq, word = item.partition("=")
        name, word = name.strip(), word.strip().lower()
        if not eq or not _TOOL_RE.fullmatch(name) or word not in _WORDS:
            raise ProfileError(
                f"'{item[:60]}' is not command=allow|ask|deny, e.g. "
                "profile set tool_policy web_search=allow,execute_shell=ask,*=ask"
            )
        words[name] = word
    if not words:
        raise ProfileError("Give at least one command=allow|ask|deny.")
    if len(words) > MAX_POLICY_ENTRIES:
        raise ProfileError(f"A tool policy has at most {MAX_POLICY_ENTRIES} entries.")
    return words


def _servers(value: str) -> list[str]:
    """A list of MCP server names (`none`: no server on)."""
    if value.lower() in ("none", "-", "[]"):
        return []
    names: list[str] = []
    for name in filter(None, (p.strip() for p in re.split(r"[,\s]+", value))):
        if not _SERVER_RE.fullmatch(name):
            raise ProfileError(
                f"'{name[:40]}' is not an MCP server name, e.g. profile set mcp_servers docs,github"
            )
        if name not in names:
            names.append(name)
    if len(names) > MAX_MCP_SERVERS:
        raise ProfileError(f"At most {MAX_MCP_SERVERS} MCP servers.")
    return names


def shown(field: str, value: Any) -> str:
    """A profile value in words."""
    if value is None:
        return "(the setting)"
    if field == "budget_usd":
        return f"${value:.2f}"
    if field == "tool_policy":
        return ",".join(f"{name}={word}" for name, word in value.items())
    if field == "mcp_servers":
        return ", ".join(value) if value else "none"
    return str(value)


# ---------------------------------------------------------------------------- sessions


def apply(fields: dict[str, Any], profile: ChannelProfile | None) -> dict[str, Any]:
    """The fields of a new session with `profile`'s defaults added (a value already in `fields`,
    from the command, wins): name, role, budget, and the `SessionProfile`. (Its continuous
    limit is the caller's: see `continuous_limit`.)"""
    if profile is None or profile.empty:
        return fields
    out = dict(fields)
    for field in ("ai_name", "ai_role", "budget_usd"):
        if out.get(field) is None and getattr(profile, field) is not None:
            out[field] = getattr(profile, field)
    snapshot = SessionProfile(
        channel=profile.key,
        smart_llm=profile.smart_llm,
        fast_llm=profile.fast_llm,
        memory_scope=profile.memory_scope,
        tool_policy=profile.tool_policy,
        mcp_servers=profile.mcp_servers,
        budget_usd=profile.budget_usd,
    )
    if snapshot.model_dump(exclude={"channel"}, exclude_none=True):
        out["profile"] = snapshot
    return out


def continuous_limit(profile: ChannelProfile | None, settings: Settings) -> int:
    """The cycle limit of a continuous run started without one: the profile's, else
    CONTINUOUS_LIMIT."""
    if profile is not None and profile.continuous_limit is not None:
        return profile.continuous_limit
    return settings.continuous_limit


def merged_policy(settings: Settings, words: dict[str, str]) -> dict[str, str]:
    """TOOL_POLICY with a profile's words on top; what TOOL_POLICY denies stays denied (an
    admin's deny wins over a channel's allow)."""
    merged = {**settings.tool_policy, **words}
    for name in words:
        if policy.configured(name, settings) == "deny" and name != policy.FINISH:
            merged[name] = "deny"
    return merged


def session_settings(settings: Settings, session: Session) -> Settings:
    """The settings a session works with: `settings`, with its profile's approval policy, models
    and MCP servers (those it leaves out are denied: `SERVER__*=deny`); the same object when
    its profile changes nothing."""
    profile = session.profile
    if profile is None:
        return settings
    update: dict[str, Any] = {}
    if profile.tool_policy:
        update["tool_policy"] = merged_policy(settings, dict(profile.tool_policy))
    if profile.mcp_servers is not None and (settings.mcp_servers or settings.mcp_config is not None):
        from bot.mcp_servers import SEPARATOR

        off = {
            f"{name}{SEPARATOR}*": "deny"
            for name in settings.mcp_server_names
            if name not in profile.mcp_servers
        }
        if off:
            update["tool_policy"] = {**update.get("tool_policy", settings.tool_policy), **off}
    if profile.smart_llm:
        update["smart_llm"] = profile.smart_llm
    if profile.fast_llm:
        update["fast_llm"] = profile.fast_llm
    return settings.model_copy(update=update) if update else settings


def model_for(llm: LLMClient, session: Session, role: str) -> str:
    """The model of `role` ('smart': execution, 'fast': tasks) for `session`: its profile's,
    else the client's (SMART_LLM / FAST_LLM, as --gpt3only / --gpt4only choose)."""
    chosen = llm.model_for(role, session.llm_mode)
    profile = session.profile
    if profile is None:
        return chosen
    fast = session.llm_mode == "fast" or (session.llm_mode == "default" and role == "fast")
    return (profile.fast_llm if fast else profile.smart_llm) or chosen


def profile_lines(profile: ChannelProfile) -> list[str]:
    """Every field of a profile that is set, `label: value` (for check-config and lists)."""
    return [
        f"{LABELS[field]}: {shown(field, getattr(profile, field))}"
        for field in PROFILE_FIELDS
        if getattr(profile, field) is not None
    ]
