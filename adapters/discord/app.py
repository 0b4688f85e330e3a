"""The discord.py client and what it does with mentions, thread replies, buttons, the feedback
modal and the `/autogpt` command. Everything is handed to the core's `Service`; nothing here
knows how a session works.

Every interaction is answered within Discord's 3 seconds: a button's owner check is one store
read (bounded), then the click is deferred and the decision made; the command is deferred first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import discord
from discord import app_commands

from adapters.discord.components import FEEDBACK_INPUT, DecisionButton, FeedbackModal, modal_values
from adapters.discord.limits import reply_chunks
from bot.adapter import Inflight
from bot.decisions import Decision
from bot.inbox import Incoming, IncomingError, Reader
from bot.models import Actor, Outcome, Place
from bot.presenter.ids import Button, parse
from bot.presenter.views import Shown
from bot.tools.files import readable

if TYPE_CHECKING:
    from adapters.discord.adapter import DiscordAdapter

log = logging.getLogger(__name__)

NAME: Final = "discord"
SEND_ERRORS: Final = (discord.DiscordException, aiohttp.ClientError, OSError, asyncio.TimeoutError)

CHECK_WITHIN_S: Final = 1.5  # of the 3 s to answer a click: the owner check
COMMAND_NAME: Final = "autogpt"
COMMAND_HELP: Final = (
    "Talk to AutoGPT: goal ..., status, list, stop ID, approve ID [N], feedback ID ..., help"
)
OPTION_HELP: Final = "e.g. goal research X; write a summary (or: help)"
SORRY: Final = "Something went wrong on my side. Check with `status` before trying again."


class Handlers:
    """What the bot does with each Discord event."""

    def __init__(self, adapter: DiscordAdapter) -> None:
        self.adapter = adapter
        self.service = adapter.core.service
        self.settings = adapter.settings
        self.inflight = Inflight()

    @property
    def client(self) -> discord.Client:
        return self.adapter.client

    # ------------------------------------------------------------------ who and where

    def actor(self, user: discord.abc.User, manages_channel: bool = False) -> Actor:
        """`manages_channel`: Discord says the user has Manage Channels where they act."""
        user_id = str(user.id)
        return Actor(
            platform=NAME,
            user_id=user_id,
            name=user.display_name,
            is_admin=user_id in self.settings.admin_user_ids,
            manages_channel=manages_channel,
        )

    async def place(self, channel: Any, channel_id: int | None, guild_id: int | None) -> Place:
        """Where a message or command is: a thread is (parent channel, thread)."""
        team = str(guild_id) if guild_id else None
        if channel is None or isinstance(channel, discord.PartialMessageable):
            if channel_id is None:
                raise ValueError("no channel")
            if guild_id:  # a thread not in the cache: ask what it is
                with contextlib.suppress(*SEND_ERRORS):
                    channel = await self.adapter.channel(channel_id)
        if isinstance(channel, discord.Thread):
            return Place(platform=NAME, channel=str(channel.parent_id), thread=str(channel.id), team=team)
        return Place(platform=NAME, channel=str(getattr(channel, "id", channel_id)), team=team)

    # ------------------------------------------------------------------ messages

    async def on_message(self, message: discord.Message) -> None:
        me = self.client.user
        if me is None or message.author.bot or message.webhook_id is not None:
            return
        mentioned = any(u.id == me.id for u in message.mentions)
        async with self.inflight():
            try:
                if mentioned or message.guild is None:
                    await self._command(message, strip_mention(message.content, me.id))
                elif self.settings.message_content and (message.content.strip() or message.attachments):
                    await self._thread_reply(message)
            except Exception:
                log.exception("Discord: handling message %s failed", message.id)

    async def _command(self, message: discord.Message, text: str) -> None:
        """A mention: `goal ...` opens a thread from the answer; anything else is answered here."""
        place = await self.place(message.channel, message.channel.id, guild_id(message))
        place = place.model_copy(update={"origin": str(message.id)})  # a session's root answers it
        files = shared_files(message)  # a goal's attachments, or files for the thread's session
        actor = self.actor(message.author, manages(message.channel, message.author))
        outcome = await self.service.handle_text(actor, place, text or "help", files)
        if outcome.ok and outcome.place is not None and answers_origin(place):
            return  # the session's root message answered the mention
        if isinstance(outcome, Shown):  # a usage report, a profile: an embed
            await self.reply(message, "", self.adapter.renderer.render(outcome.view).embeds)
            return
        await self.reply(message, with_thread(outcome))

    async def _thread_reply(self, message: discord.Message) -> None:
        """With the Message Content intent: the owner's plain reply in a session's thread while a
        step waits is feedback on it; anything else is conversation."""
        if not isinstance(message.channel, discord.Thread | discord.PartialMessageable):
            return
        place = await self.place(message.channel, message.channel.id, guild_id(message))
        if place.thread is None:
            return
        actor = self.actor(message.author)
        if files := shared_files(message):  # saved for the agent; the core says so in the thread
            received = await self.service.receive(actor, place, files)
            if received is not None and not received.ok:
                await self.reply(message, received.message)
        if not message.content.strip():
            return
        outcome = await self.service.reply_in_thread(actor, place, message.content)
        if outcome is not None:
            await self.reply(message, outcome.message)

    async def reply(
        self, message: discord.Message, text: str, embeds: list[discord.Embed] | None = None
    ) -> None:
        try:
            if embeds:
                await message.reply(embeds=embeds, mention_author=False)
                return
            chunks = reply_chunks(text)
            await message.reply(chunks[0], mention_author=False)
            for chunk in chunks[1:]:
                await message.channel.send(chunk)
        except discord.DiscordException as exc:
            log.warning("Discord: could not answer message %s: %s", message.id, exc)

    # ------------------------------------------------------------------ the /autogpt command

    async def on_command(self, interaction: discord.Interaction[Any], text: str) -> None:
        """Deferred first (privately), then the shared grammar; the answer is for the user alone.
        `goal` posts the session's root message in the channel and opens its thread from it."""
        async with self.inflight():
            await interaction.response.defer(ephemeral=True, thinking=True)
            try:
                place = await self.place(interaction.channel, interaction.channel_id, interaction.guild_id)
                perms = interaction.permissions  # the user's in this channel, as Discord resolved them
                actor = self.actor(interaction.user, bool(interaction.guild_id) and perms.manage_channels)
                outcome = await self.service.handle_text(actor, place, text)
                if isinstance(outcome, Shown):  # a usage report, a profile: an embed
                    await self._answer(interaction, "", self.adapter.renderer.render(outcome.view).embeds)
                    return
                answer = with_thread(outcome)
            except Exception:
                log.exception("Discord: /%s failed", COMMAND_NAME)
                answer = SORRY
            await self._answer(interaction, answer)

    async def _answer(
        self, interaction: discord.Interaction[Any], text: str, embeds: list[discord.Embed] | None = None
    ) -> None:
        """The (private) answer to a deferred interaction."""
        try:
            if embeds:
                await interaction.edit_original_response(content=None, embeds=embeds)
                return
            chunks = reply_chunks(text)
            await interaction.edit_original_response(content=chunks[0])
            for chunk in chunks[1:]:
                await interaction.followup.send(chunk, ephemeral=True)
        except discord.DiscordException as exc:
            log.warning("Discord: could not answer interaction %s: %s", interaction.id, exc)

    # ------------------------------------------------------------------ buttons and the modal

    async def on_button(self, interaction: discord.Interaction[Any], click: Button) -> None:
        async with self.inflight():
            try:
                await self._button(interaction, click)
            except Exception:
                log.exception("Discord: click %s failed", click)
                await self._private(interaction, SORRY)

    async def _button(self, interaction: discord.Interaction[Any], click: Button) -> None:
        actor = self.actor(interaction.user)
        decision = Decision(action=click.action, step_no=click.step_no, count=click.count)
        try:  # the core says, read-only, whether it would be refused: then nothing is deferred
            check = await asyncio.wait_for(
                self.service.check(click.session_id, actor, decision), CHECK_WITHIN_S
            )
        except Exception as exc:  # slow or down: defer, and let the decision itself say
            log.warning("Discord: checking a click on %s: %s", click.session_id, exc)
            check = None
        if check is not None and not check.ok:
            await interaction.response.send_message(check.message, ephemeral=True)
            return
        if click.action == "feedback":
            await interaction.response.send_modal(FeedbackModal(click.session_id, click.step_no))
            return
        await interaction.response.defer()
        outcome = await self.service.decide(click.session_id, actor, decision)
        if not outcome.ok:
            await self._private(interaction, outcome.message)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        """Modal submissions, by custom id: the feedback form works even after a restart."""
        if interaction.type is not discord.InteractionType.modal_submit:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        parsed = parse(data.get("custom_id"))
        if parsed is None or parsed.action != "feedback":
            return
        session_id, step_no = parsed.session_id, parsed.step_no
        async with self.inflight():
            try:
                await interaction.response.defer()
                text = modal_values(interaction.data).get(FEEDBACK_INPUT, "")
                outcome = await self.service.decide(
                    session_id,
                    self.actor(interaction.user),
                    Decision(action="feedback", step_no=step_no, text=text),
                )
                if not outcome.ok:
                    await self._private(interaction, outcome.message)
            except Exception:
                log.exception("Discord: feedback on %s failed", session_id)
                await self._private(interaction, SORRY)

    async def _private(self, interaction: discord.Interaction[Any], text: str) -> None:
        """A note only the clicking user sees: the response if none was sent, else a follow-up."""
        try:
            chunks = reply_chunks(text)
            if not interaction.response.is_done():
                await interaction.response.send_message(chunks[0], ephemeral=True)
                chunks = chunks[1:]
            for chunk in chunks:
                await interaction.followup.send(chunk, ephemeral=True)
        except discord.DiscordException as exc:
            log.warning("Discord: could not answer interaction %s: %s", interaction.id, exc)


