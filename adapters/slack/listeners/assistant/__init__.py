"""Slack's Agents & AI Apps surface (assistant threads), through Bolt's `AsyncAssistant`."""

from __future__ import annotations

from slack_bolt.async_app import AsyncApp

from adapters.slack.listeners.assistant.threads import build_assistant


def register(app: AsyncApp) -> None:
    app.assistant(build_assistant())
