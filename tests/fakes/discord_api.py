"""The fake Discord's public names, where tests have always imported them from: the fake itself
is the package tests/fakes/discord/ (its ``__all__`` lists them), the bot run against it
tests/fakes/discord_bot.py."""

from tests.fakes.discord import *  # noqa: F403
from tests.fakes.discord import __all__ as _fake_names
from tests.fakes.discord_bot import DiscordBot, discord_settings

__all__ = [*_fake_names, "DiscordBot", "discord_settings"]