MENTION = r"<@!?{}>"


def answers_origin(place: Place) -> bool:
    """Whether a session started from `place` has its root message reply to the request there
    (a mention in a server's channel); elsewhere (a thread, a DM, a command) it is posted."""
    return place.origin is not None and place.team is not None and place.thread is None


def with_thread(outcome: Outcome) -> str:
    """The answer to a command, with a link to the thread a session it started runs in."""
    if outcome.ok and outcome.place is not None and outcome.place.thread:
        return outcome.message + f" It runs in <#{outcome.place.thread}>."
    return outcome.message


def shared_files(message: discord.Message) -> list[Incoming]:
    """A message's attachments, as the core takes them."""
    return [
        Incoming(name=a.filename, mime=a.content_type or "", size=a.size, read=_reader(a))
        for a in message.attachments
    ]


def _reader(attachment: discord.Attachment) -> Reader:
    async def read(limit: int) -> bytes:
        if attachment.size > limit:
            raise IncomingError(f"it is larger than {readable(limit)}")
        try:
            data = await attachment.read()
        except discord.DiscordException as exc:
            raise IncomingError(f"Discord did not give the file ({type(exc).__name__})") from None
        if len(data) > limit:
            raise IncomingError(f"it is larger than {readable(limit)}")
        return data

    return read


