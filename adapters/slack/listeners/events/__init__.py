from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from adapters.slack.listeners.events.app_home import home_opened
from adapters.slack.listeners.events.app_mention import app_mention
from adapters.slack.listeners.events.thread_reply import thread_message


def register(app: AsyncApp) -> None:
    app.event("message")(thread_message)
    app.event("app_mention")(app_mention)
    app.event("app_home_opened")(home_opened)
