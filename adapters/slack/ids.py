"""What Slack's buttons, modals and commands carry: action ids, callback ids and opaque values.

A button's `value` holds only ids, `"<session id>:<step no>"` (and, for *Approve next N*, the N
its label showed), so a button keeps working after a restart: everything else is looked up in
the store when it is pressed.
"""

from __future__ import annotations

import re
from typing import Final

COMMAND: Final = "/autogpt"

APPROVE: Final = "autogpt_approve"
APPROVE_N: Final = "autogpt_approve_n"
FEEDBACK: Final = "autogpt_feedback"
STOP: Final = "autogpt_stop"
PAUSE: Final = "autogpt_pause"
HOME_STOP: Final = "autogpt_home_stop"

#: button action id -> the core's decision action
DECISIONS: Final[dict[str, str]] = {APPROVE: "approve", APPROVE_N: "approve_n", STOP: "stop", PAUSE: "pause"}
ACTION_IDS: Final[dict[str, str]] = {
    "approve": APPROVE,
    "approve_n": APPROVE_N,
    "feedback": FEEDBACK,
    "stop": STOP,
    "pause": PAUSE,
}

FEEDBACK_VIEW: Final = "autogpt_feedback_modal"  # the modal's callback_id
FEEDBACK_BLOCK: Final = "autogpt_feedback_block"
FEEDBACK_INPUT: Final = "autogpt_feedback_text"

MIN_APPROVE_N: Final = 2
MAX_APPROVE_N: Final = 100  # the range of APPROVE_NEXT_N

_VALUE = re.compile(r"^([a-z0-9]{6}):([0-9]{1,6})(?::([0-9]{1,3}))?$")
_SESSION = re.compile(r"^[a-z0-9]{6}$")


def step_value(session_id: str, step_no: int, count: int = 1) -> str:
    """The value of a step's button."""
    return f"{session_id}:{step_no}" + (f":{count}" if count > 1 else "")


def parse_step_value(value: object) -> tuple[str, int, int] | None:
    """(session id, step no, count) from a button value or a modal's metadata; None if malformed."""
    if not isinstance(value, str) or (m := _VALUE.match(value)) is None:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3) or 1)


def session_value(value: object) -> str | None:
    """A session id from a Home tab button's value; None if malformed."""
    return value if isinstance(value, str) and _SESSION.match(value) else None
