"""The Stop button of a session in the App Home tab."""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncBoltContext

from adapters.slack.deps import deps_of
from adapters.slack.listeners.events.app_home import publish_home
from bot.decisions import Decision
from bot.presenter.ids import parse


async def home_stop_button(
    ack: AsyncAck, body: dict[str, Any], action: dict[str, Any], context: AsyncBoltContext
) -> None:
    deps = deps_of(context)
    async with deps.inflight():
        await ack()
        user = body["user"]["id"]
        clicked = parse(action.get("value"))
        if clicked is None or clicked.action != "stop":
            notice = "That button is not one the bot understands; nothing changed."
        else:
            outcome = await deps.core.service.decide(
                clicked.session_id, deps.actor(user), Decision(action="stop")
            )
            notice = outcome.message
        await publish_home(deps, user, context.team_id, notice)
