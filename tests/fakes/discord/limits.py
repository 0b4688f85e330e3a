"""Discord's limits on what a bot sends, and the checks the fake runs on every message, embed,
component and modal (what Discord would refuse with 400, code 50035).

A message with the flag IS_COMPONENTS_V2 (1 << 15) is all components: no content, no embeds;
containers (17) hold text displays (10), sections (9: one to three text displays and a button or
thumbnail (11) beside them), media galleries (12), files (13), separators (14) and action rows
(1) of buttons (2); at most 40 components in all (nested ones and buttons included) and 4,000
characters of text displays in all; a media item or file named attachment://NAME must be a file
of the message."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

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
    "v2_components": 40,
    "v2_text": 4000,
    "section_texts": 3,
    "gallery_items": 10,
    "media_description": 1024,
}

COMPONENTS_V2 = 1 << 15
ACTION_ROW, BUTTON, SECTION, TEXT, THUMBNAIL, GALLERY, FILE, SEPARATOR, CONTAINER = (
    1,
    2,
    9,
    10,
    11,
    12,
    13,
    14,
    17,
)
V2_TYPES = {SECTION, TEXT, THUMBNAIL, GALLERY, FILE, SEPARATOR, CONTAINER}
TOP_LEVEL = {ACTION_ROW, SECTION, TEXT, GALLERY, FILE, SEPARATOR, CONTAINER}
IN_CONTAINER = {ACTION_ROW, SECTION, TEXT, GALLERY, FILE, SEPARATOR}


def walk(components: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every component, nested ones (rows, sections, containers, accessories) included, in order."""
    for c in components:
        if not isinstance(c, dict):
            continue
        yield c
        yield from walk(list(c.get("components") or []))
        if isinstance(c.get("accessory"), dict):
            yield from walk([c["accessory"]])


def media_urls(components: list[dict[str, Any]]) -> list[str]:
    """The URLs of the media items and files of a layout."""
    urls: list[str] = []
    for c in walk(components):
        if c.get("type") == GALLERY:
            urls += [str((i.get("media") or {}).get("url") or "") for i in c.get("items") or []]
        elif c.get("type") == FILE:
            urls.append(str((c.get("file") or {}).get("url") or ""))
        elif c.get("type") == THUMBNAIL:
            urls.append(str((c.get("media") or {}).get("url") or ""))
    return urls


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
            if item.get("type") == BUTTON:
                problems += _check_button(item, where)
    return problems


def _check_button(item: dict[str, Any], where: str) -> list[str]:
    problems: list[str] = []
    if _len(item.get("label")) > LIMITS["label"]:
        problems.append(f"{where}: a button label is over {LIMITS['label']} characters")
    if item.get("style") != 5:
        cid = item.get("custom_id")
        if not isinstance(cid, str) or not 1 <= len(cid) <= LIMITS["custom_id"]:
            problems.append(f"{where}: a button custom_id is missing or over 100 characters")
    return problems


