"""The Bolt app: one set of listeners for Socket Mode and HTTP.

Listeners are plain module functions (see `listeners/`, one file each, as in Slack's Bolt
starter template) and find the core through `context["autogpt"]` (`deps.py`), put there by a
middleware; the same functions are registered on every app, whichever the mode.

Every listener acknowledges first (`await ack()`) and then works: Bolt answers Slack as soon as
`ack` is called, so Slack's 3-second rule holds whatever the LLM or the store is doing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from adapters.slack.deps import DEPS_KEY, NAME, SlackDeps
from adapters.slack.inbound import once
from adapters.slack.listeners import register_listeners
from bot.logs import bind


def build_app(deps: SlackDeps, logger: logging.Logger | None = None) -> AsyncApp:
    """The Bolt app, for either mode. Over HTTP every request's signature is checked with
    SLACK_SIGNING_SECRET (401 when it does not match or is older than five minutes)."""
    secret = deps.settings.signing_secret
    app = AsyncApp(
        client=deps.adapter.client,
        signing_secret=secret.get_secret_value() if secret else "",
        name="autogpt-bot",
        logger=logger or logging.getLogger("adapters.slack.bolt"),
        process_before_response=False,
    )

    async def attach(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> None:
        context[DEPS_KEY] = deps
        bind(user=context.user_id, platform=NAME)  # each event runs in its own task
        await next()

    app.use(once(deps.core.store))  # first: a request delivered twice runs once (inbound.py)
    app.use(attach)
    register_listeners(app)
    return app
