"""The one redaction filter: every text that leaves the bot passes through it.

`Redactor.of(settings)` knows the value of every configured secret (every `SecretStr` setting,
and the credentials inside URL settings such as `OPENAI_BASE_URL` or `REDIS_URL`) and replaces
each with `[redacted NAME]`. It is applied where text leaves: chat messages and uploads (the
engine's views, the service's answers), LLM requests, the session store and the archive,
memory, and logs. A secret that reached any of them by any path (a command's output, a
provider's error that echoes the key, an exception's text) is caught there.

`mask_url` is for showing a URL setting to an admin (`check-config`): the host stays, the
credentials go.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from pydantic import BaseModel, SecretStr

MIN_SECRET_CHARS = 4  # shorter "secrets" would redact ordinary words
MASK = "****"
CREDENTIAL_PARAMS = ("key", "token", "secret", "password", "passwd", "pwd", "auth", "sig", "credential")

M = TypeVar("M", bound=BaseModel)


def _url_parts(value: str) -> list[str]:
    """The credentials inside a URL: its password (or a lone user name, which is then a token)
    and the values of query parameters named like a key or a token, decoded and as written."""
    if "://" not in value:
        return []
    try:
        parts = urlsplit(value.strip())
        found: list[str] = []
        if parts.password:
            found.append(parts.password)
        elif parts.username:
            found.append(parts.username)
        for name, val in parse_qsl(parts.query, keep_blank_values=False):
            if any(word in name.lower() for word in CREDENTIAL_PARAMS):
                found.append(val)
    except ValueError:
        return []
    return [v for raw in found for v in {raw, unquote(raw)}]


def url_credentials(value: str) -> list[str]:
    """The credentials inside a URL (its password or token, and key-like query values)."""
    return _url_parts(value)


def mask_url(value: str) -> str:
    """A URL with its credentials masked and its host kept: `redis://:****@host:6379/0`."""
    try:
        parts = urlsplit(value)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, host = netloc.rsplit("@", 1)
            if ":" in userinfo:
                user = userinfo.split(":", 1)[0]
                netloc = f"{user}:{MASK}@{host}"
            else:
                netloc = f"{MASK}@{host}"
        query = parts.query
        if query:
            pairs = []
            for piece in query.split("&"):
                name, eq, val = piece.partition("=")
                masked = eq and val and any(word in name.lower() for word in CREDENTIAL_PARAMS)
                pairs.append(f"{name}={MASK}" if masked else piece)
            query = "&".join(pairs)
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return MASK


def secrets_of(settings: Any) -> list[tuple[str, str]]:
    """(name, value) of every secret in a settings object: each `SecretStr` value, a user:password
    secret's password, and the credentials inside every URL-valued setting."""
    env_name = getattr(type(settings), "env_name", None)
    found: list[tuple[str, str]] = []
    for field in type(settings).model_fields:
        name = env_name(field) if callable(env_name) else field
        value = getattr(settings, field, None)
        if isinstance(value, SecretStr):
            raw = value.get_secret_value()
            found.append((name, raw))
            found += [(name, part) for part in _url_parts(raw)]
            if "://" not in raw and ":" in raw:  # user:password: the password on its own too
                found.append((name, raw.split(":", 1)[1]))
        elif isinstance(value, str):
            found += [(name, part) for part in _url_parts(value)]
    more = getattr(settings, "more_secrets", None)  # inside structured settings (MCP_SERVERS)
    if callable(more):
        found += more()
    return found


class Redactor:
    """Replaces known secret values with `[redacted NAME]`. Cheap when there is nothing to find:
    one substring search per secret."""

    def __init__(self, secrets: Iterable[tuple[str, str]] = ()) -> None:
        self._by_value: dict[str, str] = {}
        self._pairs: list[tuple[str, str]] = []
        self._encoded: list[tuple[bytes, bytes]] = []
        self.add(secrets)

    def add(self, secrets: Iterable[tuple[str, str]]) -> None:
        """Know more secrets: (setting name, value) pairs."""
        for name, value in secrets:
            if not value or len(value) < MIN_SECRET_CHARS:
                continue
            label = f"[redacted {name.upper()}]"
            self._by_value.setdefault(value, label)
            escaped = json.dumps(value, ensure_ascii=False)[1:-1]  # as it appears inside JSON text
            if escaped != value:
                self._by_value.setdefault(escaped, label)
        # longest first, so a secret containing another is replaced whole
        self._pairs = sorted(self._by_value.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._encoded = [(v.encode("utf-8"), label.encode("utf-8")) for v, label in self._pairs]

    def extend(self, settings: Any) -> None:
        """Know the secrets of one more settings object (an adapter's, when it is added)."""
        self.add(secrets_of(settings))

    @classmethod
    def of(cls, *configs: Any) -> Redactor:
        """Every secret of `configs` (pydantic settings objects)."""
        return cls(pair for config in configs for pair in secrets_of(config))

    def __bool__(self) -> bool:
        return bool(self._pairs)

    @property
    def names(self) -> list[str]:
        return sorted({label for _, label in self._pairs})

    def found(self, text: str) -> bool:
        return any(value in text for value, _ in self._pairs)

    def text(self, text: str) -> str:
        """`text` with every secret replaced; the same object when there was none."""
        for value, label in self._pairs:
            if value in text:
                text = text.replace(value, label)
        return text

    def bytes(self, data: bytes) -> bytes:
        for value, label in self._encoded:
            if value in data:
                data = data.replace(value, label)
        return data

    def data(self, obj: Any) -> Any:
        """A JSON-like value (str, dict, list) with every secret replaced in its strings."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return {self.data(k): self.data(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [self.data(v) for v in obj]
        return obj

    def model(self, model: M) -> M:
        """A pydantic model (a view, an answer) with every secret replaced in its text; the same
        object when there was none."""
        if not self._pairs:
            return model
        dumped = model.model_dump_json()
        if not self.found(dumped):
            return model
        return type(model).model_validate_json(self.text(dumped))

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Chat messages for an LLM request, each content redacted (copied only where changed)."""
        if not self._pairs:
            return messages
        out = messages
        for i, message in enumerate(messages):
            content = message.get("content")
            clean: Any = content
            if isinstance(content, str):
                clean = self.text(content)
            elif isinstance(content, list):  # parts: text and images; the text parts are redacted
                parts = [
                    {**p, "text": self.text(p["text"])}
                    if p.get("type") == "text" and self.found(p["text"])
                    else p
                    for p in content
                ]
                clean = parts if any(a is not b for a, b in zip(parts, content, strict=True)) else content
            if clean is not content:
                if out is messages:
                    out = list(messages)
                out[i] = {**message, "content": clean}
        return out


NO_SECRETS = Redactor()