def _check_v2_item(c: dict[str, Any], where: str, allowed: set[int]) -> list[str]:
    """One component of a layout (and what it holds), placed where only `allowed` types may be."""
    kind = c.get("type")
    if kind not in allowed:
        return [f"{where}: a component of type {kind} cannot be here"]
    problems: list[str] = []
    if kind == CONTAINER:
        children = c.get("components") or []
        if not children:
            problems.append(f"{where}: an empty container")
        color = c.get("accent_color")
        if color is not None and not (isinstance(color, int) and 0 <= color <= 0xFFFFFF):
            problems.append(f"{where}: accent_color {color!r} is not a colour")
        for child in children:
            problems += _check_v2_item(child, where, IN_CONTAINER)
    elif kind == ACTION_ROW:
        items = c.get("components") or []
        if not 1 <= len(items) <= LIMITS["row_items"]:
            problems.append(f"{where}: an action row has {len(items)} items (1 to 5)")
        for item in items:
            if item.get("type") != BUTTON:
                problems.append(f"{where}: an action row holds a component of type {item.get('type')}")
            else:
                problems += _check_button(item, where)
    elif kind == SECTION:
        texts = c.get("components") or []
        if not 1 <= len(texts) <= LIMITS["section_texts"] or any(t.get("type") != TEXT for t in texts):
            problems.append(f"{where}: a section holds 1 to 3 text displays")
        problems += [p for t in texts for p in _check_v2_item(t, where, {TEXT})]
        accessory = c.get("accessory")
        if not isinstance(accessory, dict) or accessory.get("type") not in (BUTTON, THUMBNAIL):
            problems.append(f"{where}: a section needs a button or a thumbnail beside it")
        elif accessory.get("type") == BUTTON:
            problems += _check_button(accessory, where)
        else:
            problems += _check_v2_item(accessory, where, {THUMBNAIL})
    elif kind == TEXT:
        if not isinstance(c.get("content"), str) or not c["content"]:
            problems.append(f"{where}: a text display without content")
    elif kind == THUMBNAIL:
        if not (c.get("media") or {}).get("url"):
            problems.append(f"{where}: a thumbnail without media")
    elif kind == GALLERY:
        items = c.get("items") or []
        if not 1 <= len(items) <= LIMITS["gallery_items"]:
            problems.append(f"{where}: a media gallery has {len(items)} items (1 to 10)")
        for item in items:
            if not (item.get("media") or {}).get("url"):
                problems.append(f"{where}: a media gallery item without media")
            if _len(item.get("description")) > LIMITS["media_description"]:
                problems.append(f"{where}: a media description is over 1024 characters")
    elif kind == FILE:
        url = str((c.get("file") or {}).get("url") or "")
        if not url.startswith("attachment://"):
            problems.append(
                f"{where}: a file component must name an attachment (attachment://NAME), got {url!r}"
            )
    elif kind == SEPARATOR:
        if c.get("spacing") not in (None, 1, 2):
            problems.append(f"{where}: separator spacing {c.get('spacing')!r}")
    return problems


def check_layout(
    components: list[dict[str, Any]], where: str, attachments: Collection[str] | None = None
) -> list[str]:
    """A Components V2 message's components; `attachments`: the names of its files, when known
    (attachment://NAME must be one of them)."""
    problems: list[str] = []
    if not components:
        problems.append(f"{where}: a Components V2 message without components")
    for c in components:
        problems += _check_v2_item(c, where, TOP_LEVEL)
    every = list(walk(components))
    if len(every) > LIMITS["v2_components"]:
        problems.append(f"{where}: {len(every)} components in all (limit {LIMITS['v2_components']})")
    text = sum(_len(c.get("content")) for c in every if c.get("type") == TEXT)
    if text > LIMITS["v2_text"]:
        problems.append(f"{where}: {text} characters of text displays in all (limit {LIMITS['v2_text']})")
    if attachments is not None:
        for url in media_urls(components):
            if url.startswith("attachment://") and url.removeprefix("attachment://") not in attachments:
                problems.append(f"{where}: {url} is no file of the message")
    return problems


def check_message(
    payload: dict[str, Any],
    where: str,
    files: int = 0,
    editing: bool = False,
    attachments: Collection[str] | None = None,
) -> list[str]:
    """What Discord would refuse in a message create or edit body; `attachments`: the names of
    the message's files, when known (a layout's attachment://NAME must be one of them)."""
    problems: list[str] = []
    if int(payload.get("flags") or 0) & COMPONENTS_V2:
        if (
            payload.get("content")
            or payload.get("embeds")
            or payload.get("poll")
            or payload.get("sticker_ids")
        ):
            problems.append(
                f"{where}: a Components V2 message cannot have content, embeds, a poll or stickers"
            )
        if files > LIMITS["files"]:
            problems.append(f"{where}: {files} files (limit {LIMITS['files']})")
        if not editing or "components" in payload:
            problems += check_layout(list(payload.get("components") or []), where, attachments)
        return problems
    if any(c.get("type") in V2_TYPES for c in walk(list(payload.get("components") or []))):
        problems.append(f"{where}: Components V2 types without the IS_COMPONENTS_V2 flag")
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
