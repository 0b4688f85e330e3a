"""Text that came from outside (a chat, an LLM, a web page) made safe to keep and send, and the
one clipper and splitter every platform's limits are applied with."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")
MARK = "…"

Cut = Callable[[str, int], int]  # a cut position at or before n that the text can be cut at


def scrub(value: Any) -> Any:
    """`value` (a string, or a JSON-like dict or list) with lone surrogates replaced by U+FFFD.
    They come from JSON escapes such as "\\ud800", which Python's json accepts; nothing can encode
    them (UTF-8, JSON for the store), so they must not get in."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return _SURROGATE.sub("\ufffd", value)
        return value
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value


def _anywhere(_text: str, n: int) -> int:
    return n


def clip(text: str, limit: int, mark: str = MARK, cut: Cut = _anywhere) -> str:
    """`text` cut to at most `limit` characters, ending in `mark` when it was cut. `cut` moves the
    cut back to where the text may be cut (not inside a markup entity, say)."""
    if len(text) <= limit:
        return text
    if limit <= len(mark):
        return text[:limit]
    return text[: cut(text, limit - len(mark))].rstrip() + mark


def split(text: str, size: int, cut: Cut = _anywhere) -> list[str]:
    """Pieces of at most `size` characters, cut at a line break, else at a space, else anywhere
    (then moved back by `cut`); blank pieces are dropped."""
    pieces: list[str] = []
    rest = text
    while len(rest) > size:
        at = rest.rfind("\n", 0, size + 1)
        if at < size // 2:
            at = rest.rfind(" ", 0, size + 1)
        if at < size // 2:
            at = size
        at = cut(rest, at) or size
        piece, rest = rest[:at].rstrip(), rest[at:].lstrip("\n ")
        if piece.strip():
            pieces.append(piece)
    if rest.strip():
        pieces.append(rest)
    return pieces
