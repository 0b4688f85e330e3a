"""Discord as a `ChatAdapter`: discord.py against the gateway and REST API, and the core's views
posted and edited through it.

A session lives in a thread opened from its root message: `Place(channel=<parent channel>,
thread=<thread id>, team=<guild id>)`. Posting and editing need nothing but those ids, so they
work for sessions from before a restart. Rate limits (429) are waited out by discord.py; a send
Discord refuses for good raises `PlatformError`, so the core pauses the session with the error.

    adapter = DiscordAdapter(core, DiscordSettings())
    await adapter.start()      # endpoints, login, adds itself to the core, connects, waits for READY
    ...                        # (the caller resumes sessions once every adapter has started)
    await adapter.stop()       # disconnects, lets running handlers finish

While the engine works on a session (`progress`), its thread shows "... is typing": Discord shows
that for about ten seconds per call and has no call to stop it, so it is sent again every
TYPING_EVERY_S while the work lasts, no more once it ends (the next message posted ends it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any, ClassVar, Final

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import render
from adapters.discord.app import NAME, SEND_ERRORS, AutoGPTClient, answers_origin
from adapters.discord.limits import CONTENT
from adapters.discord.settings import DiscordSettings
from bot.adapter import AdapterStartError, ChatAdapter, PlatformError
from bot.core import Core
from bot.models import MessageRef, Place
from bot.presenter.views import ProgressView, SessionHeaderView, StepView, View
from bot.text import clip

log = logging.getLogger(__name__)

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


# What the bot needs in a channel (deploy/discord.md explains each); 311385246720.
PERMISSIONS: Final = discord.Permissions(
    view_channel=True,
    send_messages=True,
    send_messages_in_threads=True,
    create_public_threads=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    use_application_commands=True,
)
SCOPES: Final = ("bot", "applications.commands")
READY_TIMEOUT_S: Final = 60.0
LAYOUTS_KEPT: Final = 1000  # layout messages remembered (to edit them as such) with Components V2 off
TYPING_AFTER_S: Final = 0.3  # a phase shorter than this shows nothing (no typing flicker)
TYPING_EVERY_S: Final = 8.0  # Discord shows "typing" for ~10 s: say it again before it fades
STOP_GRACE_S: Final = 10.0
INTENT_HINT: Final = (
    "DISCORD_MESSAGE_CONTENT=true needs the Message Content intent: turn it on in the Developer "
    "Portal (your application > Bot > Privileged Gateway Intents), or unset DISCORD_MESSAGE_CONTENT."
)


class DiscordStartError(AdapterStartError):
    """Discord cannot be started with these settings; the message is one line for the admin."""


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()).strip() if getter else ""


def configured(settings: DiscordSettings) -> str | None:
    """None when Discord can be started; else why not, in one line."""
    if not _secret(settings.bot_token):
        return "DISCORD_BOT_TOKEN is not set (see deploy/discord.md)."
    api = yarl.URL(settings.api_url.strip())
    if api.scheme not in ("http", "https") or not api.host:
        return f"DISCORD_API_URL must be an http(s) URL, got {settings.api_url!r}."
    gateway = yarl.URL(settings.gateway_url.strip())
    if gateway.scheme not in ("ws", "wss") or not gateway.host:
        return f"DISCORD_GATEWAY_URL must be a ws(s) URL, got {settings.gateway_url!r}."
    return None


def invite_url(application_id: int | str) -> str:
    """The link that adds the bot to a server with the permissions it needs."""
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)


def configure_endpoints(api_url: str, gateway_url: str) -> None:
    """Point discord.py at a Discord: the REST base (`Route.BASE`, shared by webhooks and
    interaction callbacks) and the gateway a plain `Client` connects to. They are class
    attributes, so this is process-wide."""
    Route.BASE = api_url.strip().rstrip("/")
    DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url.strip())


def intents(settings: DiscordSettings) -> discord.Intents:
    """The default (unprivileged) intents; Message Content only when asked for."""
    wanted = discord.Intents.default()
    wanted.message_content = settings.message_content
    return wanted


class DiscordAdapter(ChatAdapter):
    name: ClassVar[str] = NAME
    settings_class: ClassVar[type[DiscordSettings]] = DiscordSettings

    @classmethod
    def wanted(cls, settings: DiscordSettings) -> bool:
        return settings.bot_token is not None

    @classmethod
    def problem(cls, settings: DiscordSettings) -> str | None:
        return configured(settings)

    def __init__(
        self,
        core: Core,
        settings: DiscordSettings,
        result_inline: int = render.RESULT_INLINE,
        **client_options: Any,
    ) -> None:
        """`client_options` go to the discord.py client (e.g. `guild_ready_timeout`), plus
        `sync_commands=False` to leave the registered application commands alone."""
        if problem := configured(settings):
            raise DiscordStartError(problem)
        self.core = core
        self.settings = settings
        self.client_options = client_options
        self.renderer = render.DiscordRenderer(result_inline, components_v2=settings.components_v2)
        self._client: AutoGPTClient | None = None
        self._connection: asyncio.Task[None] | None = None
        self._typing: dict[str, asyncio.Task[None]] = {}  # session id -> its "typing" loop
        self._layouts: dict[str, None] = {}  # ids of layout messages found with DISCORD_COMPONENTS_V2 off

    @property
    def client(self) -> AutoGPTClient:
        if self._client is None:
            raise PlatformError("Discord: the adapter is not started")
        return self._client

    async def start(self) -> None:
        s = self.settings
        configure_endpoints(s.api_url, s.gateway_url)
        client = AutoGPTClient(self, intents=intents(s), **self.client_options)
        self._client = client
        try:
            await client.login(_secret(s.bot_token).removeprefix("Bot ").strip())
        except discord.LoginFailure as exc:
            await client.close()
            raise DiscordStartError(
                "Discord refused DISCORD_BOT_TOKEN: copy it again from the Bot page (Reset Token)."
            ) from exc
        except (discord.HTTPException, aiohttp.ClientError, OSError) as exc:
            await client.close()
            raise DiscordStartError(f"Cannot reach Discord at {s.api_url}: {describe(exc)}") from exc
        self.core.add_platform(self)
        if self.post_only:  # a worker: REST only, through the logged-in client; no gateway
            log.info("Discord: posting as %s (REST only, no gateway)", client.user)
            return
        self._connection = asyncio.create_task(client.connect(reconnect=True), name="discord-gateway")
        ready = asyncio.create_task(client.wait_until_ready())
        await asyncio.wait(
            {self._connection, ready}, timeout=READY_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if not ready.done():
            ready.cancel()
            problem = self._why_down() or f"no READY within {READY_TIMEOUT_S:g} s"
            await self.stop()
            self.core.remove_platform(self)
            raise DiscordStartError(f"Could not connect to the Discord gateway: {problem}")
        user = client.user
        log.info("Discord: connected as %s (%s) to %d servers", user, user and user.id, len(client.guilds))
        if not client.guilds and client.application_id:
            log.warning(
                "Discord: the bot is in no server yet; add it with %s", invite_url(client.application_id)
            )

    def _why_down(self) -> str | None:
        task = self._connection
        if task is None or not task.done() or task.cancelled():
            return None
        exc = task.exception()
        if isinstance(exc, discord.PrivilegedIntentsRequired):
            return INTENT_HINT
        if isinstance(exc, discord.ConnectionClosed) and exc.code == 4004:
            return "Discord refused DISCORD_BOT_TOKEN (4004)."
        return describe(exc) if exc else "the connection ended"

    async def wait_closed(self) -> None:
        """Until the gateway connection ends for good (discord.py reconnects by itself until then)."""
        if self._connection is not None:
            await asyncio.wait({self._connection})

    async def stop_receiving(self) -> None:
        """Leave the gateway (no event arrives any more) and give handlers already running time
        to finish; the REST client stays logged in, so drives winding down still post."""
        connection = self._connection
        if connection is not None and not connection.done():
            connection.cancel()  # discord.py's connect loop: it would reconnect a closed socket
            await asyncio.wait({connection}, timeout=STOP_GRACE_S)
        if self._client is not None and self._client.ws is not None:
            with contextlib.suppress(Exception):
                await self._client.ws.close(code=1000)
        await self._handlers_done()

    async def stop(self) -> None:
        """Disconnect, then give handlers already running time to finish."""
        for task in self._typing.values():
            task.cancel()
        self._typing.clear()
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
        if self._connection is not None:
            done, _ = await asyncio.wait({self._connection}, timeout=STOP_GRACE_S)
            if not done:
                self._connection.cancel()
        await self._handlers_done()

    async def _handlers_done(self) -> None:
        if self._client is not None:
            try:
                await asyncio.wait_for(self._client.handlers.inflight.wait(), STOP_GRACE_S)
            except TimeoutError:
                log.warning(
                    "Discord: %d handlers still running at shutdown", self._client.handlers.inflight.busy
                )

    @property
    def busy(self) -> int:
        return self._client.handlers.inflight.busy if self._client is not None else 0

    async def idle(self) -> None:
        """Until no handler runs (tests and shutdown)."""
        if self._client is not None:
            await self._client.handlers.inflight.wait()

    async def connected(self) -> bool:
        """For /healthz: logged in, READY received, and the gateway socket open."""
        client = self._client
        if client is None:
            return False
        if self.post_only:  # logged in; nothing to receive
            return not client.is_closed()
        ws = client.ws
        return client.is_ready() and not client.is_closed() and ws is not None and ws.open

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

    # ------------------------------------------------------------------ what the core calls

    async def open_session(self, place: Place, view: SessionHeaderView) -> Place:
        """Answer the mention (or post in the channel), and open the session's thread from that
        message. In a DM there are no threads: the session lives in the DM."""
        msg = self.renderer.header(view)
        with self.refused("messages.create", "posting the session"):
            if answers_origin(place):
                mention = self.messageable(place.channel, place.team).get_partial_message(
                    int(place.origin or 0)
                )
                root = await mention.reply(content=msg.content, embeds=msg.embeds, mention_author=False)
            else:
                channel = await self._parent_channel(place)
                root = await channel.send(content=msg.content, embeds=msg.embeds)
        if root.guild is None and place.team is None:
            return place.model_copy(update={"origin": None})
        try:
            with self.refused("threads.create", "opening the session's thread"):
                thread = await root.create_thread(
                    name=render.thread_name(view), auto_archive_duration=THREAD_ARCHIVE_MINUTES
                )
        except PlatformError:
            with contextlib.suppress(*SEND_ERRORS):  # no session without its thread: no orphan
                await root.delete()
            raise
        guild = root.guild.id if root.guild is not None else place.team
        return Place(platform=NAME, channel=str(root.channel.id), thread=str(thread.id), team=str(guild))

    async def post(self, place: Place, view: View) -> MessageRef:
        msg = (
            self.renderer.step(view, attach_args=True)
            if isinstance(view, StepView)
            else self.renderer.render(view)
        )
        channel = self.messageable(place.thread or place.channel, place.team)
        with self.refused("messages.create", f"posting a {view.kind} message"):
            if msg.v2:  # the layout is all of it: Discord refuses content or embeds with it
                sent = await channel.send(view=msg.view, files=msg.files() or None)  # type: ignore[arg-type]
            else:
                sent = await channel.send(
                    content=msg.content,
                    embeds=msg.embeds,
                    view=msg.view,  # type: ignore[arg-type]
                    files=msg.files() or None,  # type: ignore[arg-type]
                )
        return MessageRef(platform=NAME, channel=place.channel, id=str(sent.id), thread=place.thread)

    async def update(self, ref: MessageRef, view: View) -> None:
        """Edit a message in place; no buttons in the new view removes the old ones. Files
        attached when it was posted stay. With Components V2 the edit keeps (or makes) the
        message a layout: its content and embeds are emptied, as Discord wants for that. A
        layout cannot become an embed again, so when Discord refuses an embed edit of one
        (posted before DISCORD_COMPONENTS_V2 was turned off), it is edited as a layout."""
        msg = self.renderer.render(view)
        if not msg.v2 and ref.id in self._layouts:
            msg = self._as_layout(view)
        message = self.messageable(ref.thread or ref.channel).get_partial_message(int(ref.id))
        with self.refused("messages.edit", f"editing a {view.kind} message"):
            if msg.v2:
                await message.edit(content=None, embeds=[], view=msg.view)
                return
            try:
                await message.edit(content=msg.content, embeds=msg.embeds, view=msg.view)
            except discord.HTTPException as exc:
                if exc.status != 400 or exc.code != 50035:
                    raise
                log.info("Discord: message %s is a layout (Components V2): edited as one", ref.id)
                self._layouts[ref.id] = None
                while len(self._layouts) > LAYOUTS_KEPT:
                    del self._layouts[next(iter(self._layouts))]
                await message.edit(content=None, embeds=[], view=self._as_layout(view).view)

    def _as_layout(self, view: View) -> render.Rendered:
        return render.DiscordRenderer(self.renderer.result_inline, components_v2=True).render(view)

    async def upload(self, place: Place, filename: str, content: bytes, comment: str) -> None:
        channel = self.messageable(place.thread or place.channel, place.team)
        with self.refused("messages.create", f"attaching {filename}"):
            await channel.send(
                content=clip(comment, CONTENT) or None,
                file=render.Attachment(render.attachment_name(filename.rsplit("/", 1)[-1]), content).file(),
            )

    async def progress(self, place: Place, view: ProgressView) -> None:
        """While `view.doing` lasts, the session's thread shows "typing" (sent again every
        TYPING_EVERY_S); cleared: no more of it. Returns at once; a failed send is logged."""
        task = self._typing.get(view.session_id)
        if not view.doing:
            if task is not None:
                task.cancel()
                del self._typing[view.session_id]
            return
        if task is None or task.done():
            self._typing[view.session_id] = asyncio.create_task(
                self._keep_typing(place, view.session_id), name=f"discord-typing-{view.session_id}"
            )

    async def _keep_typing(self, place: Place, session_id: str) -> None:
        await asyncio.sleep(TYPING_AFTER_S)
        while True:
            try:  # one POST /channels/{id}/typing
                await self.messageable(place.thread or place.channel, place.team).typing()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a courtesy: never a reason to stop anything else
                log.info("Discord: session %s: typing not shown: %s", session_id, describe(exc))
            await asyncio.sleep(TYPING_EVERY_S)

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

    async def _parent_channel(self, place: Place) -> Any:
        """The text channel a session's root message goes to: where it was asked for, or the
        parent of the thread it was asked for in (a thread cannot hold another thread)."""
        channel = await self.channel(int(place.channel))
        if isinstance(channel, discord.Thread):
            channel = channel.parent or await self.channel(channel.parent_id)
        if not isinstance(channel, discord.abc.Messageable):
            raise PlatformError(
                "Discord: sessions can be started in text channels, their threads and DMs, "
                f"not in a {getattr(channel, 'type', 'channel')}"
            )
        return channel


async def serve(core: Core, settings: DiscordSettings, stop: asyncio.Event) -> None:
    """Run Discord until `stop` is set (or the connection ends for good). Sessions are resumed
    once it is connected."""
    adapter = DiscordAdapter(core, settings)
    await adapter.start()
    try:
        await core.resume_all()
        stopping = asyncio.create_task(stop.wait())
        closed = asyncio.create_task(adapter.wait_closed())
        await asyncio.wait({stopping, closed}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopping, closed):
            task.cancel()
        if not stop.is_set():
            raise DiscordStartError(f"The Discord connection ended: {adapter._why_down()}")
    finally:
        await adapter.stop()
