"""Which commands need a human: TOOL_POLICY, and a session's own "Always allow <tool> here".

Each command is `allow` (runs without a human, even step by step), `ask` (waits for an approval;
"approve next N" and continuous mode give it in advance, except for a command with effects
outside the session, which needs a human's approval of that very step) or `deny` (never offered
to the LLM). A command's word is its own entry in TOOL_POLICY, else the longest pattern matching it
(`demo__*`: every tool of the MCP server demo), else the `*` entry, else `ask`: so
without a policy everything asks step by step and a continuous run stops only for commands with
outside effects, as before. A session's grant makes a command `allow` in that session only; an
admin's `deny` still wins. `finish` is always offered.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Literal

from bot.models import Session
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.tools import ToolRegistry

Word = Literal["allow", "ask", "deny"]
FINISH = "finish"
ANY = "*"


def is_pattern(name: str) -> bool:
    return name != ANY and any(c in name for c in "*?[")


def pattern_for(tool: str, settings: Settings) -> str | None:
    """The longest pattern of TOOL_POLICY (other than `*`) that `tool` matches, if any."""
    found = [p for p in settings.tool_policy if is_pattern(p) and fnmatchcase(tool, p)]
    return max(found, key=len) if found else None


def configured(tool: str, settings: Settings) -> Word:
    """What TOOL_POLICY says of `tool`: its own entry, else its longest pattern, else `*`."""
    policy = settings.tool_policy
    word: Word | None = policy.get(tool)
    if word is None:
        pattern = pattern_for(tool, settings)
        word = policy[pattern] if pattern is not None else policy.get(ANY, "ask")
    if word == "deny" and tool == FINISH:
        return "ask"
    return word


def word_for(tool: str, settings: Settings, session: Session | None = None) -> Word:
    """`tool`'s word in `session`: its grant, else the policy (whose `deny` wins over a grant)."""
    word = configured(tool, settings)
    if word != "deny" and session is not None and granted(session, tool):
        return "allow"
    return word


def denied(tool: str, settings: Settings) -> bool:
    return configured(tool, settings) == "deny"


def granted(session: Session, tool: str) -> bool:
    return any(g.tool == tool for g in session.grants)


def describe(settings: Settings, tools: ToolRegistry) -> str:
    """The effective policy, for admins (`help policy`, `check-config`): each command the agent
    could have, its word and why."""
    lines = [
        "Approval policy (TOOL_POLICY"
        + (f" = {_shown(settings)})" if settings.tool_policy else ", not set)"),
        "allow: runs without a human; ask: waits for an approval (approve next N and continuous mode "
        "give it in advance, except to commands marked *, which have effects outside the session); "
        "deny: never offered.",
    ]
    offered = {t.name for t in tools.available(settings)}
    for tool in tools.all():
        word = configured(tool.name, settings)
        mark = "*" if tool.outside_effects else ""
        pattern = pattern_for(tool.name, settings)
        source = (
            ""
            if tool.name in settings.tool_policy
            else f" (from {pattern})"
            if pattern is not None
            else (" (from *)" if ANY in settings.tool_policy else "")
        )
        off = "" if tool.name in offered or word == "deny" else "  [off: not enabled by its settings]"
        if off and (why := tool.withdrawn()) is not None:
            off = f"  [off for now: {why}]"
        lines.append(f"  {tool.name}{mark}: {word}{source}{off}")
    names = {t.name for t in tools.all()}
    unknown = sorted(n for n in set(settings.tool_policy) - names - {ANY} if not is_pattern(n))
    if unknown:
        lines.append("Names in TOOL_POLICY that are no command: " + ", ".join(unknown))
    unmatched = sorted(
        p for p in settings.tool_policy if is_pattern(p) and not any(fnmatchcase(n, p) for n in names)
    )
    if unmatched:
        lines.append("Patterns in TOOL_POLICY that match no command now: " + ", ".join(unmatched))
    lines.append("A session's owner can also choose 'Always allow <command> here' on a waiting step.")
    return "\n".join(lines)


def _shown(settings: Settings) -> str:
    return ",".join(f"{name}={word}" for name, word in settings.tool_policy.items())
