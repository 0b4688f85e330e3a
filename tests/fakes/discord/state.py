"""The fake Discord's world: one guild with its channels and threads, the messages in them, and
the JSON shapes Discord gives them (users, members, messages, the guild)."""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.fakes.discord.limits import COMPONENTS_V2, FILE, GALLERY, TEXT, walk

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
PERMISSIONS = "2248473465835073"  # what the bot (and every member) may do in the guild
OWNER_PERMISSIONS = str((1 << 53) - 1)  # the guild's owner (OWNER) may do everything, Manage Channels too
JOINED = datetime(2024, 1, 1, tzinfo=UTC)


# --------------------------------------------------------------------------- JSON shapes


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
        "joined_at": iso(JOINED),
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


def text_channel_json(channel_id: int, name: str) -> dict[str, Any]:
    return {
        "id": str(channel_id),
        "type": 0,
        "guild_id": str(GUILD_ID),
        "name": name,
        "position": 0,
        "permission_overwrites": [],
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
        "flags": 0,
    }


def thread_json(thread_id: int, parent_id: str, name: str, auto_archive_duration: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": str(thread_id),
        "type": 11,
        "guild_id": str(GUILD_ID),
        "parent_id": parent_id,
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
            "auto_archive_duration": auto_archive_duration,
            "archive_timestamp": iso(now),
            "locked": False,
            "create_timestamp": iso(now),
        },
    }


