"""Discord: the AutoGPT agent in a server, through discord.py (set-up: deploy/discord.md).
`adapter.py` is the `ChatAdapter` (DiscordAdapter), `settings.py` its settings, `app.py` what
users do, `render.py` how views look. Nothing is imported here, so reading the settings does not
load discord.py."""
