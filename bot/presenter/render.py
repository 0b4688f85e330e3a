"""The dispatch every adapter's rendering subclasses: one method per view kind.

    class BlocksRenderer(Renderer[Message]):
        def step(self, view: StepView) -> Message: ...
        ...

`render(view)` calls the method of the view's kind (a table, as opsdroid's `@register_event`
is); a kind the adapter does not show raises NotImplementedError.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from bot.presenter.views import (
    NoticeView,
    ResultView,
    SessionHeaderView,
    SessionListView,
    StepView,
    SummaryView,
    TaskListView,
    View,
)

Out = TypeVar("Out")


class Renderer(Generic[Out]):
    METHODS: ClassVar[dict[str, str]] = {
        "header": "header",
        "tasks": "tasks",
        "step": "step",
        "result": "result",
        "summary": "summary",
        "notice": "notice",
        "sessions": "sessions",
    }

    def render(self, view: View) -> Out:
        method = getattr(self, self.METHODS[view.kind])
        out: Out = method(view)
        return out

    def header(self, view: SessionHeaderView) -> Out:
        raise NotImplementedError(f"{type(self).__name__} does not show a session's header")

    def tasks(self, view: TaskListView) -> Out:
        raise NotImplementedError(f"{type(self).__name__} does not show a task list")

    def step(self, view: StepView) -> Out:
        raise NotImplementedError(f"{type(self).__name__} does not show a step")

    def result(self, view: ResultView) -> Out:
        raise NotImplementedError(f"{type(self).__name__} does not show a result")

    def summary(self, view: SummaryView) -> Out:
        raise NotImplementedError(f"{type(self).__name__} does not show a summary")

    def notice(self, view: NoticeView) -> Out:
        raise NotImplementedError(f"{type(self).__name__} does not show a notice")

    def sessions(self, view: SessionListView) -> Out:
        raise NotImplementedError(f"{type(self).__name__} does not show a list of sessions")
