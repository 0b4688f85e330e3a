"""What a Discord component carries: ids only (at most 100 characters), parsed back on a click.

A button's `custom_id` is `autogpt:<action>:<session id>:<step no>[:<count>]`; the feedback
modal's is `autogpt-feedback:<session id>:<step no>`. The session and its owner are looked up
on every click, never taken from the id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

MAX_CUSTOM_ID: Final = 100
BUTTON_TEMPLATE: Final = (
    r"autogpt:(?P<action>[a-z_]{1,16}):(?P<sid>[A-Za-z0-9_-]{1,40})"
    r":(?P<step>[0-9]{1,7})(?::(?P<count>[0-9]{1,3}))?"
)
MODAL_PATTERN: Final = re.compile(r"autogpt-feedback:(?P<sid>[A-Za-z0-9_-]{1,40}):(?P<step>[0-9]{1,7})")
FEEDBACK_INPUT: Final = "feedback"


@dataclass(frozen=True)
class Click:
    action: str
    session_id: str
    step_no: int
    count: int = 1


def button_id(action: str, session_id: str, step_no: int, count: int = 1) -> str:
    custom_id = f"autogpt:{action}:{session_id}:{step_no}" + (f":{count}" if count > 1 else "")
    if len(custom_id) > MAX_CUSTOM_ID or not re.fullmatch(BUTTON_TEMPLATE, custom_id):
        raise ValueError(f"cannot make a button id of {action!r}, {session_id!r}, {step_no}")
    return custom_id


def parse_button(match: re.Match[str]) -> Click:
    return Click(
        action=match["action"],
        session_id=match["sid"],
        step_no=int(match["step"]),
        count=int(match["count"] or 1),
    )


def modal_id(session_id: str, step_no: int) -> str:
    return f"autogpt-feedback:{session_id}:{step_no}"


def parse_modal(custom_id: str) -> tuple[str, int] | None:
    match = MODAL_PATTERN.fullmatch(custom_id)
    return (match["sid"], int(match["step"])) if match else None
