"""The step buttons and the feedback modal.

Buttons are `DynamicItem`s: discord.py rebuilds one from any clicked `custom_id` matching the
template, so a button posted before a restart still works once `add_dynamic_items` registered
the class at start-up. The modal's submission is handled statelessly too (see `app.py`).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import discord

from adapters.discord.limits import BUTTON_LABEL, INPUT_LABEL, INPUT_MAX, MODAL_TITLE
from bot.presenter import ids
from bot.presenter.ids import Button
from bot.presenter.views import DecisionOption
from bot.text import clip

STYLES: dict[str, discord.ButtonStyle] = {
    "approve": discord.ButtonStyle.success,
    "approve_n": discord.ButtonStyle.primary,
    "allow_tool": discord.ButtonStyle.secondary,
    "feedback": discord.ButtonStyle.secondary,
    "pause": discord.ButtonStyle.secondary,
    "stop": discord.ButtonStyle.danger,
}


FEEDBACK_INPUT = "feedback"  # the text input of the feedback form


class ClickHandler(Protocol):
    async def on_button(self, interaction: discord.Interaction[Any], click: Button) -> None: ...


class HasHandlers(Protocol):
    handlers: ClickHandler


class DecisionButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=ids.TEMPLATE):
    """One decision on one step of one session; the custom id holds nothing else."""

    def __init__(self, click: Button, label: str | None = None) -> None:
        self.click = click
        super().__init__(
            discord.ui.Button(
                label=clip(label or click.action.replace("_", " ").title(), BUTTON_LABEL),
                style=STYLES.get(click.action, discord.ButtonStyle.secondary),
                custom_id=ids.button_id(click.action, click.session_id, click.step_no, click.count),
            )
        )

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: re.Match[str],
        /,
    ) -> DecisionButton:
        label = getattr(item, "label", None)
        return cls(ids.of_match(match), label=label)

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client: HasHandlers = interaction.client
        await client.handlers.on_button(interaction, self.click)


def decision_buttons(session_id: str, step_no: int, options: list[DecisionOption]) -> list[DecisionButton]:
    """The buttons of a step, at most 25 (five rows of five)."""
    return [
        DecisionButton(Button(option.action, session_id, step_no, option.count), label=option.label)
        for option in options[:25]
    ]


def decision_view(session_id: str, step_no: int, options: list[DecisionOption]) -> discord.ui.View | None:
    """The buttons of a step in a view under an embed (None: no buttons, which also removes them
    on an edit); a Components V2 layout puts `decision_buttons` in its container instead."""
    if not options:
        return None
    view = discord.ui.View(timeout=None)
    for button in decision_buttons(session_id, step_no, options):
        view.add_item(button)
    return view


class FeedbackModal(discord.ui.Modal):
    """Asks for the feedback. Its submission is handled from the raw interaction (by custom id),
    so this object only describes the form; `on_submit` has nothing to do."""

    def __init__(self, session_id: str, step_no: int) -> None:
        super().__init__(
            title=clip(f"Feedback on step {step_no} of {session_id}", MODAL_TITLE),
            timeout=15 * 60,
            custom_id=ids.button_id("feedback", session_id, step_no),
        )
        self.text: discord.ui.TextInput[FeedbackModal] = discord.ui.TextInput(
            label=clip("What should the agent do instead?", INPUT_LABEL),
            style=discord.TextStyle.paragraph,
            custom_id=FEEDBACK_INPUT,
            placeholder="The command is skipped and the agent reads this.",
            max_length=INPUT_MAX,
            required=True,
        )
        self.add_item(self.text)

    async def on_submit(self, interaction: discord.Interaction[Any], /) -> None:
        return None


def modal_values(data: Any) -> dict[str, str]:
    """custom_id -> value of the text inputs of a MODAL_SUBMIT (action rows or labels)."""
    found: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == 4 and "custom_id" in node:
                found[str(node["custom_id"])] = str(node.get("value") or "")
            for key in ("components", "component"):
                if key in node:
                    walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk((data or {}).get("components", []))
    return found
