"""Discord's message limits, and an embed builder that always stays within them.

Content 2,000 characters; an embed's title 256, description 4,096, 25 fields, field name 256,
field value 1,024, footer 2,048, author 256 and 6,000 characters in all; 10 embeds and 10 files
of 10 MB a message. A Components V2 message: 40 components and 4,000 characters of text in all
(`layout.py` fits a message to them).
Text that does not fit is shortened with a marker (and, where it matters, attached in full by
the caller); replies are split into several messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

import discord

from bot.text import clip, split

CONTENT: Final = 2000
EMBEDS: Final = 10
EMBED_TITLE: Final = 256
EMBED_DESCRIPTION: Final = 4096
EMBED_FIELDS: Final = 25
FIELD_NAME: Final = 256
FIELD_VALUE: Final = 1024
FOOTER: Final = 2048
AUTHOR: Final = 256
EMBED_TOTAL: Final = 6000
BUTTON_LABEL: Final = 80
MODAL_TITLE: Final = 45
INPUT_LABEL: Final = 45
INPUT_MAX: Final = 4000
THREAD_NAME: Final = 100
ATTACHMENTS: Final = 10  # files a message may carry
ATTACHMENT_BYTES: Final = 10 * 1024 * 1024  # a bot's upload limit on a server without boosts
# Components V2 (a message with the IS_COMPONENTS_V2 flag: no content, no embeds)
COMPONENTS_V2: Final = 1 << 15  # the message flag
V2_COMPONENTS: Final = 40  # components in a message, nested ones and buttons included
V2_TEXT: Final = 4000  # characters of all its text displays together
ROW_BUTTONS: Final = 5  # buttons in an action row
MEDIA_ITEMS: Final = 10  # items in a media gallery

FENCE: Final = "```"


def defuse(text: str) -> str:
    """Text that cannot close a code block it is put in."""
    return re.sub(r"`(?=``)", "`\u200b", text)


@dataclass
class Code:
    """Text shown in a code block; shortened inside the fences, so they always close."""

    text: str
    lang: str = ""
    prefix: str = ""  # a line before the block

    def render(self, limit: int) -> str:
        head, tail = f"{self.prefix}{FENCE}{self.lang}\n", f"\n{FENCE}"
        room = max(1, limit - len(head) - len(tail))
        return head + clip(defuse(self.text) or " ", room) + tail

    def __len__(self) -> int:
        return len(self.render(10**9))


Text = str | Code


def render_text(value: Text, limit: int) -> str:
    """`value` in at most `limit` characters (a code block stays closed)."""
    return value.render(limit) if isinstance(value, Code) else clip(value, limit)


_render = render_text


@dataclass
class Field:
    name: str
    value: Text
    inline: bool = False
    limit: int = FIELD_VALUE


@dataclass
class EmbedSpec:
    """An embed described in plain values; `build()` fits it to every limit."""

    title: str = ""
    description: Text = ""
    color: int | None = None
    fields: list[Field] = field(default_factory=list)
    footer: str = ""
    timestamp: object | None = None
    image: str | None = None  # an image shown in the embed: attachment://NAME of a file sent with it

    def add(self, name: str, value: Text, inline: bool = False) -> None:
        """Add a field unless it is empty (Discord refuses empty field values)."""
        if isinstance(value, Code) or value.strip():
            self.fields.append(Field(name, value, inline))

    def build(self) -> discord.Embed:
        title = clip(self.title.strip(), EMBED_TITLE)
        footer = clip(self.footer.strip(), FOOTER)
        fields = self.fields[:EMBED_FIELDS]
        names = [clip(f.name.strip() or "\u200b", FIELD_NAME) for f in fields]
        desc_limit = EMBED_DESCRIPTION
        limits = [f.limit for f in fields]

        def sizes() -> tuple[int, list[int]]:
            desc = len(_render(self.description, desc_limit)) if self.description else 0
            values = [len(_render(f.value, lim)) for f, lim in zip(fields, limits, strict=True)]
            return desc, values

        fixed = len(title) + len(footer) + sum(len(n) for n in names)
        desc_len, value_lens = sizes()
        # Over the 6,000 in all: shorten the longest parts first, a bit at a time.
        while fixed + desc_len + sum(value_lens) > EMBED_TOTAL:
            excess = fixed + desc_len + sum(value_lens) - EMBED_TOTAL
            biggest = max(range(len(value_lens)), key=lambda i: value_lens[i], default=None)
            if biggest is None or desc_len > value_lens[biggest]:
                desc_limit = max(16, desc_len - max(excess, 16))
            else:
                limits[biggest] = max(16, value_lens[biggest] - max(excess, 16))
            before = (desc_len, list(value_lens))
            desc_len, value_lens = sizes()
            if (desc_len, value_lens) == before:  # cannot shrink further: drop the last field
                fields, names, limits = fields[:-1], names[:-1], limits[:-1]
                fixed = len(title) + len(footer) + sum(len(n) for n in names)
                desc_len, value_lens = sizes()
        embed = discord.Embed(
            title=title or None,
            description=_render(self.description, desc_limit) if self.description else None,
            color=self.color,
        )
        for f, name, lim in zip(fields, names, limits, strict=True):
            embed.add_field(name=name, value=_render(f.value, lim) or "\u200b", inline=f.inline)
        if footer:
            embed.set_footer(text=footer)
        if self.image:
            embed.set_image(url=self.image)
        return embed


def embed_length(data: dict[str, object]) -> int:
    """The characters Discord counts towards an embed's 6,000 (from its JSON form)."""
    total = len(str(data.get("title") or "")) + len(str(data.get("description") or ""))
    for f in data.get("fields") or []:  # type: ignore[attr-defined]
        total += len(str(f.get("name") or "")) + len(str(f.get("value") or ""))
    for key, sub in (("footer", "text"), ("author", "name")):
        part = data.get(key)
        if isinstance(part, dict):
            total += len(str(part.get(sub) or ""))
    return total


def split_text(text: str, limit: int = CONTENT) -> list[str]:
    """Text as messages of at most `limit` characters, at line breaks where possible (Discord
    refuses an empty message: an empty text is one zero-width space)."""
    return split(text.strip("\n"), limit) or ["\u200b"]


def reply_chunks(text: str, limit: int = CONTENT) -> list[str]:
    """A service reply as Discord messages. The core's multi-line replies (usage, status, lists)
    are aligned plain text, so they go in code blocks; one-liners are escaped markdown."""
    if "\n" not in text.strip():
        return split_text(discord.utils.escape_markdown(text), limit)
    room = limit - len(FENCE) * 2 - 2
    return [f"{FENCE}\n{chunk}\n{FENCE}" for chunk in split_text(defuse(text), room)]
