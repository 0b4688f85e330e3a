"""Slack's settings, `SLACK_*`: read by the adapter alone (bot/settings.py knows no platform)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from bot.settings import BaseConfig, CommaList, setting


class SlackSettings(BaseConfig):
    model_config = SettingsConfigDict(
        env_prefix="SLACK_", env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )
    section: ClassVar[str] = "Slack"

    bot_token: SecretStr | None = setting(None, "Slack bot token (xoxb-...); setting it turns Slack on")
    app_token: SecretStr | None = setting(None, "Slack app-level token for Socket Mode (xapp-...)")
    mode: Literal["socket", "http"] = setting(
        "socket", "socket (Socket Mode: no public URL needed) or http (/slack/events)"
    )
    signing_secret: SecretStr | None = setting(
        None, "Slack signing secret; SLACK_MODE=http checks every request with it"
    )
    http_port: int = setting(3000, "Port of /slack/events when SLACK_MODE=http (0: any)", ge=0, le=65535)
    api_url: str = setting("https://slack.com/api/", "Base URL of the Slack Web API")
    admin_user_ids: CommaList = setting([], "Slack user ids who may decide on any Slack session, comma list")
