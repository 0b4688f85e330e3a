"""Discord: the AutoGPT agent in a server, through discord.py.

    from adapters.discord import DiscordAdapter, DiscordStartError, configured, serve

`configured(settings)` is None when Discord can start, else why not (one line);
`serve(core, settings, stop)` runs it until `stop` is set. Set-up: deploy/discord.md.
"""

from __future__ import annotations

from adapters.discord.serve import (
    PERMISSIONS,
    DiscordAdapter,
    DiscordStartError,
    configured,
    invite_url,
    serve,
)

__all__ = ["PERMISSIONS", "DiscordAdapter", "DiscordStartError", "configured", "invite_url", "serve"]
