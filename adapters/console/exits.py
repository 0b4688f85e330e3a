"""The console's exit codes (`autogpt-bot --help` lists them; README.md too). A module of its own,
so the command line can say them without loading the core."""

from __future__ import annotations

EXIT_FINISHED = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_STOPPED = 3
EXIT_LIMIT = 4
EXIT_WAITING = 5
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a program ended by Ctrl-C

#: What each exit code means (`autogpt-bot --help` lists them; README.md too).
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_FINISHED, "finished (or nothing left to do)"),
    (EXIT_ERROR, "an error (the LLM or the session store could not be reached, an unknown session, ...)"),
    (EXIT_CONFIG, "a usage or configuration error"),
    (EXIT_STOPPED, "stopped by you"),
    (EXIT_LIMIT, "paused by a limit or budget: continue it with --resume ID"),
    (EXIT_WAITING, "waiting for a decision when input ended: continue it with --resume ID"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C): the session is saved; continue it with --resume ID"),
)
