"""The environment of every process a tool starts (a shell command, a browser).

Never the bot's own: that holds the API keys and chat tokens. A tool's process gets PATH, LANG,
HOME set to its workspace (or a folder of its own), and only the variables an admin named in
SHELL_ENV_ALLOWLIST, minus any setting of the bot (a key or a token must not be passed on even
if someone lists it).
"""

from __future__ import annotations

import os
from pathlib import Path

from bot.settings import Settings, setting_names

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def tool_env(settings: Settings, home: Path) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": str(home),
        "LANG": os.environ.get("LANG") or "C.UTF-8",
    }
    bot_keys = setting_names()  # the core's and every adapter's
    for name in settings.shell_env_allowlist:
        if name.upper() in bot_keys or name in env:
            continue
        value = os.environ.get(name)
        if value is not None:
            env[name] = value
    return env
