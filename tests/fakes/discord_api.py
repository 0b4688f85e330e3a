"""A local fake Discord for end-to-end tests with the real discord.py client.

`FakeDiscord` serves, on 127.0.0.1, the gateway websocket (HELLO, IDENTIFY -> READY and
GUILD_CREATE, heartbeats, dispatches; zlib-stream transport compression when the client asks for
it in the URL query, as discord.py does) and the REST routes the bot calls (login, application,
command sync, channel messages as JSON or multipart, threads, interaction callbacks, follow-up
and `@original` webhooks). Replies are `application/json` exactly, as discord.py wants.

It acts as Discord does where the bot depends on it: without the Message Content intent a
message that does not mention the bot arrives with empty content; a privileged intent that is not
enabled closes the gateway with 4014; an interaction answered twice, late (after 3 s) or not at
all is an error; a follow-up before the answer is refused. Every message, embed, component and
modal the bot sends is checked against Discord's limits: a violation is recorded in
`violations` and refused with 400 (50035) like Discord would.

Tests drive it as users: `say` (a MESSAGE_CREATE), `click` (a component INTERACTION_CREATE built
from the buttons the bot actually sent), `submit_modal` (from the modal the bot actually sent)
and `slash` (from the command the bot actually registered).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.web_request import FileField
from pydantic import SecretStr

from adapters.discord import DiscordAdapter
from bot.core import Core
from bot.settings import Settings

TOKEN = "fake-discord-token.abc.def"
BOT_ID = 900000000000000001
APP_ID = 900000000000000002
GUILD_ID = 100000000000000001
CHANNEL_ID = 100000000000000010
OWNER = 200000000000000001
STRANGER = 200000000000000002
ADMIN = 200000000000000003
USERS: dict[int, str] = {OWNER: "alice", STRANGER: "bob", ADMIN: "carol"}

DISCORD_EPOCH_MS = 1420070400000
EPHEMERAL = 1 << 6
LOADING = 1 << 7
HAS_THREAD = 1 << 5
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED = {1 << 1: "GUILD_MEMBERS", 1 << 8: "GUILD_PRESENCES", INTENT_MESSAGE_CONTENT: "MESSAGE_CONTENT"}
ANSWER_WITHIN_S = 3.0

# --------------------------------------------------------------------------- Discord's limits

LIMITS = {
    "content": 2000,
    "embeds": 10,
    "title": 256,
    "description": 4096,
    "fields": 25,
    "field_name": 256,
    "field_value": 1024,
    "footer": 2048,
    "author": 256,
    "embed_total": 6000,
    "action_rows": 5,
    "row_items": 5,
    "custom_id": 100,
    "label": 80,
    "modal_title": 45,
    "input_label": 45,
    "placeholder": 100,
    "input_max": 4000,
    "thread_name": 100,
    "files": 10,
    "file_bytes": 10 * 1024 * 1024,
}


def _len(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def check_embed(embed: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []

    def over(what: str, value: Any, limit: int) -> None:
        if _len(value) > limit:
            problems.append(f"{where}: {what} has {_len(value)} characters (limit {limit})")

    over("title", embed.get("title"), LIMITS["title"])
    over("description", embed.get("description"), LIMITS["description"])
    fields = embed.get("fields") or []
    if len(fields) > LIMITS["fields"]:
        problems.append(f"{where}: {len(fields)} fields (limit {LIMITS['fields']})")
    for i, f in enumerate(fields):
        name, value = f.get("name"), f.get("value")
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{where}: field {i} has an empty name")
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{where}: field {i} has an empty value")
        over(f"field {i} name", name, LIMITS["field_name"])
        over(f"field {i} value", value, LIMITS["field_value"])
    over("footer", (embed.get("footer") or {}).get("text"), LIMITS["footer"])
    over("author", (embed.get("author") or {}).get("name"), LIMITS["author"])
    total = (
        _len(embed.get("title"))
        + _len(embed.get("description"))
        + sum(_len(f.get("name")) + _len(f.get("value")) for f in fields)
        + _len((embed.get("footer") or {}).get("text"))
        + _len((embed.get("author") or {}).get("name"))
    )
    if total > LIMITS["embed_total"]:
        problems.append(f"{where}: the embed has {total} characters in all (limit {LIMITS['embed_total']})")
    return problems


def check_components(rows: list[dict[str, Any]], where: str) -> list[str]:
    problems: list[str] = []
    if len(rows) > LIMITS["action_rows"]:
        problems.append(f"{where}: {len(rows)} action rows (limit 5)")
    for r, row in enumerate(rows):
        if row.get("type") != 1:
            problems.append(f"{where}: component {r} is not an action row")
            continue
        items = row.get("components") or []
        if not items or len(items) > LIMITS["row_items"]:
            problems.append(f"{where}: action row {r} has {len(items)} items (1 to 5)")
        for item in items:
            if item.get("type") == 2:
                if _len(item.get("label")) > LIMITS["label"]:
                    problems.append(f"{where}: a button label is over {LIMITS['label']} characters")
                if item.get("style") != 5:
                    cid = item.get("custom_id")
                    if not isinstance(cid, str) or not 1 <= len(cid) <= LIMITS["custom_id"]:
                        problems.append(f"{where}: a button custom_id is missing or over 100 characters")
    return problems


def check_message(payload: dict[str, Any], where: str, files: int = 0, editing: bool = False) -> list[str]:
    """What Discord would refuse in a message create or edit body."""
    problems: list[str] = []
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        problems.append(f"{where}: content is not a string")
    elif _len(content) > LIMITS["content"]:
        problems.append(f"{where}: content has {_len(content)} characters (limit {LIMITS['content']})")
    embeds = payload.get("embeds") or []
    if len(embeds) > LIMITS["embeds"]:
        problems.append(f"{where}: {len(embeds)} embeds (limit {LIMITS['embeds']})")
    for i, embed in enumerate(embeds):
        problems += check_embed(embed, f"{where} embed {i}")
    problems += check_components(payload.get("components") or [], where)
    if files > LIMITS["files"]:
        problems.append(f"{where}: {files} files (limit {LIMITS['files']})")
    if not editing and not (content or embeds or files or payload.get("components")):
        problems.append(f"{where}: an empty message (50006)")
    return problems


def check_modal(data: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    title, cid = data.get("title"), data.get("custom_id")
    if not isinstance(title, str) or not 1 <= len(title) <= LIMITS["modal_title"]:
        problems.append(f"{where}: modal title must be 1 to 45 characters, got {title!r}")
    if not isinstance(cid, str) or not 1 <= len(cid) <= LIMITS["custom_id"]:
        problems.append(f"{where}: modal custom_id must be 1 to 100 characters")
    rows = data.get("components") or []
    if not 1 <= len(rows) <= 5:
        problems.append(f"{where}: a modal has 1 to 5 components")
    for row in rows:
        inputs = row.get("components") or ([row["component"]] if "component" in row else [])
        for item in inputs:
            if item.get("type") != 4:
                continue
            if row.get("type") == 1 and _len(item.get("label")) > LIMITS["input_label"]:
                problems.append(f"{where}: text input label over 45 characters")
            if _len(item.get("placeholder")) > LIMITS["placeholder"]:
                problems.append(f"{where}: text input placeholder over 100 characters")
            if int(item.get("max_length") or 0) > LIMITS["input_max"]:
                problems.append(f"{where}: text input max_length over 4000")
    return problems


# --------------------------------------------------------------------------- records


def iso(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).isoformat()


def user_json(user_id: int) -> dict[str, Any]:
    if user_id == BOT_ID:
        return {
            "id": str(BOT_ID),
            "username": "AutoGPT",
            "discriminator": "0",
            "global_name": None,
            "avatar": None,
            "bot": True,
            "flags": 0,
            "public_flags": 0,
        }
    name = USERS.get(user_id, f"user{user_id}")
    return {
        "id": str(user_id),
        "username": name,
        "discriminator": "0",
        "global_name": name.title(),
        "avatar": None,
        "public_flags": 0,
    }


def member_json(user_id: int, with_user: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "roles": [],
        "joined_at": iso(datetime(2024, 1, 1, tzinfo=UTC)),
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": False,
        "nick": None,
        "avatar": None,
    }
    if with_user:
        out["user"] = user_json(user_id)
    return out


@dataclass
class Message:
    """A message as Discord holds it; `versions` are its successive JSON forms."""

    id: int
    channel_id: int
    author_id: int
    versions: list[dict[str, Any]]
    files: dict[str, bytes] = field(default_factory=dict)
    ephemeral_to: int | None = None  # an ephemeral message: only this user sees it
    interaction_id: int | None = None

    @property
    def current(self) -> dict[str, Any]:
        return self.versions[-1]

    @property
    def content(self) -> str:
        return str(self.current.get("content") or "")

    @property
    def embeds(self) -> list[dict[str, Any]]:
        return list(self.current.get("embeds") or [])

    @property
    def embed(self) -> dict[str, Any]:
        assert self.embeds, f"message {self.id} has no embed"
        return self.embeds[0]

    @property
    def title(self) -> str:
        return str(self.embeds[0].get("title") or "") if self.embeds else ""

    @property
    def edits(self) -> int:
        return len(self.versions) - 1

    @property
    def flags(self) -> int:
        return int(self.current.get("flags") or 0)

    def field(self, name: str) -> str:
        for f in self.embed.get("fields") or []:
            if f["name"] == name:
                return str(f["value"])
        raise KeyError(f"no field {name!r} in message {self.id}: {self.embed.get('fields')}")

    def all_text(self, version: int = -1) -> str:
        data = self.versions[version]
        parts = [str(data.get("content") or "")]
        for embed in data.get("embeds") or []:
            parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
            for f in embed.get("fields") or []:
                parts += [str(f.get("name")), str(f.get("value"))]
            parts.append(str((embed.get("footer") or {}).get("text") or ""))
        return "\n".join(p for p in parts if p)

    def buttons(self, version: int = -1) -> list[dict[str, Any]]:
        rows = self.versions[version].get("components") or []
        return [item for row in rows for item in row.get("components") or [] if item.get("type") == 2]

    def button(self, label: str, version: int = -1) -> dict[str, Any]:
        found = [b for b in self.buttons(version) if b.get("label") == label]
        assert found, f"no button {label!r} on message {self.id}: {[b.get('label') for b in self.buttons()]}"
        return found[0]


@dataclass
class Interaction:
    id: int
    token: str
    type: int
    user_id: int
    payload: dict[str, Any]
    dispatched_at: float
    callbacks: list[dict[str, Any]] = field(default_factory=list)  # {"type", "data", "after_s"}
    original: Message | None = None
    followups: list[Message] = field(default_factory=list)
    answered_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def callback(self) -> dict[str, Any]:
        assert self.callbacks, f"interaction {self.id} was not answered"
        return self.callbacks[0]

    @property
    def response_type(self) -> int:
        return int(self.callback["type"])

    @property
    def ephemeral(self) -> bool:
        return bool(int((self.callback.get("data") or {}).get("flags") or 0) & EPHEMERAL)

    def texts(self) -> list[str]:
        """What the user was told: the response message, its edits and the follow-ups."""
        out: list[str] = []
        data = self.callback.get("data") or {} if self.callbacks else {}
        if self.callbacks and self.response_type == 4:
            out.append(str(data.get("content") or ""))
        if self.original is not None and self.response_type == 5:
            out.append(self.original.content)
        out += [m.content for m in self.followups]
        return [t for t in out if t]

    def private_texts(self) -> list[str]:
        """The texts only the clicking user saw (ephemeral response and follow-ups)."""
        out: list[str] = []
        if self.callbacks and self.ephemeral:
            if self.response_type == 4:
                out.append(str((self.callback.get("data") or {}).get("content") or ""))
            elif self.original is not None:
                out.append(self.original.content)
        out += [m.content for m in self.followups if m.flags & EPHEMERAL]
        return [t for t in out if t]

    async def answered(self, within: float = 5.0) -> Interaction:
        await asyncio.wait_for(self.answered_event.wait(), within)
        return self


@dataclass
class _Failure:
    method: str
    path: re.Pattern[str]
    status: int
    code: int
    message: str
    times: int
    when: Callable[[dict[str, Any]], bool] | None
    retry_after: float | None = None


@dataclass
class Request:
    method: str
    path: str
    body: Any
    at: float


class _Connection:
    """One gateway websocket: its compression, intents and sequence."""

    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws = ws
        self.compress = compress
        self.zlib = zlib.compressobj() if compress == "zlib-stream" else None
        self.seq = 0
        self.intents: int | None = None
        self.identify: dict[str, Any] | None = None
        self.sent: list[dict[str, Any]] = []
        self.lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> None:
        async with self.lock:
            if self.ws.closed:
                return
            self.sent.append(payload)
            data = json.dumps(payload).encode()
            if self.zlib is not None:
                await self.ws.send_bytes(self.zlib.compress(data) + self.zlib.flush(zlib.Z_SYNC_FLUSH))
            else:
                await self.ws.send_str(data.decode())

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        await self.send({"op": 0, "t": event, "s": self.seq, "d": data})


def _json(data: Any, status: int = 200) -> web.Response:
    # exactly `application/json`: discord.py parses a reply as JSON only then (no charset)
    return web.Response(
        status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )


class FakeDiscord:
    def __init__(
        self,
        *,
        allow_privileged: int = 0,
        heartbeat_interval_ms: int = 41250,
        host: str = "127.0.0.1",
    ) -> None:
        self.host = host
        self.allow_privileged = allow_privileged  # intents enabled in the "Developer Portal"
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.violations: list[str] = []
        self.requests: list[Request] = []
        self.failed: list[Request] = []  # requests answered with an injected failure
        self.connections: list[_Connection] = []
        self.identifies: list[dict[str, Any]] = []
        self.gateway_queries: list[dict[str, str]] = []
        self.heartbeats = 0
        self.resumes = 0
        self.gateway_open = True  # False: new gateway connections are refused (an outage)
        self.sessions: dict[str, _Connection] = {}  # gateway session id -> the connection that made it
        self.channels: dict[int, dict[str, Any]] = {
            CHANNEL_ID: {
                "id": str(CHANNEL_ID),
                "type": 0,
                "guild_id": str(GUILD_ID),
                "name": "general",
                "position": 0,
                "permission_overwrites": [],
                "nsfw": False,
                "parent_id": None,
                "topic": None,
                "last_message_id": None,
                "rate_limit_per_user": 0,
                "flags": 0,
            }
        }
        self.messages: dict[int, Message] = {}
        self.deleted: list[Message] = []
        self.interactions: dict[int, Interaction] = {}
        self.commands: list[dict[str, Any]] = []
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1)
        self._last_activity = time.monotonic()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ life

    async def start(self) -> FakeDiscord:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._api)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        for conn in self.connections:
            with contextlib.suppress(Exception):
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway/"

    def snowflake(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._ids) & 0x3FFFFF)

    def quiet_for(self) -> float:
        return time.monotonic() - self._last_activity

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    # ------------------------------------------------------------------ test controls

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 403,
        code: int = 50013,
        message: str = "Missing Permissions",
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """The next `times` requests matching (method, path regex, `when(body)`) fail."""
        self._failures.append(_Failure(method, re.compile(path), status, code, message, times, when))

    def rate_limit(self, method: str, path: str, *, retry_after: float = 0.05, times: int = 1) -> None:
        """The next `times` matching requests get 429 with `retry_after`, as Discord sends it."""
        failure = _Failure(
            method, re.compile(path), 429, 0, "You are being rate limited.", times, None, retry_after
        )
        self._failures.append(failure)

    def unanswered(self) -> list[int]:
        return [i.id for i in self.interactions.values() if not i.callbacks]

    def live(self) -> list[_Connection]:
        return [c for c in self.connections if not c.ws.closed and c.identify is not None]

    async def wait_connected(self, count: int = 1, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while len(self.live()) < count:
            assert time.monotonic() < deadline, "the bot did not connect to the gateway"
            await asyncio.sleep(0.01)

    def in_channel(self, channel_id: int) -> list[Message]:
        return [m for m in self.messages.values() if m.channel_id == channel_id and m.ephemeral_to is None]

    def thread_of(self, message: Message) -> dict[str, Any]:
        thread = message.current.get("thread")
        assert thread is not None, f"no thread was opened from message {message.id}"
        return self.channels[int(thread["id"])]

    def threads(self) -> list[dict[str, Any]]:
        return [c for c in self.channels.values() if c["type"] == 11]

    # ------------------------------------------------------------------ users act

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self._touch()
        for conn in self.live():
            if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
                shown = self._as_seen_by(conn, data)
                if shown is None:
                    continue
                await conn.dispatch(event, shown)
            else:
                await conn.dispatch(event, data)

    def _as_seen_by(self, conn: _Connection, data: dict[str, Any]) -> dict[str, Any] | None:
        """A message as a connection with these intents receives it."""
        intents = conn.intents or 0
        guild = data.get("guild_id") is not None
        if not intents & (INTENT_GUILD_MESSAGES if guild else INTENT_DIRECT_MESSAGES):
            return None
        mentioned = any(str(u.get("id")) == str(BOT_ID) for u in data.get("mentions") or [])
        own = str((data.get("author") or {}).get("id")) == str(BOT_ID)
        if intents & INTENT_MESSAGE_CONTENT or mentioned or own or not guild:
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    async def say(
        self,
        user: int,
        text: str,
        *,
        channel: int = CHANNEL_ID,
        mention: bool = True,
    ) -> Message:
        """`user` posts `text` in `channel` (a thread id works too), mentioning the bot first."""
        assert channel in self.channels, f"no channel {channel}"
        content = f"<@{BOT_ID}> {text}" if mention else text
        data = self._message_json(self.snowflake(), channel, user, {"content": content})
        if mention:
            data["mentions"] = [{**user_json(BOT_ID), "member": member_json(BOT_ID, with_user=False)}]
        message = Message(int(data["id"]), channel, user, [data])
        self.messages[message.id] = message
        await self.dispatch("MESSAGE_CREATE", data)
        return message

    def _base_interaction(self, kind: int, user: int, channel_id: int) -> dict[str, Any]:
        iid = self.snowflake()
        return {
            "id": str(iid),
            "application_id": str(APP_ID),
            "type": kind,
            "token": f"itoken-{iid}",
            "version": 1,
            "guild_id": str(GUILD_ID),
            "guild": {"id": str(GUILD_ID), "locale": "en-US", "features": []},
            "channel_id": str(channel_id),
            "channel": self.channels[channel_id],
            "member": {**member_json(user), "permissions": "2248473465835073"},
            "app_permissions": "2248473465835073",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "attachment_size_limit": LIMITS["file_bytes"],
        }

    async def _interact(self, payload: dict[str, Any], user: int) -> Interaction:
        interaction = Interaction(
            id=int(payload["id"]),
            token=payload["token"],
            type=payload["type"],
            user_id=user,
            payload=payload,
            dispatched_at=time.monotonic(),
        )
        self.interactions[interaction.id] = interaction
        await self.dispatch("INTERACTION_CREATE", payload)
        return interaction

    async def click(self, message: Message, label: str, user: int, *, version: int = -1) -> Interaction:
        """`user` clicks the button labelled `label` on `message` (as shown in `version`)."""
        button = message.button(label, version)
        assert not button.get("disabled"), f"button {label!r} is disabled"
        payload = self._base_interaction(3, user, message.channel_id)
        payload["message"] = message.versions[version]
        payload["data"] = {"custom_id": button["custom_id"], "component_type": 2}
        return await self._interact(payload, user)

    def modal_of(self, opened: Interaction) -> dict[str, Any]:
        modal: dict[str, Any] | None = next((c["data"] for c in opened.callbacks if c["type"] == 9), None)
        assert modal is not None, f"interaction {opened.id} was not answered with a modal"
        return modal

    async def submit_modal(self, opened: Interaction, user: int, text: str) -> Interaction:
        """`user` fills in the first text input of the modal `opened` was answered with."""
        modal = self.modal_of(opened)
        rows = []
        filled = False
        for row in modal.get("components") or []:
            items = row.get("components") or ([row["component"]] if "component" in row else [])
            values = []
            for item in items:
                if item.get("type") == 4:
                    values.append(
                        {"type": 4, "custom_id": item["custom_id"], "value": "" if filled else text}
                    )
                    filled = True
            if row.get("type") == 18:
                rows.append({"type": 18, "component": values[0]})
            else:
                rows.append({"type": 1, "components": values})
        source = opened.payload
        payload = self._base_interaction(5, user, int(source["channel_id"]))
        if "message" in source:
            current = self.messages.get(int(source["message"]["id"]))
            payload["message"] = current.current if current else source["message"]
        payload["data"] = {"custom_id": modal["custom_id"], "components": rows}
        return await self._interact(payload, user)

    async def slash(self, user: int, name: str, *, channel: int = CHANNEL_ID, **options: str) -> Interaction:
        """`user` runs the application command `name` the bot registered, with `options`."""
        command = next((c for c in self.commands if c["name"] == name), None)
        assert command is not None, f"the bot registered no /{name}: {[c['name'] for c in self.commands]}"
        known = {o["name"]: o for o in command.get("options") or []}
        for key in options:
            assert key in known, f"/{name} has no option {key!r}"
        for key, option in known.items():
            assert not option.get("required") or key in options, f"/{name} needs {key!r}"
        payload = self._base_interaction(2, user, channel)
        payload["data"] = {
            "id": command["id"],
            "name": name,
            "type": 1,
            "options": [{"name": k, "type": known[k]["type"], "value": v} for k, v in options.items()],
        }
        return await self._interact(payload, user)

    # ------------------------------------------------------------------ gateway

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway connection, as Discord does now and then (clients resume)."""
        for conn in list(self.live()):
            await conn.ws.close(code=code)

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if not self.gateway_open:
            return web.Response(status=503, text="gateway unavailable")
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        query = dict(request.query)
        self.gateway_queries.append(query)
        if query.get("v") != "10" or query.get("encoding") != "json":
            self.violations.append(f"gateway: unexpected query {query}")
        compress = query.get("compress")
        if compress not in (None, "zlib-stream"):
            self.violations.append(f"gateway: compression {compress!r} is not spoken by this fake")
        conn = _Connection(ws, compress if compress == "zlib-stream" else None)
        self.connections.append(conn)
        await conn.send(
            {"op": 10, "d": {"heartbeat_interval": self.heartbeat_interval_ms}, "s": None, "t": None}
        )
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op = frame.get("op")
                if op == 1:
                    self.heartbeats += 1
                    await conn.send({"op": 11, "d": None, "s": None, "t": None})
                elif op == 2:
                    await self._identify(conn, frame.get("d") or {})
                elif op == 6:
                    await self._resume(conn, frame.get("d") or {})
        finally:
            if not ws.closed:
                await ws.close()
        return ws

    async def _resume(self, conn: _Connection, data: dict[str, Any]) -> None:
        """RESUME a session this fake started (missed events are not replayed); else op 9."""
        known = self.sessions.get(str(data.get("session_id")))
        if data.get("token") != TOKEN or known is None:
            await conn.send({"op": 9, "d": False, "s": None, "t": None})
            return
        self.resumes += 1
        conn.intents, conn.identify = known.intents, known.identify
        conn.seq = int(data.get("seq") or 0)
        await conn.dispatch("RESUMED", {})

    async def _identify(self, conn: _Connection, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != TOKEN:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents") or 0)
        missing = [
            name for bit, name in PRIVILEGED.items() if intents & bit and not self.allow_privileged & bit
        ]
        if missing:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        conn.intents = intents
        conn.identify = data
        session_id = f"session-{len(self.identifies)}"
        self.sessions[session_id] = conn
        await conn.dispatch(
            "READY",
            {
                "v": 10,
                "user": {**user_json(BOT_ID), "verified": True, "mfa_enabled": False, "email": None},
                "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                "session_id": session_id,
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(APP_ID), "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        await conn.dispatch("GUILD_CREATE", self._guild_json())

    def _guild_json(self) -> dict[str, Any]:
        everyone = {
            "id": str(GUILD_ID),
            "name": "@everyone",
            "permissions": "2248473465835073",
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        return {
            "id": str(GUILD_ID),
            "name": "Test server",
            "icon": None,
            "owner_id": str(OWNER),
            "features": [],
            "roles": [everyone],
            "emojis": [],
            "stickers": [],
            "channels": [c for c in self.channels.values() if c["type"] != 11],
            "threads": [c for c in self.channels.values() if c["type"] == 11],
            "members": [member_json(BOT_ID)],
            "member_count": 4,
            "large": False,
            "unavailable": False,
            "joined_at": iso(datetime(2024, 1, 1, tzinfo=UTC)),
            "voice_states": [],
            "presences": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "premium_tier": 0,
            "system_channel_flags": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
            "afk_timeout": 300,
        }

    # ------------------------------------------------------------------ REST

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body: dict[str, Any] = {}
            for key, value in form.items():
                if key == "payload_json":
                    body = json.loads(str(value))
                elif isinstance(value, FileField):
                    files[str(value.filename)] = value.file.read()
            return body, files
        raw = await request.read()
        return (json.loads(raw) if raw else {}), files

    async def _api(self, request: web.Request) -> web.StreamResponse:
        self._touch()
        path = "/" + request.match_info["path"]
        body, files = await self._body(request)
        self.requests.append(Request(request.method, path, body, time.monotonic()))
        for failure in self._failures:
            if (
                failure.times > 0
                and failure.method == request.method
                and failure.path.fullmatch(path)
                and (failure.when is None or failure.when(body))
            ):
                failure.times -= 1
                self.failed.append(Request(request.method, path, body, time.monotonic()))
                if failure.retry_after is not None:
                    limited = _json(
                        {"message": failure.message, "retry_after": failure.retry_after, "global": False}, 429
                    )
                    limited.headers.update(
                        {
                            "Via": "1.1 google",
                            "Retry-After": str(failure.retry_after),
                            "X-RateLimit-Limit": "5",
                            "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset-After": str(failure.retry_after),
                            "X-RateLimit-Bucket": "fake-bucket",
                            "X-RateLimit-Scope": "user",
                        }
                    )
                    return limited
                return _json({"message": failure.message, "code": failure.code}, failure.status)
        webhook = path.startswith("/interactions/") or path.startswith("/webhooks/")
        if not webhook and request.headers.get("Authorization") != f"Bot {TOKEN}":
            return _json({"message": "401: Unauthorized", "code": 0}, 401)
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if method == request.method and match:
                try:
                    return await handler(request, body, files, *match.groups())
                finally:
                    self._touch()
        self.violations.append(f"unexpected request {request.method} {path}")
        return _json({"message": "404: Not Found", "code": 0}, 404)

    def _routes(self) -> list[tuple[str, str, Callable[..., Awaitable[web.StreamResponse]]]]:
        return [
            ("GET", r"/gateway", self._r_gateway),
            ("GET", r"/gateway/bot", self._r_gateway),
            ("GET", r"/users/@me", self._r_me),
            ("GET", r"/oauth2/applications/@me", self._r_application),
            ("GET", r"/applications/@me", self._r_application),
            ("GET", r"/applications/(\d+)/commands", self._r_commands),
            ("PUT", r"/applications/(\d+)/commands", self._r_sync),
            ("GET", r"/channels/(\d+)", self._r_channel),
            ("POST", r"/channels/(\d+)/messages", self._r_create),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._r_get_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._r_edit),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._r_delete),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._r_thread),
            ("POST", r"/interactions/(\d+)/([^/]+)/callback", self._r_callback),
            ("POST", r"/webhooks/(\d+)/([^/]+)", self._r_followup),
            ("GET", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._r_webhook_get),
            ("PATCH", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._r_webhook_edit),
            ("DELETE", r"/webhooks/(\d+)/([^/]+)/messages/(@original|\d+)", self._r_webhook_delete),
        ]

    async def _r_gateway(self, request: web.Request, body: Any, files: Any) -> web.Response:
        self.violations.append(
            "the bot asked the API for the gateway address instead of using DEFAULT_GATEWAY"
        )
        return _json({"url": self.gateway_url.rstrip("/"), "shards": 1})

    async def _r_me(self, request: web.Request, body: Any, files: Any) -> web.Response:
        return _json({**user_json(BOT_ID), "verified": True, "mfa_enabled": False})

    async def _r_application(self, request: web.Request, body: Any, files: Any) -> web.Response:
        return _json(
            {
                "id": str(APP_ID),
                "name": "AutoGPT",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user_json(OWNER),
                "verify_key": "0" * 64,
                "flags": 0,
                "team": None,
                "summary": "",
                "rpc_origins": [],
            }
        )

    async def _r_commands(self, request: web.Request, body: Any, files: Any, app: str) -> web.Response:
        return _json(self.commands)

    async def _r_sync(self, request: web.Request, body: Any, files: Any, app: str) -> web.Response:
        problems: list[str] = []
        for command in body:
            name = command.get("name", "")
            if not re.fullmatch(r"[-_\w]{1,32}", name) or name != name.lower():
                problems.append(f"command name {name!r} is not valid")
            if not 1 <= len(command.get("description") or "") <= 100:
                problems.append(f"/{name}: description must be 1 to 100 characters")
            for option in command.get("options") or []:
                if not 1 <= len(option.get("description") or "") <= 100:
                    problems.append(f"/{name} {option.get('name')}: description must be 1 to 100 characters")
        if refused := self._refuse(problems):
            return refused
        self.commands = [
            {**c, "id": str(self.snowflake()), "application_id": str(APP_ID), "version": "1"} for c in body
        ]
        return _json(self.commands)

    async def _r_channel(self, request: web.Request, body: Any, files: Any, cid: str) -> web.Response:
        channel = self.channels.get(int(cid))
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        return _json(channel)

    def _refuse(self, problems: list[str]) -> web.Response | None:
        if not problems:
            return None
        self.violations += problems
        return _json({"message": "Invalid Form Body", "code": 50035, "errors": problems}, 400)

    def _message_json(self, mid: int, channel_id: int, author: int, body: dict[str, Any]) -> dict[str, Any]:
        channel = self.channels.get(channel_id, {})
        data: dict[str, Any] = {
            "id": str(mid),
            "channel_id": str(channel_id),
            "author": user_json(author),
            "content": body.get("content") or "",
            "timestamp": iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [],
            "mention_roles": [],
            "attachments": [],
            "embeds": body.get("embeds") or [],
            "components": body.get("components") or [],
            "pinned": False,
            "type": 0,
            "flags": int(body.get("flags") or 0),
        }
        if channel.get("guild_id"):
            data["guild_id"] = channel["guild_id"]
            data["member"] = member_json(author, with_user=False)
        if author == BOT_ID:
            data["application_id"] = str(APP_ID)
        return data

    def _attachments(self, files: dict[str, bytes]) -> list[dict[str, Any]]:
        return [
            {
                "id": str(self.snowflake()),
                "filename": name,
                "size": len(content),
                "url": f"http://{self.host}:{self.port}/attachments/{name}",
                "proxy_url": f"http://{self.host}:{self.port}/attachments/{name}",
                "content_type": "text/plain; charset=utf-8",
            }
            for name, content in files.items()
        ]

    async def _r_create(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], cid: str
    ) -> web.Response:
        channel_id = int(cid)
        channel = self.channels.get(channel_id)
        if channel is None:
            return _json({"message": "Unknown Channel", "code": 10003}, 404)
        problems = check_message(body, f"POST /channels/{cid}/messages", files=len(files))
        problems += [f"file {n} is over 10 MiB" for n, c in files.items() if len(c) > LIMITS["file_bytes"]]
        ref = body.get("message_reference")
        if ref is not None:
            target = self.messages.get(int(ref.get("message_id") or 0))
            if target is None or target.channel_id != channel_id:
                problems.append(f"POST /channels/{cid}/messages: reply to an unknown message (50035)")
        if refused := self._refuse(problems):
            return refused
        data = self._message_json(self.snowflake(), channel_id, BOT_ID, body)
        data["attachments"] = self._attachments(files)
        if ref is not None:
            data["type"] = 19
            data["message_reference"] = {"message_id": str(ref["message_id"]), "channel_id": cid}
        message = Message(int(data["id"]), channel_id, BOT_ID, [data], files=files)
        self.messages[message.id] = message
        channel["last_message_id"] = data["id"]
        await self.dispatch("MESSAGE_CREATE", data)
        return _json(data)

    async def _r_get_message(
        self, request: web.Request, body: Any, files: Any, cid: str, mid: str
    ) -> web.Response:
        message = self.messages.get(int(mid))
        if message is None or message.channel_id != int(cid) or message.ephemeral_to is not None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        return _json(message.current)

    def _apply_edit(
        self, message: Message, body: dict[str, Any], files: dict[str, bytes], where: str
    ) -> web.Response | None:
        if refused := self._refuse(check_message(body, where, files=len(files), editing=True)):
            return refused
        data = dict(message.current)
        for key in ("content", "embeds", "components"):
            if key in body:
                data[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        if "flags" in body and body["flags"] is not None:
            data["flags"] = (data.get("flags", 0) & ~LOADING) | int(body["flags"])
        else:
            data["flags"] = data.get("flags", 0) & ~LOADING
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            data["attachments"] = [a for a in data.get("attachments", []) if a["id"] in keep]
        if files:
            data["attachments"] = data.get("attachments", []) + self._attachments(files)
            message.files.update(files)
        if not (
            data.get("content") or data.get("embeds") or data.get("attachments") or data.get("components")
        ):
            self.violations.append(f"{where}: the edit leaves an empty message (50006)")
            return _json({"message": "Cannot send an empty message", "code": 50006}, 400)
        data["edited_timestamp"] = iso()
        message.versions.append(data)
        return None

    async def _r_edit(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], cid: str, mid: str
    ) -> web.Response:
        message = self.messages.get(int(mid))
        if message is None or message.channel_id != int(cid) or message.ephemeral_to is not None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        if message.author_id != BOT_ID:
            return _json({"message": "Cannot edit a message authored by another user", "code": 50005}, 403)
        if refused := self._apply_edit(message, body, files, f"PATCH /channels/{cid}/messages/{mid}"):
            return refused
        await self.dispatch("MESSAGE_UPDATE", message.current)
        return _json(message.current)

    async def _r_delete(
        self, request: web.Request, body: Any, files: Any, cid: str, mid: str
    ) -> web.Response:
        message = self.messages.get(int(mid))
        if message is None or message.channel_id != int(cid) or message.ephemeral_to is not None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        if message.author_id != BOT_ID:
            return _json({"message": "Missing Permissions", "code": 50013}, 403)
        del self.messages[message.id]
        self.deleted.append(message)
        await self.dispatch("MESSAGE_DELETE", {"id": mid, "channel_id": cid, "guild_id": str(GUILD_ID)})
        return web.Response(status=204)

    async def _r_thread(
        self, request: web.Request, body: dict[str, Any], files: Any, cid: str, mid: str
    ) -> web.Response:
        parent = self.channels.get(int(cid))
        message = self.messages.get(int(mid))
        if parent is None or message is None or message.channel_id != int(cid):
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        if parent["type"] not in (0, 5):
            return _json({"message": "Cannot execute action on this channel type", "code": 50024}, 400)
        if message.current.get("thread"):
            return _json(
                {"message": "A thread has already been created for this message", "code": 160004}, 400
            )
        name = body.get("name")
        problems = []
        if not isinstance(name, str) or not 1 <= len(name) <= LIMITS["thread_name"]:
            problems.append(f"POST threads: name must be 1 to 100 characters, got {name!r}")
        if body.get("auto_archive_duration") not in (None, 60, 1440, 4320, 10080):
            problems.append(f"POST threads: auto_archive_duration {body.get('auto_archive_duration')}")
        if refused := self._refuse(problems):
            return refused
        now = datetime.now(UTC)
        thread = {
            "id": str(message.id),  # as on Discord: a thread opened from a message has its id
            "type": 11,
            "guild_id": str(GUILD_ID),
            "parent_id": cid,
            "owner_id": str(BOT_ID),
            "name": name,
            "last_message_id": None,
            "message_count": 0,
            "member_count": 1,
            "total_message_sent": 0,
            "rate_limit_per_user": 0,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": body.get("auto_archive_duration") or 4320,
                "archive_timestamp": iso(now),
                "locked": False,
                "create_timestamp": iso(now),
            },
        }
        self.channels[message.id] = thread
        message.versions.append({**message.current, "thread": thread, "flags": message.flags | HAS_THREAD})
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread)

    # ------------------------------------------------------------------ interactions

    def _interaction(self, iid: int | None, token: str) -> Interaction | None:
        if iid is not None:
            found = self.interactions.get(iid)
            return found if found is not None and found.token == token else None
        return next((i for i in self.interactions.values() if i.token == token), None)

    async def _r_callback(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], iid: str, token: str
    ) -> web.Response:
        interaction = self._interaction(int(iid), token)
        if interaction is None:
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        after = time.monotonic() - interaction.dispatched_at
        if after > ANSWER_WITHIN_S:
            self.violations.append(f"interaction {iid} answered after {after:.1f} s (limit 3 s)")
            return _json({"message": "Unknown interaction", "code": 10062}, 404)
        if interaction.callbacks:
            self.violations.append(f"interaction {iid} answered twice")
            return _json({"message": "Interaction has already been acknowledged.", "code": 40060}, 400)
        kind = int(body.get("type") or 0)
        data = body.get("data") or {}
        where = f"interaction {iid} callback type {kind}"
        allowed = {2: {4, 5}, 3: {4, 5, 6, 7, 9}, 5: {4, 5, 6, 7}}.get(interaction.type, set())
        problems = [] if kind in allowed else [f"{where}: not valid for interaction type {interaction.type}"]
        if kind in (4, 7):
            problems += check_message(data, where, files=len(files), editing=kind == 7)
        elif kind == 9:
            problems += check_modal(data, where)
        if refused := self._refuse(problems):
            return refused
        interaction.callbacks.append({"type": kind, "data": data, "after_s": after})
        interaction.answered_event.set()
        channel_id = int(interaction.payload["channel_id"])
        flags = int(data.get("flags") or 0)
        resource: dict[str, Any] = {"type": kind}
        if kind in (4, 5):
            message_body = dict(data) if kind == 4 else {"content": "", "flags": flags | LOADING}
            msg = self._message_json(self.snowflake(), channel_id, BOT_ID, message_body)
            msg["interaction_metadata"] = {
                "id": iid,
                "type": interaction.type,
                "user": user_json(interaction.user_id),
            }
            message = Message(
                int(msg["id"]),
                channel_id,
                BOT_ID,
                [msg],
                files=files,
                ephemeral_to=interaction.user_id if flags & EPHEMERAL else None,
                interaction_id=interaction.id,
            )
            self.messages[message.id] = message
            interaction.original = message
            resource["message"] = msg
            if message.ephemeral_to is None and kind == 4:
                await self.dispatch("MESSAGE_CREATE", msg)
        elif kind == 7:
            target = self.messages[int(interaction.payload["message"]["id"])]
            if refused := self._apply_edit(target, data, files, where):
                return refused
            interaction.original = target
            resource["message"] = target.current
        elif kind == 6 and "message" in interaction.payload:
            interaction.original = self.messages.get(int(interaction.payload["message"]["id"]))
        if request.query.get("with_response") not in ("1", "true", "True"):
            return web.Response(status=204)
        reply = {
            "interaction": {
                "id": iid,
                "type": interaction.type,
                "response_message_id": resource.get("message", {}).get("id"),
                "response_message_loading": kind == 5,
                "response_message_ephemeral": bool(flags & EPHEMERAL),
            },
            "resource": resource,
        }
        return _json(reply)

    async def _r_followup(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], app: str, token: str
    ) -> web.Response:
        interaction = self._interaction(None, token)
        if app != str(APP_ID) or interaction is None:
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        if not interaction.callbacks:
            self.violations.append(f"follow-up to interaction {interaction.id} before it was answered")
            return _json({"message": "Unknown Webhook", "code": 10015}, 404)
        if refused := self._refuse(check_message(body, f"follow-up to {interaction.id}", files=len(files))):
            return refused
        channel_id = int(interaction.payload["channel_id"])
        flags = int(body.get("flags") or 0)
        msg = self._message_json(self.snowflake(), channel_id, BOT_ID, body)
        msg["webhook_id"] = str(APP_ID)
        message = Message(
            int(msg["id"]),
            channel_id,
            BOT_ID,
            [msg],
            files=files,
            ephemeral_to=interaction.user_id if flags & EPHEMERAL else None,
            interaction_id=interaction.id,
        )
        self.messages[message.id] = message
        interaction.followups.append(message)
        if message.ephemeral_to is None:
            await self.dispatch("MESSAGE_CREATE", msg)
        if request.query.get("wait") in ("1", "true", "True"):
            return _json(msg)
        return web.Response(status=204)

    def _webhook_message(self, app: str, token: str, which: str) -> Message | None:
        interaction = self._interaction(None, token)
        if app != str(APP_ID) or interaction is None:
            return None
        if which == "@original":
            return interaction.original
        found = next((m for m in interaction.followups if str(m.id) == which), None)
        return found

    async def _r_webhook_get(
        self, request: web.Request, body: Any, files: Any, app: str, token: str, which: str
    ) -> web.Response:
        message = self._webhook_message(app, token, which)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        return _json(message.current)

    async def _r_webhook_edit(
        self,
        request: web.Request,
        body: dict[str, Any],
        files: dict[str, bytes],
        app: str,
        token: str,
        which: str,
    ) -> web.Response:
        message = self._webhook_message(app, token, which)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        if refused := self._apply_edit(message, body, files, f"PATCH webhook message {which}"):
            return refused
        if message.ephemeral_to is None:
            await self.dispatch("MESSAGE_UPDATE", message.current)
        return _json(message.current)

    async def _r_webhook_delete(
        self, request: web.Request, body: Any, files: Any, app: str, token: str, which: str
    ) -> web.Response:
        message = self._webhook_message(app, token, which)
        if message is None:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        self.messages.pop(message.id, None)
        return web.Response(status=204)

    # ------------------------------------------------------------------ checks for tests

    def problems(self) -> list[str]:
        """What every test expects empty: limit violations, protocol errors, unanswered interactions."""
        return self.violations + [f"interaction {i} was never answered" for i in self.unanswered()]


