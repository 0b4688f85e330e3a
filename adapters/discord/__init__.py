"""Discord: the AutoGPT agent in a server, through discord.py. Set-up: deploy/discord.md.
`adapter.py` is the `ChatAdapter`, `app.py` what users do, `render.py` how views look."""

from __future__ import annotations

from adapters.discord.adapter import (
    PERMISSIONS,
    DiscordAdapter,
    DiscordStartError,
    configured,
    invite_url,
    serve,
)
from adapters.discord.settings import DiscordSettings

__all__ = [
    "PERMISSIONS",
    "DiscordAdapter",
    "DiscordSettings",
    "DiscordStartError",
    "configured",
    "invite_url",
    "serve",
]
