"""The App Home tab: the user's sessions with their state and spend, a Stop button each, and
their schedules with the next run."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncBoltContext

from adapters.slack import blocks
from adapters.slack.app import SlackDeps, deps_of
from adapters.slack.platform import NAME
from bot.models import Session
from bot.schedules import Schedule
from bot.store.base import StoreError
from bot.views import PlatformError

log = logging.getLogger(__name__)


async def home_opened(event: dict[str, Any], context: AsyncBoltContext) -> None:
    if event.get("tab", "home") != "home" or not event.get("user"):
        return
    deps = deps_of(context)
    async with deps.inflight():
        await publish_home(deps, str(event["user"]), context.team_id)


async def publish_home(deps: SlackDeps, user: str, team: str | None, notice: str | None = None) -> None:
    sessions: list[Session] = []
    schedules: list[Schedule] = []
    try:
        sessions = [
            s
            for s in await deps.core.store.sessions_of(f"{NAME}:{user}")
            if team is None or s.place.team in (None, team)
        ]
        schedules = await deps.core.schedules.of(f"{NAME}:{user}")
    except StoreError as exc:
        notice = f"The session store is not reachable right now ({exc}); try again shortly."
    try:
        await deps.platform.publish_home(user, blocks.home_view(sessions, notice, schedules))
    except PlatformError as exc:
        log.warning("could not publish the Home tab of %s: %s", user, exc)
