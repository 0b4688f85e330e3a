"""Every listener of the app, registered the same way on a Socket Mode and an HTTP app."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from adapters.slack.listeners import actions, assistant, commands, events, views


def register_listeners(app: AsyncApp) -> None:
    assistant.register(app)  # a middleware: assistant threads' events stop there
    commands.register(app)
    actions.register(app)
    views.register(app)
    events.register(app)
