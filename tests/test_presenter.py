"""The presentation kit in bot/: one button-id codec, one clipper and splitter, the shared
wording, and the dispatch an adapter's rendering subclasses."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.models import Thoughts
from bot.presenter import wording
from bot.presenter.ids import TEMPLATE, Button, button_id, parse
from bot.presenter.render import Renderer
from bot.presenter.views import NoticeView, StepView, TaskListView
from bot.text import clip, split


def test_button_ids_carry_only_ids_and_parse_back() -> None:
    assert button_id("approve", "abc234", 4) == "autogpt:approve:abc234:4"
    assert button_id("approve_n", "abc234", 4, 5) == "autogpt:approve_n:abc234:4:5"
    assert parse("autogpt:approve_n:abc234:4:5") == Button("approve_n", "abc234", 4, 5)
    assert parse(Button("stop", "abc234", 0).encode()) == Button("stop", "abc234", 0)
    bad = ["", "abc234:4", "autogpt:approve:ABC234:4", "autogpt:delete:abc234:4", "autogpt:approve:abc234:x"]
    bad += ["autogpt:approve:abc234:4:5:6", "autogpt:approve:abc234:" + "9" * 9, None, 3]
    for text in bad:
        assert parse(text) is None, text
    with pytest.raises(ValueError):
        button_id("approve", "not an id", 1)
    assert len(button_id("approve_n", "abc234", 999_999, 100)) <= 100 and "(?P<sid>" in TEMPLATE


def test_clip_and_split_keep_to_the_limit_and_lose_nothing_but_the_cut() -> None:
    assert clip("short", 10) == "short"
    assert clip("a long sentence here", 10) == "a long se…"
    assert clip("abcdef", 3) == "ab…" and clip("abcdef", 1) == "a"
    text = "\n".join(f"line {i} " + "word " * (i % 7) for i in range(200))
    pieces = split(text, 120)
    assert all(0 < len(p) <= 120 for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())

    # a cut rule moves the cut back (say, out of an &amp; entity)
    def no_entity(t: str, n: int) -> int:
        amp = t.rfind("&", max(0, n - 5), n)
        return amp if amp != -1 and ";" not in t[amp:n] else n

    assert all("&amp;" in p or "&" not in p for p in split("x" * 95 + "&amp;" * 10, 100, cut=no_entity))


def step(status: str, **kw: object) -> StepView:
    return StepView(
        session_id="abc234", step_no=3, thoughts=Thoughts(), command="read_file", args={}, status=status, **kw
    )  # type: ignore[arg-type]


def test_one_wording_for_where_a_step_stands() -> None:
    at = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)
    assert wording.progress(step("pending")) == wording.Line("waiting", "Waiting for a decision.")
    assert wording.progress(step("running")) == wording.Line("running", "Running", code="read_file")
    assert wording.decided(step("decided", decided_by="Ann", decision="approved", decided_at=at)) == (
        wording.Line("approved", "approved", who="Ann", at=at)
    )
    assert wording.decided(step("decided", decided_by="Ann", decision="gave feedback")).mood == "feedback"  # type: ignore[union-attr]
    assert (
        wording.decided(step("auto", decided_by="auto", approvals_left=2)).text
        == "Approved in advance (2 more to go)"
    )  # type: ignore[union-attr]
    assert wording.decided(step("pending")) is None
    assert wording.status_word(step("pending")) == "waiting for a decision"


def test_the_render_dispatch_calls_one_method_per_view_kind() -> None:
    class Words(Renderer[str]):
        def tasks(self, view: TaskListView) -> str:
            return f"{len(view.tasks)} tasks"

    assert Words().render(TaskListView(session_id="abc234", tasks=["a", "b"])) == "2 tasks"
    with pytest.raises(NotImplementedError, match="notice"):
        Words().render(NoticeView(text="hi"))
