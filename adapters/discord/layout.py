"""Components V2: the same message parts as an embed (`EmbedSpec`), laid out as a
`discord.ui.LayoutView` instead, within Discord's limits for such messages.

One container per message, its accent colour the embed's colour:

    ## Title                          (a text display: the title, then the description)
    description
    [media gallery]                   an image attached to the message (attachment://NAME)
    **Field**                         a text display per field; inline fields share one,
    value                             a line each ("**Cycles:** 2")
    [file] ...                        other attached files, shown as files
    -# footer                         (small text)
    ─────────                         a separator, then the buttons in rows of five

A Components V2 message (flag IS_COMPONENTS_V2, set by discord.py for a layout view) has no
content or embeds, at most 40 components in all (nested ones and buttons included), and at most
4,000 characters of text in all its text displays: text is shortened (longest parts first) to
fit, and what cannot fit is left out, the buttons never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import discord

from adapters.discord.limits import (
    EMBED_DESCRIPTION,
    EMBED_TITLE,
    FIELD_NAME,
    FIELD_VALUE,
    FOOTER,
    ROW_BUTTONS,
    V2_COMPONENTS,
    V2_TEXT,
    EmbedSpec,
    Text,
    render_text,
)
from bot.text import clip

SHRINK_MIN = 16  # a part is not shortened below this; a field that would be is left out


@dataclass
class _Part:
    """One text of the layout: `prefix` + `value` shortened to `limit` characters."""

    prefix: str
    value: Text
    limit: int
    inline: bool = False

    def render(self) -> str:
        return self.prefix + render_text(self.value, self.limit) if self.value else self.prefix.rstrip()

    def __len__(self) -> int:
        return len(self.render())


def _fit(parts: list[_Part], budget: int, keep: Sequence[_Part] = ()) -> list[_Part]:
    """Shorten the longest parts until all of them fit in `budget` characters; when the longest
    cannot shrink any more, the last part not in `keep` (a field) is left out."""
    parts = list(parts)
    while sum(len(p) for p in parts) > budget:
        excess = sum(len(p) for p in parts) - budget
        part = max(parts, key=len)
        before = len(part)
        if part.value and before > SHRINK_MIN + len(part.prefix):
            part.limit = max(SHRINK_MIN, len(render_text(part.value, part.limit)) - max(excess, 16))
        if len(part) >= before:
            droppable = [i for i, p in enumerate(parts) if all(p is not k for k in keep)]
            if not droppable:
                break
            parts.pop(droppable[-1])
    return parts


def _texts(parts: list[_Part]) -> list[str]:
    """The text displays: one per part, consecutive inline parts sharing one (a line each)."""
    texts: list[str] = []
    inline: list[str] = []
    for part in parts:
        if part.inline:
            inline.append(part.render())
            continue
        if inline:
            texts.append("\n".join(inline))
            inline = []
        texts.append(part.render())
    if inline:
        texts.append("\n".join(inline))
    return [t for t in texts if t.strip()]


def build_layout(
    spec: EmbedSpec,
    buttons: Sequence[discord.ui.Item[Any]] = (),
    files: Sequence[str] = (),
) -> discord.ui.LayoutView:
    """`spec` as one container: its title and description, its image (`spec.image`, an
    attachment://NAME) in a media gallery, its fields, `files` (names of other attachments of
    the message) as file components, its footer, then `buttons` in action rows."""
    title = clip(spec.title.strip(), EMBED_TITLE)
    head = _Part(f"## {title}\n" if title else "", spec.description, EMBED_DESCRIPTION)
    fields = [
        _Part(
            f"**{clip(f.name.strip(), FIELD_NAME)}:** "
            if f.inline
            else f"**{clip(f.name.strip(), FIELD_NAME)}**\n",
            f.value,
            min(f.limit, FIELD_VALUE),
            f.inline,
        )
        for f in spec.fields
    ]
    footer = _Part("-# ", clip(spec.footer.strip(), FOOTER), FOOTER) if spec.footer.strip() else None
    labels = sum(len(getattr(getattr(b, "item", b), "label", None) or "") for b in buttons)
    rows = [list(buttons[i : i + ROW_BUTTONS]) for i in range(0, len(buttons), ROW_BUTTONS)]
    shown_files = list(files)

    def count(texts: int) -> int:
        fixed = 1 + texts + (1 if spec.image else 0) + len(shown_files)
        return fixed + ((1 + len(rows) + len(buttons)) if buttons else 0)

    parts = [p for p in [head, *fields, footer] if p is not None and (p.prefix.strip() or p.value)]
    keep = [p for p in (head, footer) if p is not None]
    parts = _fit(parts, max(SHRINK_MIN, V2_TEXT - labels - len(parts)), keep)  # a line break each
    while count(len(_texts(parts))) > V2_COMPONENTS and shown_files:
        shown_files.pop()
    while count(len(_texts(parts))) > V2_COMPONENTS:
        droppable = [i for i, p in enumerate(parts) if all(p is not k for k in keep)]
        if not droppable:
            break
        parts.pop(droppable[-1])

    container: discord.ui.Container[discord.ui.LayoutView] = discord.ui.Container(accent_colour=spec.color)
    texts = _texts(parts)
    if texts and head in parts:
        container.add_item(discord.ui.TextDisplay(texts.pop(0)))
    if spec.image:
        container.add_item(discord.ui.MediaGallery(discord.MediaGalleryItem(spec.image)))
    body, last = (texts[:-1], texts[-1:]) if footer is not None and footer in parts else (texts, [])
    for text in body:
        container.add_item(discord.ui.TextDisplay(text))
    for name in shown_files:
        container.add_item(discord.ui.File(f"attachment://{name}"))
    for text in last:
        container.add_item(discord.ui.TextDisplay(text))
    if rows:
        container.add_item(discord.ui.Separator())
        for row in rows:
            container.add_item(discord.ui.ActionRow(*row))
    view = discord.ui.LayoutView(timeout=None)
    view.add_item(container)
    return view
