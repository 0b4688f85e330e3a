"""``FakeDiscord``: the gateway, the REST API and interactions of one fake Discord guild, on a
``LoopServer`` (tests/fakes/server.py) in the test's event loop."""

from __future__ import annotations

from tests.fakes.discord.interactions import Interactions


class FakeDiscord(Interactions):
    """A local Discord for the real discord.py client (point it at ``api_url`` and ``gateway_url``).

    Layers, each in its module: the guild's state (``state``), the gateway websocket and events
    (``gateway``), the REST routes (``rest``), and interactions with their callbacks
    (``interactions``). Tests act as users with ``say``, ``click``, ``submit_modal`` and ``slash``,
    script failures with ``fail`` and ``rate_limit``, and expect ``problems()`` to be empty.

    Keyword arguments: ``allow_privileged`` (the privileged intents enabled in the "Developer
    Portal"), ``heartbeat_interval_ms`` (sent in HELLO) and ``host`` (127.0.0.1)."""

    def problems(self) -> list[str]:
        """What every test expects empty: limit violations, protocol errors, unanswered interactions."""
        return self.violations + [f"interaction {i} was never answered" for i in self.unanswered()]
