"""Which commands need a human: TOOL_POLICY, and a session's own "Always allow <tool> here".

Each command is `allow` (runs without a human, even step by step), `ask` (waits for an approval;
"approve next N" and continuous mode give it in advance, except for a command with effects
outside the session, which needs a human's approval of that very step) or `deny` (never offered
to the LLM). A command's word is its own entry in TOOL_POLICY, else the `*` entry, else `ask`: so
without a policy everything asks step by step and a continuous run stops only for commands with
outside effects, as before. A session's grant makes a command `allow` in that session only; an
admin's `deny` still wins. `finish` is always offered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from bot.models import Session
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.tools import ToolRegistry

Word = Literal["allow", "ask", "deny"]
FINISH = "finish"
ANY = "*"


def configured(tool: str, settings: Settings) -> Word:
    """What TOOL_POLICY says of `tool`."""
    policy = settings.tool_policy
    word: Word = policy.get(tool, policy.get(ANY, "ask"))
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
        source = (
            "" if tool.name in settings.tool_policy else (" (from *)" if ANY in settings.tool_policy else "")
        )
        off = "" if tool.name in offered or word == "deny" else "  [off: not enabled by its settings]"
        lines.append(f"  {tool.name}{mark}: {word}{source}{off}")
    unknown = sorted(set(settings.tool_policy) - {t.name for t in tools.all()} - {ANY})
    if unknown:
        lines.append("Names in TOOL_POLICY that are no command: " + ", ".join(unknown))
    lines.append("A session's owner can also choose 'Always allow <command> here' on a waiting step.")
    return "\n".join(lines)


def _shown(settings: Settings) -> str:
    return ",".join(f"{name}={word}" for name, word in settings.tool_policy.items())
