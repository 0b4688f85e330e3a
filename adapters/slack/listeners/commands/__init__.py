from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from adapters.slack import ids
from adapters.slack.listeners.commands.autogpt import autogpt_command


def register(app: AsyncApp) -> None:
    app.command(ids.COMMAND)(autogpt_command)
