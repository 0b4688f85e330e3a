"""Discord's limits without a network: every view, however long its text, renders to a message
Discord accepts (checked with the fake's validators); ids, replies, settings and set-up checks."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.discord import render
from adapters.discord.adapter import PERMISSIONS, configured, invite_url
from adapters.discord.app import strip_mention
from adapters.discord.components import FeedbackModal, modal_values
from adapters.discord.limits import CONTENT, Code, EmbedSpec, reply_chunks, split_text
from adapters.discord.settings import DiscordSettings
from bot.models import Thoughts
from bot.presenter.views import (
    DecisionOption,
    NoticeView,
    ResultView,
    SessionHeaderView,
    StepView,
    SummaryView,
    TaskListView,
    View,
)
from tests.fakes.discord_api import check_message, check_modal

OPTIONS = [
    DecisionOption(action="approve", label="Approve"),
    DecisionOption(action="approve_n", label="Approve next 100", count=100),
    DecisionOption(action="feedback", label="Feedback"),
    DecisionOption(action="stop", label="Stop"),
]


RENDER = render.DiscordRenderer()


def payload(msg: render.Rendered) -> dict[str, Any]:
    """The JSON discord.py sends for a rendered message."""
    return {
        "content": msg.content,
        "embeds": [e.to_dict() for e in msg.embeds],
        "components": msg.view.to_components() if msg.view is not None else [],
    }


def problems(msg: render.Rendered) -> list[str]:
    return check_message(payload(msg), "message", files=len(msg.attachments))


def step_view(n: int, status: str = "pending", **kw: Any) -> StepView:
    return StepView(
        session_id="k3f9qa",
        step_no=7,
        thoughts=Thoughts(
            text="t" * n, reasoning="r" * n, plan="- p\n" * (n // 4), criticism="c" * n, speak="s" * n
        ),
        command="write_to_file" * max(1, n // 500),
        args={"filename": "a.txt", "text": "x" * n},
        status=status,  # type: ignore[arg-type]
        options=OPTIONS if status == "pending" else [],
        decided_by="Alice" * max(1, n // 1000),
        decision="approved",
        decided_at=datetime(2026, 1, 2, tzinfo=UTC),
        note="n" * n,
        **kw,
    )


def long_views(n: int) -> list[View]:
    return [
        SessionHeaderView(
            session_id="k3f9qa",
            owner="o" * min(n, 300),
            ai_name="A" * min(n, 300),
            ai_role="r" * n,
            goals=["g" * n] * 5,
            mode="step by step",
            title="T" * min(n, 500) if n > 100 else None,
        ),
        TaskListView(session_id="k3f9qa", tasks=["t" * n] * 20, done=["d" * n] * 20),
        *[
            step_view(n, s)
            for s in ("pending", "auto", "decided", "running", "done", "invalid", "interrupted")
        ],
        ResultView(
            session_id="k3f9qa", step_no=3, command="c" * min(n, 300), output="o\n" * n, ok=n % 2 == 0
        ),
        SummaryView(session_id="k3f9qa", outcome="finished", reason="r" * n, cycles=n, cost_usd=n / 7),
        NoticeView(session_id="k3f9qa", level="error", text="e" * n),
    ]


@pytest.mark.parametrize("n", [0, 1, 50, 1000, 1025, 4097, 6001, 20_000, 1_000_000])
def test_every_view_fits_discord_limits(n: int) -> None:
    for view in long_views(n):
        msg = RENDER.step(view, attach_args=True) if isinstance(view, StepView) else RENDER.render(view)
        assert problems(msg) == [], (type(view).__name__, problems(msg))


@settings(max_examples=60, deadline=None)
@given(
    text=st.text(min_size=0, max_size=9000),
    fence=st.booleans(),
    fields=st.lists(st.text(min_size=1, max_size=1500), max_size=30),
)
def test_any_embed_fits(text: str, fence: bool, fields: list[str]) -> None:
    spec = EmbedSpec(title=text, description=text, footer=text)
    for i, value in enumerate(fields):
        spec.add(f"field {i} {text}", value)
    if fence:
        spec.add("code", Code("```" + text + "```", "json"))
    embed = spec.build()
    assert check_message({"embeds": [embed.to_dict()]}, "embed", editing=True) == []


def test_a_long_result_is_shortened_and_attached_in_full() -> None:
    output = "".join(f"line {i}\n" for i in range(5000))
    msg = RENDER.result(ResultView(session_id="k3f9qa", step_no=2, command="read_file", output=output))
    assert problems(msg) == []
    [attached] = msg.attachments
    assert attached.filename == "result-k3f9qa-step2.txt" and attached.content == output.encode()
    assert "line 0" in msg.embeds[0].description and "line 4999" not in msg.embeds[0].description  # type: ignore[operator]
    short = RENDER.result(ResultView(session_id="k3f9qa", step_no=2, command="read_file", output="hello"))
    assert short.attachments == [] and "hello" in short.embeds[0].description  # type: ignore[operator]


def test_code_blocks_always_close() -> None:
    hostile = step_view(10)
    hostile.args = {"text": "```" * 800}
    fields = RENDER.step(hostile).embeds[0].fields
    value = next(f.value for f in fields if f.name == "Command") or ""
    assert value.endswith("\n```") and value.count("```") == 2


def test_step_buttons_carry_only_ids_and_decided_steps_have_none() -> None:
    msg = RENDER.step(step_view(10))
    assert msg.view is not None
    custom_ids = [c["custom_id"] for row in msg.view.to_components() for c in row["components"]]
    assert custom_ids == [
        "autogpt:approve:k3f9qa:7",
        "autogpt:approve_n:k3f9qa:7:100",
        "autogpt:feedback:k3f9qa:7",
        "autogpt:stop:k3f9qa:7",
    ]
    assert RENDER.step(step_view(10, "decided")).view is None
    decided = RENDER.step(step_view(10, "decided")).embeds[0].description or ""
    assert "Alice approved" in decided and "<t:" in decided


def test_the_feedback_modal_fits_and_its_values_are_read() -> None:
    modal = FeedbackModal("k3f9qa", 12)
    assert check_modal(modal.to_dict(), "modal") == []
    rows = {"components": [{"type": 1, "components": [{"type": 4, "custom_id": "feedback", "value": "no"}]}]}
    labels = {"components": [{"type": 18, "component": {"type": 4, "custom_id": "feedback", "value": "yes"}}]}
    assert modal_values(rows) == {"feedback": "no"} and modal_values(labels) == {"feedback": "yes"}


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=0, max_size=7000))
def test_replies_are_split_within_the_content_limit(text: str) -> None:
    chunks = reply_chunks(text)
    assert chunks and all(0 < len(c) <= CONTENT for c in chunks)
    for chunk in chunks:
        if chunk.startswith("```"):
            assert chunk.endswith("```") and chunk.count("```") == 2


def test_split_text_keeps_every_line() -> None:
    text = "\n".join(f"{i:04d} " + "w" * 70 for i in range(200))
    chunks = split_text(text)
    assert all(len(c) <= CONTENT for c in chunks)
    assert "\n".join(chunks).split("\n") == text.split("\n")


def test_strip_mention() -> None:
    assert strip_mention("<@123> goal a; b", 123) == "goal a; b"
    assert strip_mention("<@!123>   status  k3f9qa", 123) == "status  k3f9qa"
    assert strip_mention("goal x\n<@123> y", 123) == "goal x\n  y"


def make(**values: Any) -> DiscordSettings:
    return DiscordSettings(_env_file=None, **values)  # type: ignore[call-arg]


def test_configured_says_what_is_missing() -> None:
    assert "DISCORD_BOT_TOKEN" in (configured(make()) or "")
    assert configured(make(bot_token="t")) is None
    assert "DISCORD_API_URL" in (configured(make(bot_token="t", api_url="discord.com")) or "")
    bad_gateway = make(bot_token="t", gateway_url="https://gateway.discord.gg")
    assert "DISCORD_GATEWAY_URL" in (configured(bad_gateway) or "")


def test_settings_read_the_discord_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_ADMIN_USER_IDS", "111, 222")
    monkeypatch.setenv("DISCORD_MESSAGE_CONTENT", "true")
    s = make()
    assert s.admin_user_ids == ["111", "222"] and s.message_content is True
    assert s.api_url == "https://discord.com/api/v10"
    assert s.gateway_url == "wss://gateway.discord.gg/"


def test_import_discord_in_the_package_is_discord_py() -> None:
    import adapters.discord.app as app

    assert vars(app)["discord"] is discord and hasattr(discord, "Client") and discord.version_info.major == 2
    assert Path(discord.__file__).parent.name == "discord" and "site-packages" in discord.__file__


def test_the_walkthrough_invite_link_has_the_permissions_the_bot_needs() -> None:
    doc = (Path(__file__).resolve().parent.parent / "deploy" / "discord.md").read_text()
    assert invite_url("YOUR_APPLICATION_ID") in doc
    rows = re.findall(r"^\| ([A-Z][\w ]+?) \| (\d+) \|", doc, re.M)
    assert sum(int(value) for _, value in rows) == PERMISSIONS.value == 311385246720
    named = discord.Permissions(
        **{name.lower().replace(" ", "_").replace("channels", "channel"): True for name, _ in rows}
    )
    assert named.value == PERMISSIONS.value
