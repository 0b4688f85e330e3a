"""The eval's chat platform: a minimal in-process `ChatAdapter` that records every view the core
shows (no chat service, nobody to click): what a challenge's session said stays inspectable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from bot.adapter import ChatAdapter
from bot.models import Actor, MessageRef, Place
from bot.presenter.views import SessionHeaderView, View

USER = "eval"


@dataclass
class Shown:
    ref: MessageRef
    views: list[View] = field(default_factory=list)  # as posted, then each edit


class EvalPlatform(ChatAdapter):
    name: ClassVar[str] = "eval"

    def __init__(self) -> None:
        self.shown: list[Shown] = []
        self.uploads: list[tuple[str, int]] = []  # (filename, size)

    @staticmethod
    def actor() -> Actor:
        return Actor(platform=EvalPlatform.name, user_id=USER, name="autogpt-bot eval", is_admin=True)

    @staticmethod
    def place() -> Place:
        return Place(platform=EvalPlatform.name, channel="eval")

    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        ref = await self.post(place, view)
        return place.model_copy(update={"thread": ref.id})

    async def post(self, place: Place, view: View) -> MessageRef:
        ref = MessageRef(
            platform=self.name, channel=place.channel, id=f"m{len(self.shown) + 1}", thread=place.thread
        )
        self.shown.append(Shown(ref, [view]))
        return ref

    async def update(self, ref: MessageRef, view: View) -> None:
        for shown in self.shown:
            if shown.ref.id == ref.id:
                shown.views.append(view)
                return

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        self.uploads.append((filename, len(content)))
