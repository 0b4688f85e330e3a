"""A toy chat, to show that a platform is a folder plus one entry point: its wire is a list of
plain-text messages, its buttons `[Label](autogpt:...)` links, and it uses bot/'s public pieces
only (the adapter contract, the presenter, the service, decisions and models). Admins are the
core's ADMIN_USER_IDS."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from bot.adapter import ChatAdapter
from bot.decisions import Decision
from bot.models import Actor, MessageRef, Place
from bot.presenter import ids, views, wording
from bot.presenter.render import Renderer

if TYPE_CHECKING:
    from bot.core import Core

LINK = re.compile(r"\[[^\]]+\]\(([^)\s]+)\)")


@dataclass
class Wire:
    """The toy chat's servers: messages by id (thread, versions), private notes (user, text) and
    files (thread, name, content)."""

    messages: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    told: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, str, bytes]] = field(default_factory=list)


def said(x: wording.Line | None) -> str:
    return " ".join(p for p in (x.who, x.text, x.code) if p) if x else ""


class ToyRenderer(Renderer[str]):
    def header(self, v: views.SessionHeaderView) -> str:
        return f"{v.ai_name} session {v.session_id} for {v.owner} ({v.mode}): " + "; ".join(v.goals)

    def tasks(self, v: views.TaskListView) -> str:
        return "Task list: " + "; ".join(v.tasks)

    def step(self, v: views.StepView) -> str:
        links = " ".join(
            f"[{o.label}]({ids.button_id(o.action, v.session_id, v.step_no, o.count)})" for o in v.options
        )
        lines = [f"Step {v.step_no}: {v.command} {json.dumps(v.args)}", v.thoughts.text, v.note or ""]
        return "\n".join(x for x in [*lines, said(wording.decided(v)), said(wording.progress(v)), links] if x)

    def result(self, v: views.ResultView) -> str:
        return f"Result of step {v.step_no} ({v.command}): {v.output}"

    def summary(self, v: views.SummaryView) -> str:
        return f"{wording.OUTCOMES[v.outcome]} ({v.session_id}): {v.reason} ({wording.spent(v)})"

    def notice(self, v: views.NoticeView) -> str:
        return f"{v.level}: {v.text}"


def buttons(text: str) -> list[ids.Button]:
    """The buttons a message shows, as a toy client reads them."""
    return [b for link in LINK.findall(text) if (b := ids.parse(link)) is not None]


class ToyAdapter(ChatAdapter):
    name: ClassVar[str] = "toy"

    def __init__(self, core: Core, settings: Any = None, wire: Wire | None = None) -> None:
        self.core, self.wire, self.renderer = core, wire or Wire(), ToyRenderer()

    async def start(self) -> None:
        self.core.add_platform(self)

    async def open_session(self, place: Place, view: views.SessionHeaderView) -> Place:
        return place.model_copy(update={"thread": (await self.post(place, view)).id})

    async def post(self, place: Place, view: views.View) -> MessageRef:
        mid = str(len(self.wire.messages) + 1)
        self.wire.messages[mid] = (place.thread or mid, [self.renderer.render(view)])
        for f in view.files if isinstance(view, views.ResultView) else []:  # a command's full output
            await self.upload(place, f.filename, f.content, f.comment)
        return MessageRef(platform=self.name, channel=place.channel, id=mid, thread=place.thread)

    async def update(self, ref: MessageRef, view: views.View) -> None:
        self.wire.messages[ref.id][1].append(self.renderer.render(view))

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        self.wire.files.append((place.thread or "", filename, content))
        await self.post(place, views.NoticeView(text=f"{comment}: {filename} ({len(content)} bytes)"))

    # -- the event handlers: a message in a channel, a click on a link (Feedback takes a text)
    def actor(self, user: str) -> Actor:
        return Actor(platform=self.name, user_id=user, name=user.title())

    async def on_text(self, user: str, channel: str, text: str) -> None:
        place = Place(platform=self.name, channel=channel)
        outcome = await self.core.service.handle_text(self.actor(user), place, text)
        self.wire.told.append((user, outcome.message))

    async def on_click(self, user: str, link: str, text: str | None = None) -> None:
        if (b := ids.parse(link)) is None:
            self.wire.told.append((user, "That is not a button of this bot; nothing changed."))
            return
        decision = Decision(action=b.action, step_no=b.step_no, count=b.count, text=text)  # type: ignore[arg-type]
        if not (outcome := await self.core.service.decide(b.session_id, self.actor(user), decision)).ok:
            self.wire.told.append((user, outcome.message))
