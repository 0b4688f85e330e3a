"""The ids Slack routes by: the slash command, the buttons' action ids, the feedback modal's.

A button's `value` is the core's button id (`bot.presenter.ids`): the session, the step, the
action and, for *Approve next N*, the N its label showed. Everything else is looked up when it
is pressed, so a button keeps working after a restart.
"""

from __future__ import annotations

from typing import Final

COMMAND: Final = "/autogpt"

APPROVE: Final = "autogpt_approve"
APPROVE_N: Final = "autogpt_approve_n"
FEEDBACK: Final = "autogpt_feedback"
STOP: Final = "autogpt_stop"
PAUSE: Final = "autogpt_pause"
ALLOW_TOOL: Final = "autogpt_allow_tool"
RETRY: Final = "autogpt_retry"
HOME_STOP: Final = "autogpt_home_stop"

#: the core's decision action -> the button's action id (unique within a message's buttons)
ACTION_IDS: Final[dict[str, str]] = {
    "approve": APPROVE,
    "approve_n": APPROVE_N,
    "feedback": FEEDBACK,
    "stop": STOP,
    "pause": PAUSE,
    "allow_tool": ALLOW_TOOL,
    "retry": RETRY,
}
DECISIONS: Final = frozenset(
    {APPROVE, APPROVE_N, STOP, PAUSE, ALLOW_TOOL, RETRY}
)  # decided at once (feedback opens a form)

FEEDBACK_VIEW: Final = "autogpt_feedback_modal"  # the modal's callback_id
FEEDBACK_BLOCK: Final = "autogpt_feedback_block"
FEEDBACK_INPUT: Final = "autogpt_feedback_text"