def guild_json(channels: list[dict[str, Any]]) -> dict[str, Any]:
    """The GUILD_CREATE of the one guild, with `channels` (threads included)."""
    everyone = {
        "id": str(GUILD_ID),
        "name": "@everyone",
        "permissions": PERMISSIONS,
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
        "channels": [c for c in channels if c["type"] != 11],
        "threads": [c for c in channels if c["type"] == 11],
        "members": [member_json(BOT_ID)],
        "member_count": 4,
        "large": False,
        "unavailable": False,
        "joined_at": iso(JOINED),
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


def message_json(
    mid: int, channel_id: int, author: int, body: dict[str, Any], guild_id: str | None = None
) -> dict[str, Any]:
    """Message `mid` by `author` in `channel_id` (of guild `guild_id`, if any), from a create `body`."""
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
    if guild_id:
        data["guild_id"] = guild_id
        data["member"] = member_json(author, with_user=False)
    if author == BOT_ID:
        data["application_id"] = str(APP_ID)
    return data


# --------------------------------------------------------------------------- records


def layout_texts(data: dict[str, Any]) -> list[str]:
    """The text displays of a message's layout, in order."""
    return [
        str(c.get("content") or "") for c in walk(list(data.get("components") or [])) if c.get("type") == TEXT
    ]


def layout_as_embed(data: dict[str, Any]) -> dict[str, Any]:
    """A Components V2 message read as the embed it stands for (layout.py's shape): the first
    text display is "## title" and the description, "**Name**\nvalue" a field, "**Name:** value"
    lines inline fields, "-# footer" the footer, the first media gallery item the image."""
    texts = layout_texts(data)
    embed: dict[str, Any] = {"fields": []}
    containers = [c for c in data.get("components") or [] if c.get("type") == 17]
    if containers and containers[0].get("accent_color") is not None:
        embed["color"] = containers[0]["accent_color"]
    if texts and texts[0].startswith("#") and not texts[0].startswith("-#"):
        head, _, rest = texts.pop(0).partition("\n")
        embed["title"] = head.lstrip("#").strip()
        if rest:
            embed["description"] = rest
    for text in texts:
        if text.startswith("-# "):
            embed["footer"] = {"text": text[3:]}
        elif match := re.fullmatch(r"\*\*(.+?)\*\*\n(.*)", text, re.S):
            embed["fields"].append({"name": match.group(1), "value": match.group(2), "inline": False})
        elif lines := [re.fullmatch(r"\*\*(.+?):\*\* (.*)", line, re.S) for line in text.split("\n")]:
            if all(lines):
                embed["fields"] += [
                    {"name": m.group(1), "value": m.group(2), "inline": True} for m in lines if m
                ]
            elif "description" not in embed:
                embed["description"] = text
    for c in walk(list(data.get("components") or [])):
        if c.get("type") == GALLERY and c.get("items") and "image" not in embed:
            embed["image"] = {"url": c["items"][0]["media"]["url"]}
    return embed


@dataclass
class Message:
    """A message as Discord holds it; `versions` are its successive JSON forms. The helpers
    (`title`, `embed`, `field`, `all_text`, `buttons`) read an embed message and a Components V2
    one alike (`v2`; the layout read as the embed it stands for, see `layout_as_embed`)."""

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
    def v2(self) -> bool:
        """Sent with the flag IS_COMPONENTS_V2: a layout, no content nor embeds."""
        return bool(self.flags & COMPONENTS_V2)

    @property
    def embeds(self) -> list[dict[str, Any]]:
        """Its embeds; for a layout, the embed it stands for."""
        if self.v2:
            return [layout_as_embed(self.current)]
        return list(self.current.get("embeds") or [])

    @property
    def embed(self) -> dict[str, Any]:
        assert self.embeds, f"message {self.id} has no embed"
        return self.embeds[0]

    @property
    def title(self) -> str:
        return str(self.embeds[0].get("title") or "") if self.embeds else ""

    @property
    def description(self) -> str:
        return str(self.embeds[0].get("description") or "") if self.embeds else ""

    def texts(self, version: int = -1) -> list[str]:
        """A layout's text displays, as sent."""
        return layout_texts(self.versions[version])

    def gallery(self, version: int = -1) -> list[str]:
        """The media of a layout's galleries (their URLs, attachment://NAME for a file of it)."""
        out: list[str] = []
        for c in walk(list(self.versions[version].get("components") or [])):
            if c.get("type") == GALLERY:
                out += [str(i["media"]["url"]) for i in c.get("items") or []]
        return out

    def shown_files(self, version: int = -1) -> list[str]:
        """The files a layout shows as files (attachment://NAME)."""
        comps = list(self.versions[version].get("components") or [])
        return [str(c["file"]["url"]) for c in walk(comps) if c.get("type") == FILE]

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
        parts += layout_texts(data)
        for embed in data.get("embeds") or []:
            parts += [str(embed.get("title") or ""), str(embed.get("description") or "")]
            for f in embed.get("fields") or []:
                parts += [str(f.get("name")), str(f.get("value"))]
            parts.append(str((embed.get("footer") or {}).get("text") or ""))
        return "\n".join(p for p in parts if p)

    def buttons(self, version: int = -1) -> list[dict[str, Any]]:
        """Its buttons, in rows under an embed or anywhere in a layout."""
        return [c for c in walk(list(self.versions[version].get("components") or [])) if c.get("type") == 2]

    def button(self, label: str, version: int = -1) -> dict[str, Any]:
        found = [b for b in self.buttons(version) if b.get("label") == label]
        assert found, f"no button {label!r} on message {self.id}: {[b.get('label') for b in self.buttons()]}"
        return found[0]


@dataclass
class Request:
    method: str
    path: str
    body: Any
    at: float


class DiscordState:
    """The guild's channels and threads, the messages in them and what was deleted, the limit
    violations seen, and the clock of the fake's last activity."""

    def __init__(self) -> None:
        self.channels: dict[int, dict[str, Any]] = {CHANNEL_ID: text_channel_json(CHANNEL_ID, "general")}
        self.messages: dict[int, Message] = {}
        self.deleted: list[Message] = []
        self.violations: list[str] = []
        self._ids = itertools.count(1)
        self._last_activity = time.monotonic()

    def snowflake(self) -> int:
        ms = int(time.time() * 1000) - DISCORD_EPOCH_MS
        return (ms << 22) | (next(self._ids) & 0x3FFFFF)

    def quiet_for(self) -> float:
        return time.monotonic() - self._last_activity

    def _touch(self) -> None:
        self._last_activity = time.monotonic()

    def _message_json(self, mid: int, channel_id: int, author: int, body: dict[str, Any]) -> dict[str, Any]:
        guild_id = self.channels.get(channel_id, {}).get("guild_id")
        return message_json(mid, channel_id, author, body, guild_id)

    def _guild_json(self) -> dict[str, Any]:
        return guild_json(list(self.channels.values()))

    def in_channel(self, channel_id: int) -> list[Message]:
        return [m for m in self.messages.values() if m.channel_id == channel_id and m.ephemeral_to is None]

    def thread_of(self, message: Message) -> dict[str, Any]:
        thread = message.current.get("thread")
        assert thread is not None, f"no thread was opened from message {message.id}"
        return self.channels[int(thread["id"])]

    def threads(self) -> list[dict[str, Any]]:
        return [c for c in self.channels.values() if c["type"] == 11]
