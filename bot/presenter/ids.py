"""What a button (or a form) carries: ids only, `autogpt:<action>:<session>:<step>[:<count>]`,
encoded and parsed here for every adapter. At most 100 characters, which every chat platform's
button takes. The session and its owner are looked up on every click,
never taken from the id, so a button keeps working after a restart."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from bot.grammar import SESSION_ID_PATTERN

MAX_ID: Final = 100
ACTIONS: Final = ("approve", "approve_n", "allow_tool", "feedback", "retry", "stop", "pause")
#: a regular expression of a button id (for a platform library that routes clicks by pattern)
TEMPLATE: Final = (
    rf"autogpt:(?P<action>{'|'.join(ACTIONS)}):(?P<sid>{SESSION_ID_PATTERN})"
    r":(?P<step>[0-9]{1,6})(?::(?P<count>[0-9]{1,3}))?"
)
_BUTTON: Final = re.compile(TEMPLATE)


@dataclass(frozen=True)
class Button:
    """One decision on one step of one session."""

    action: str
    session_id: str
    step_no: int
    count: int = 1

    def encode(self) -> str:
        text = f"autogpt:{self.action}:{self.session_id}:{self.step_no}"
        return text + (f":{self.count}" if self.count > 1 else "")


def button_id(action: str, session_id: str, step_no: int, count: int = 1) -> str:
    text = Button(action, session_id, step_no, count).encode()
    if len(text) > MAX_ID or not _BUTTON.fullmatch(text):
        raise ValueError(f"cannot make a button id of {action!r}, {session_id!r}, {step_no}")
    return text


def parse(text: object) -> Button | None:
    """The button an id stands for; None when it is not one of ours."""
    if not isinstance(text, str) or (m := _BUTTON.fullmatch(text)) is None:
        return None
    return of_match(m)


def of_match(m: re.Match[str]) -> Button:
    return Button(m["action"], m["sid"], int(m["step"]), int(m["count"] or 1))
