"""The dispatch every adapter's rendering subclasses: one method per view kind.

    class BlocksRenderer(Renderer[Message]):
        def step(self, view: StepView) -> Message: ...
        ...

`render(view)` calls the method of the view's kind (a table, as opsdroid's `@register_event`
is): `header`, `tasks`, `step`, `result`, `summary`, `notice`, `sessions`, and for answers
that are views (`Shown`) `usage` and `profile`, each taking its view (bot/presenter/views.py).
A kind the adapter does not show raises NotImplementedError.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from bot.presenter import views as v

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
        "usage": "usage",
        "profile": "profile",
    }

    def render(self, view: v.View | v.UsageView | v.ProfileView) -> Out:
        method = getattr(self, self.METHODS[view.kind], None)
        if method is None:
            raise NotImplementedError(f"{type(self).__name__} does not show a {view.kind} view")
        out: Out = method(view)
        return out
