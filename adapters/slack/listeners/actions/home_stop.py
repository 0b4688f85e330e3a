"""The Stop button of a session in the App Home tab."""

from __future__ import annotations

from adapters.slack.deps import NOT_UNDERSTOOD, Click, SlackDeps, on_click
from adapters.slack.listeners.events.app_home import publish_home
from bot.decisions import Decision


@on_click("stop")
async def home_stop_button(deps: SlackDeps, click: Click) -> None:
    notice = NOT_UNDERSTOOD
    if click.button is not None:
        decision = Decision(action="stop")
        notice = (
            await deps.core.service.decide(click.button.session_id, deps.actor(click.user), decision)
        ).message
    await publish_home(deps, click.user, click.team, notice)