def manages(channel: Any, user: discord.abc.User) -> bool:
    """Whether `user` may manage `channel` (Manage Channels there, from the cached guild, its
    roles and the channel's overwrites: no request); False in a DM or when Discord cannot say."""
    permissions_for = getattr(channel, "permissions_for", None)
    if permissions_for is None or getattr(channel, "guild", None) is None:
        return False
    try:
        return bool(permissions_for(user).manage_channels)
    except Exception:  # a thread whose parent is not cached, a partial channel
        return False


def guild_id(message: discord.Message) -> int | None:
    return message.guild.id if message.guild is not None else None


def strip_mention(content: str, bot_id: int) -> str:
    """The command in a message that mentions the bot."""
    return re.sub(MENTION.format(bot_id), " ", content).strip()


def make_command(handlers: Handlers) -> app_commands.Command[Any, ..., None]:
    @app_commands.command(name=COMMAND_NAME, description=COMMAND_HELP)
    @app_commands.describe(command=OPTION_HELP)
    async def autogpt(interaction: discord.Interaction, command: str) -> None:
        await handlers.on_command(interaction, command)

    return autogpt


class AutoGPTClient(discord.Client):
    """A plain `discord.Client` (its gateway address is `DiscordWebSocket.DEFAULT_GATEWAY`) with
    the handlers of what users do; the adapter posts the core's views through it."""

    def __init__(
        self,
        adapter: DiscordAdapter,
        *,
        intents: discord.Intents,
        sync_commands: bool = True,
        **options: Any,
    ) -> None:
        # no voice here: spare the admin discord.py's warnings about voice libraries
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none(), **options)
        self.handlers = Handlers(adapter)
        self.sync_commands = sync_commands
        self.tree: app_commands.CommandTree[AutoGPTClient] = app_commands.CommandTree(self)
        self.tree.add_command(make_command(self.handlers))

    async def setup_hook(self) -> None:
        self.add_dynamic_items(DecisionButton)
        if self.sync_commands:
            try:
                synced = await self.tree.sync()
                log.info("Discord: application commands synced: %s", ", ".join(c.name for c in synced))
            except discord.DiscordException as exc:
                log.warning("Discord: could not register /%s: %s", COMMAND_NAME, exc)

    async def on_message(self, message: discord.Message) -> None:
        await self.handlers.on_message(message)

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        await self.handlers.on_interaction(interaction)