# --------------------------------------------------------------------------- the bot under test


def discord_settings(settings: Settings, api: FakeDiscord, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "discord_bot_token": SecretStr(TOKEN),
        "discord_api_url": api.api_url,
        "discord_gateway_url": api.gateway_url,
        "discord_admin_user_ids": [str(ADMIN)],
    }
    values.update(overrides)
    return settings.model_copy(update=values)


class DiscordBot:
    """The core and the Discord adapter, started against a `FakeDiscord` (and restartable)."""

    def __init__(self, settings: Settings, api: FakeDiscord) -> None:
        self.settings = settings
        self.api = api
        self.core: Core | None = None
        self.adapter: DiscordAdapter | None = None

    @property
    def c(self) -> Core:
        assert self.core is not None
        return self.core

    async def start(self) -> None:
        self.core = await Core.start(self.settings)
        self.adapter = DiscordAdapter(self.core, self.settings, guild_ready_timeout=0.05)
        try:
            await self.adapter.start()
        except BaseException:
            await self.core.close()
            raise
        await self.core.resume_all()

    async def stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.stop()
        if self.core is not None:
            await self.core.close()

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def settle(self, within: float = 15.0) -> None:
        """Until the bot has handled what it was sent and the sessions it kicked wait or ended:
        no handler runs, no session is driven, and the fake heard nothing for a moment."""
        assert self.adapter is not None
        deadline = time.monotonic() + within
        calm = 0
        while calm < 2:
            left = max(0.1, deadline - time.monotonic())
            assert time.monotonic() < deadline, "the bot did not settle"
            await asyncio.wait_for(self.adapter.idle(), left)
            await self.c.runner.idle(left)
            await asyncio.sleep(0.02)
            quiet = self.adapter.busy == 0 and self.c.runner.busy == 0 and self.api.quiet_for() >= 0.02
            calm = calm + 1 if quiet else 0

    # -- looking at the chat
    def root(self, session_id: str) -> Message:
        found = [m for m in self.api.in_channel(CHANNEL_ID) if f"`{session_id}`" in m.content]
        assert len(found) == 1, f"expected one root message of {session_id}, found {len(found)}"
        return found[0]

    def thread_id(self, session_id: str) -> int:
        return int(self.api.thread_of(self.root(session_id))["id"])

    def thread(self, session_id: str) -> list[Message]:
        return self.api.in_channel(self.thread_id(session_id))

    def step(self, session_id: str, step_no: int) -> Message:
        found = [m for m in self.thread(session_id) if m.title.startswith(f"Step {step_no} ·")]
        assert len(found) == 1, f"expected one message for step {step_no}, found {len(found)}"
        return found[0]

    def of_kind(self, session_id: str, title: str) -> list[Message]:
        return [m for m in self.thread(session_id) if m.title.startswith(title)]

    def session_id_in(self, texts: list[str]) -> str:
        for text in texts:
            if match := re.search(r"Started session (\w+)", text):
                return match.group(1)
        raise AssertionError(f"no session was started: {texts}")
