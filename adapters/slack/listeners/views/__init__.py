from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from adapters.slack import ids
from adapters.slack.listeners.views.feedback import feedback_submitted


def register(app: AsyncApp) -> None:
    app.view(ids.FEEDBACK_VIEW)(feedback_submitted)
