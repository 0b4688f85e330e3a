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
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped

from adapters.slack.deps import DEPS_KEY, NAME, SlackDeps
from adapters.slack.inbound import once
from adapters.slack.listeners import register_listeners
from bot.logs import bind


class _DropLog(logging.Filter):
    """Drops the records whose message is exactly `message`."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.message


def build_app(deps: SlackDeps, logger: logging.Logger | None = None) -> AsyncApp:
    """The Bolt app, for either mode. Over HTTP every request's signature is checked with
    SLACK_SIGNING_SECRET (401 when it does not match or is older than five minutes)."""
    secret = deps.settings.signing_secret
    logger = logger or logging.getLogger("adapters.slack.bolt")
    # Bolt's intended set-up for a client of our own (SLACK_API_URL, retries, one HTTP session):
    # `client=` alone, whose token the app then uses. But AsyncApp.__init__ also reads
    # SLACK_BOT_TOKEN from the environment when no `token=` is given, and then warns that this
    # token "will be unused" (right: the app uses the client's, from our settings). No choice of
    # arguments avoids that while the variable is set, as it is in a container, so that one
    # warning is dropped while the app is made. (Hiding the variable from os.environ instead
    # would race with other threads reading the environment: unsetenv is not thread-safe.)
    quiet = _DropLog(warning_client_prioritized_and_token_skipped())
    logger.addFilter(quiet)
    try:
        app = AsyncApp(
            client=deps.adapter.client,
            signing_secret=secret.get_secret_value() if secret else "",
            name="autogpt-bot",
            logger=logger,
            process_before_response=False,
        )
    finally:
        logger.removeFilter(quiet)

    async def attach(context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]) -> None:
        context[DEPS_KEY] = deps
        bind(user=context.user_id, platform=NAME)  # each event runs in its own task
        await next()

    app.use(once(deps.core.store))  # first: a request delivered twice runs once (inbound.py)
    app.use(attach)
    register_listeners(app)
    return app
