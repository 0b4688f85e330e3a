"""A chat platform for tests, like errbot's test backend: it implements the platform boundary,
records what the core posts and edits, and lets a test press a button as a given user."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import ClassVar

from bot.adapter import ChatAdapter, PlatformError
from bot.decisions import Decision
from bot.models import Actor, MessageRef, Outcome, Place
from bot.presenter.views import ProgressView, SessionHeaderView, StepView, View
from bot.service import Service


@dataclass
class Message:
    ref: MessageRef
    view: View
    edits: list[View] = field(default_factory=list)

    @property
    def current(self) -> View:
        return self.edits[-1] if self.edits else self.view


class TestPlatform(ChatAdapter):
    __test__ = False  # not a pytest class
    name: ClassVar[str] = "test"

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.headers: list[SessionHeaderView] = []
        self.uploads: list[tuple[Place, str, bytes, str]] = []
        self.fail_posts = 0  # the next N posts fail for good
        self.progress_seen: list[tuple[float, ProgressView]] = []  # (time.monotonic(), view)

    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        self.headers.append(view)
        ref = await self.post(place, view)
        return place.model_copy(update={"thread": ref.id, "origin": None})

    async def post(self, place: Place, view: View) -> MessageRef:
        if self.fail_posts > 0:
            self.fail_posts -= 1
            raise PlatformError("test platform: posting failed")
        ref = MessageRef(
            platform=self.name, channel=place.channel, id=f"m{len(self.messages) + 1}", thread=place.thread
        )
        self.messages.append(Message(ref, view))
        return ref

    async def update(self, ref: MessageRef, view: View) -> None:
        for msg in self.messages:
            if msg.ref.id == ref.id:
                msg.edits.append(view)
                return
        raise PlatformError(f"no message {ref.id}")

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        self.uploads.append((place, filename, content, comment))

    async def progress(self, place: Place, view: ProgressView) -> None:
        self.progress_seen.append((time.monotonic(), view))

    # --- what a test looks at
    def of(self, session_id: str, kind: str) -> list[View]:
        return [
            m.current
            for m in self.messages
            if getattr(m.current, "session_id", None) == session_id and m.current.kind == kind
        ]

    def steps(self, session_id: str) -> list[StepView]:
        return [v for v in self.of(session_id, "step") if isinstance(v, StepView)]

    def step_message(self, session_id: str, step_no: int) -> Message:
        for m in self.messages:
            v = m.current
            if isinstance(v, StepView) and v.session_id == session_id and v.step_no == step_no:
                return m
        raise LookupError(f"no step {step_no} of {session_id}")

    async def press(
        self,
        service: Service,
        session_id: str,
        step_no: int,
        action: str,
        user: str,
        *,
        text: str | None = None,
        admin: bool = False,
    ) -> Outcome:
        """Press a button of a posted step message as `user`: only buttons actually offered."""
        view = self.step_message(session_id, step_no).view
        assert isinstance(view, StepView)
        option = next((o for o in view.options if o.action == action), None)
        assert option is not None, f"step {step_no} offers no {action} button"
        actor = Actor(platform=self.name, user_id=user, is_admin=admin)
        decision = Decision(action=option.action, step_no=step_no, count=option.count, text=text)
        return await service.decide(session_id, actor, decision)
