"""Discord as a `ChatPlatform`: the core's views posted and edited through discord.py.

A session lives in a thread opened from its root message: `Place(channel=<parent channel>,
thread=<thread id>, team=<guild id>)`. Posting and editing need nothing but those ids, so they
work for sessions from before a restart. Rate limits (429) are waited out by discord.py; a send
Discord refuses for good raises `PlatformError`, so the core pauses the session with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

import aiohttp
import discord

from adapters.discord import render
from adapters.discord.limits import CONTENT
from bot.adapter import PlatformError
from bot.metrics import Metrics
from bot.models import MessageRef, Place
from bot.presenter.views import SessionHeaderView, StepView, View
from bot.text import clip

log = logging.getLogger(__name__)

NAME: Final = "discord"
THREAD_ARCHIVE_MINUTES: Final = 10080  # a week: a step may wait that long for a decision
HINTS: Final[dict[int, str]] = {
    50001: "the bot cannot see this channel: give it View Channel there",
    50013: "grant the bot Send Messages, Send Messages in Threads, Create Public Threads, Embed Links "
    "and Attach Files (deploy/discord.md)",
    10003: "the channel or thread was deleted",
    10008: "the message was deleted",
    50083: "the thread is archived",
    160005: "the thread is locked",
    40005: "the file is too large for this server",
    50035: "Discord refused the message's form (please report this)",
}


@dataclass
class Origin:
    """Where a command came from, for `open_session` (set by the listener for the call)."""

    message: discord.Message | None = None
    channel: Any = None  # the channel an application command was used in
    opened: Place | None = None  # set by open_session
    answered: bool = False  # the session's root message is a reply to `message`


ORIGIN: ContextVar[Origin | None] = ContextVar("discord_origin", default=None)


def describe(exc: BaseException) -> str:
    if isinstance(exc, discord.HTTPException):
        text = f"{exc.status} {exc.response.reason}" if exc.response is not None else str(exc.status)
        if exc.code:
            text += f" (error code {exc.code}: {exc.text or 'no message'})"
            if hint := HINTS.get(exc.code):
                text += f": {hint}"
        elif exc.text:
            text += f": {exc.text}"
        return text
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


SEND_ERRORS: Final = (discord.DiscordException, aiohttp.ClientError, OSError, asyncio.TimeoutError)


class DiscordPlatform:
    """The core's views in Discord, through the adapter's connected client."""

    name = NAME
    metrics: Metrics | None = None  # given by Core.add_platform: failed API calls are counted

    def __init__(self, client: discord.Client, result_inline: int = render.RESULT_INLINE) -> None:
        self.client = client
        self.renderer = render.DiscordRenderer(result_inline)

    def connected(self) -> bool:
        """For /healthz: logged in, READY received, and the gateway socket open."""
        ws = self.client.ws
        return self.client.is_ready() and not self.client.is_closed() and ws is not None and ws.open

    @contextlib.contextmanager
    def refused(self, method: str, doing: str) -> Iterator[None]:
        """Turn what discord.py raises once it gave up (after its own rate-limit waits and
        retries) into PlatformError, counted in the metrics."""
        try:
            yield
        except SEND_ERRORS as exc:
            if self.metrics is not None:
                self.metrics.platform_error(self.name, method)
            raise PlatformError(f"Discord: {doing} failed: {describe(exc)}") from exc

    # ------------------------------------------------------------------ ChatPlatform

    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        """Answer the mention (or post in the channel), and open the session's thread from that
        message. In a DM there are no threads: the session lives in the DM."""
        origin = ORIGIN.get()
        msg = self.renderer.header(view)
        mention = origin.message if origin is not None else None
        with self.refused("messages.create", "posting the session"):
            if (
                mention is not None
                and mention.guild is not None
                and not isinstance(mention.channel, discord.Thread)
            ):
                root = await mention.reply(content=msg.content, embeds=msg.embeds, mention_author=False)
            else:
                channel = await self._parent_channel(place, origin)
                root = await channel.send(content=msg.content, embeds=msg.embeds)
        if root.guild is None:
            opened = place
        else:
            try:
                with self.refused("threads.create", "opening the session's thread"):
                    thread = await root.create_thread(
                        name=render.thread_name(view), auto_archive_duration=THREAD_ARCHIVE_MINUTES
                    )
            except PlatformError:
                with contextlib.suppress(*SEND_ERRORS):  # no session without its thread: no orphan
                    await root.delete()
                raise
            opened = Place(
                platform=NAME, channel=str(root.channel.id), thread=str(thread.id), team=str(root.guild.id)
            )
        if origin is not None:
            origin.answered = root.reference is not None
        if origin is not None:
            origin.opened = opened
        return opened

    async def post(self, place: Place, view: View) -> MessageRef:
        msg = (
            self.renderer.step(view, attach_args=True)
            if isinstance(view, StepView)
            else self.renderer.render(view)
        )
        channel = self.messageable(place.thread or place.channel, place.team)
        with self.refused("messages.create", f"posting a {view.kind} message"):
            sent = await channel.send(
                content=msg.content,
                embeds=msg.embeds,
                view=msg.view,  # type: ignore[arg-type]
                files=msg.files() or None,  # type: ignore[arg-type]
            )
        return MessageRef(platform=NAME, channel=place.channel, id=str(sent.id), thread=place.thread)

    async def update(self, ref: MessageRef, view: View) -> None:
        """Edit a message in place; no buttons in the new view removes the old ones. Files
        attached when it was posted stay."""
        msg = self.renderer.render(view)
        message = self.messageable(ref.thread or ref.channel).get_partial_message(int(ref.id))
        with self.refused("messages.edit", f"editing a {view.kind} message"):
            await message.edit(content=msg.content, embeds=msg.embeds, view=msg.view)

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        channel = self.messageable(place.thread or place.channel, place.team)
        with self.refused("messages.create", f"attaching {filename}"):
            await channel.send(
                content=clip(comment, CONTENT) or None,
                file=render.Attachment(filename, content).file(),
            )

    # ------------------------------------------------------------------ helpers

    def messageable(self, channel_id: str, guild_id: str | None = None) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(
            int(channel_id), guild_id=int(guild_id) if guild_id else None
        )

    async def channel(self, channel_id: int) -> Any:
        """A channel from the cache, or fetched."""
        found = self.client.get_channel(channel_id)
        if found is None:
            found = await self.client.fetch_channel(channel_id)
        return found

    async def _parent_channel(self, place: Place, origin: Origin | None) -> Any:
        """The text channel a session's root message goes to: where it was asked for, or the
        parent of the thread it was asked for in (a thread cannot hold another thread)."""
        channel = origin.channel if origin is not None else None
        if channel is None or isinstance(channel, discord.Thread | discord.PartialMessageable):
            channel = await self.channel(int(place.channel))
        if isinstance(channel, discord.Thread):
            channel = channel.parent or await self.channel(channel.parent_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise PlatformError(
                "Discord: sessions can be started in text channels, their threads and DMs, "
                f"not in a {getattr(channel, 'type', 'channel')}"
            )
        return channel
