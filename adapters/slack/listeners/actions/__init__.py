from __future__ import annotations

import re

from slack_bolt.async_app import AsyncApp

from adapters.slack import ids
from adapters.slack.listeners.actions.decision import decision_button
from adapters.slack.listeners.actions.feedback import feedback_button
from adapters.slack.listeners.actions.home_stop import home_stop_button


def register(app: AsyncApp) -> None:
    decisions = "|".join(re.escape(action_id) for action_id in sorted(ids.DECISIONS))
    app.action(re.compile(f"^(?:{decisions})$"))(decision_button)
    app.action(ids.FEEDBACK)(feedback_button)
    app.action(ids.HOME_STOP)(home_stop_button)
