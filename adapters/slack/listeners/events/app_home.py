"""The App Home tab: the user's sessions with their state and spend, a Stop button each, and
their schedules with the next run."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncBoltContext

from adapters.slack.deps import SlackDeps, deps_of
from bot.adapter import PlatformError

log = logging.getLogger(__name__)


async def home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
    if event.get("tab", "home") != "home" or not event.get("user"):
        return
    deps = deps_of(context)
    async with deps.inflight():
        await publish_home(deps, str(event["user"]), context.team_id)


async def publish_home(deps: SlackDeps, user: str, team: str | None, notice: str | None = None) -> None:
    view = await deps.core.service.sessions_of(deps.actor(user), team, notice)
    try:
        await deps.adapter.publish_home(user, deps.adapter.renderer.sessions(view))
    except PlatformError as exc:
        log.warning("could not publish the Home tab of %s: %s", user, exc)
