"""Discord's settings, `DISCORD_*`: read by the adapter alone (bot/settings.py knows no platform)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict

from bot.settings import BaseConfig, CommaList, setting


class DiscordSettings(BaseConfig):
    model_config = SettingsConfigDict(
        env_prefix="DISCORD_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )
    section: ClassVar[str] = "Discord"

    bot_token: SecretStr | None = setting(None, "Discord bot token; setting it turns Discord on")
    api_url: str = setting(
        "https://discord.com/api/v10",
        "Base URL of the Discord REST API (interaction callbacks and webhooks use it too)",
    )
    gateway_url: str = setting("wss://gateway.discord.gg/", "Address of the Discord gateway websocket")
    message_content: bool = setting(
        False,
        "Owner's plain replies in a session thread count as feedback (needs the Message Content intent)",
    )
    admin_user_ids: CommaList = setting(
        [], "Discord user ids who may decide on any Discord session, comma list"
    )
    components_v2: bool = setting(
        True,
        "Show steps, results, task lists and summaries with Discord's Components V2 layouts "
        "(a container per message, buttons inside); false: embeds",
    )
