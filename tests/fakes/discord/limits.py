"""Discord's limits on what a bot sends, and the checks the fake runs on every message, embed,
component and modal (what Discord would refuse with 400, code 50035)."""

from __future__ import annotations

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
