"""Text that came from outside (a chat, an LLM, a web page) made safe to keep and send."""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


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
