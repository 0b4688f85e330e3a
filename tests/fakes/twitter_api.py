"""A fake X (Twitter) API v2 on 127.0.0.1, for tests: ``POST /2/tweets``.

A request must carry an OAuth 1.0a ``Authorization: OAuth ...`` header made with the configured
keys: ``oauth_consumer_key`` and ``oauth_token`` match, ``oauth_signature_method`` is HMAC-SHA1 and
``oauth_signature`` is the HMAC-SHA1 of the request's signature base string (RFC 5849 3.4) under
the two secrets, checked here. Anything else answers 401 in X's shape. A good request records the
text and answers ``201 {"data": {"id", "text", "edit_history_tweet_ids"}}``; the same text twice
answers 403 "duplicate content", as X does.

Scripted failures (``fail_next``) answer X's problem shape; a 429 carries ``x-rate-limit-reset``
(now + ``retry_after``). ``delay`` slows every answer (a timeout)::

    with FakeTwitter(consumer_key="ck", consumer_secret="cs", token="at", token_secret="ats") as x:
        settings = make_settings(..., twitter_api_url=x.base_url, tw_consumer_key="ck", ...)
        x.fail_next(429, retry_after=60)
        x.tweets[-1].text
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from tests.fakes.server import HOST, Failure, Failures, ThreadServer

_TITLES = {400: "Invalid Request", 401: "Unauthorized", 403: "Forbidden", 429: "Too Many Requests"}
_PARAM = re.compile(r'\s*([A-Za-z0-9_]+)="([^"]*)"\s*(?:,|$)')
FIRST_ID = 1_800_000_000_000_000_000


@dataclass(frozen=True)
class Tweet:
    id: str
    text: str
    oauth: dict[str, str] = field(default_factory=dict)  # the Authorization header's parameters


def _pct(value: str) -> str:
    """RFC 5849 3.6 percent-encoding."""
    return quote(value, safe="~-._")


def parse_oauth_header(header: str) -> dict[str, str] | None:
    """The parameters of an ``OAuth k="v", ...`` header, decoded; None when it is not one."""
    if not header.startswith("OAuth "):
        return None
    params: dict[str, str] = {}
    rest = header[len("OAuth ") :]
    for match in _PARAM.finditer(rest):
        params[unquote(match.group(1))] = unquote(match.group(2))
    return params


def signature_base_string(method: str, url: str, params: list[tuple[str, str]]) -> str:
    """RFC 5849 3.4.1: method & base URI & normalized parameters."""
    normalized = "&".join(f"{k}={v}" for k, v in sorted((_pct(k), _pct(v)) for k, v in params))
    return "&".join((method.upper(), _pct(url), _pct(normalized)))


def hmac_sha1(base: str, consumer_secret: str, token_secret: str) -> str:
    key = f"{_pct(consumer_secret)}&{_pct(token_secret)}".encode()
    return base64.b64encode(hmac.new(key, base.encode(), hashlib.sha1).digest()).decode()


class FakeTwitter(ThreadServer):
    def __init__(
        self,
        *,
        consumer_key: str,
        consumer_secret: str,
        token: str,
        token_secret: str,
        host: str = HOST,
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.token = token
        self.token_secret = token_secret
        self.tweets: list[Tweet] = []
        self.rejected: list[str] = []  # why each refused request was refused (401s)
        self.delay = 0.0
        self.failures = Failures()
        self._ids = itertools.count(FIRST_ID)
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.tweets.clear()
            self.rejected.clear()
        self.failures.clear()
        self.delay = 0.0

    def fail_next(
        self, status: int, message: str | None = None, *, retry_after: float | None = None, times: int = 1
    ) -> Failure:
        """The next ``times`` tweets get HTTP ``status`` in X's problem shape."""
        return self.failures.add(
            Failure(
                "tweets",
                status,
                error=_TITLES.get(status, "Internal Server Error"),
                message=message or f"fake X error {status}",
                times=times,
                retry_after=retry_after,
            )
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/2/tweets", self._create_tweet)

    # ------------------------------------------------------------------ serving
    def _check_oauth(self, request: web.Request) -> tuple[dict[str, str] | None, str]:
        """The OAuth parameters of a well-signed request, or None and why not."""
        oauth = parse_oauth_header(request.headers.get("Authorization", ""))
        if oauth is None:
            return None, "no OAuth 1.0a Authorization header"
        if oauth.get("oauth_consumer_key") != self.consumer_key:
            return None, "wrong oauth_consumer_key"
        if oauth.get("oauth_token") != self.token:
            return None, "wrong oauth_token"
        if oauth.get("oauth_signature_method") != "HMAC-SHA1":
            return None, f"oauth_signature_method is {oauth.get('oauth_signature_method')!r}"
        for name in ("oauth_nonce", "oauth_timestamp", "oauth_signature"):
            if not oauth.get(name):
                return None, f"no {name}"
        signed = [(k, v) for k, v in oauth.items() if k != "oauth_signature" and k != "realm"]
        signed += [(k, v) for k, v in request.query.items()]  # a JSON body is not signed
        url = f"{request.scheme}://{request.host}{request.path}"
        expected = hmac_sha1(
            signature_base_string(request.method, url, signed), self.consumer_secret, self.token_secret
        )
        if not hmac.compare_digest(expected, oauth["oauth_signature"]):
            return None, "bad oauth_signature"
        return oauth, ""

    async def _create_tweet(self, request: web.Request) -> web.Response:
        oauth, why = self._check_oauth(request)
        if oauth is None:
            with self._lock:
                self.rejected.append(why)
            return _problem(401, "Unauthorized", "Unauthorized")
        try:
            body = await request.json()
        except ValueError:
            return _problem(400, "Invalid Request", "The request body is not JSON.")
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text:
            return _problem(400, "Invalid Request", "One or more parameters to your request was invalid.")
        await self.sleep(self.delay)
        if (failure := self.failures.take("tweets", body, request.method)) is not None:
            headers: dict[str, str] = {}
            if failure.status == 429:
                reset = int(time.time() + (failure.retry_after or 900))
                headers = {"x-rate-limit-limit": "100", "x-rate-limit-remaining": "0"}
                headers["x-rate-limit-reset"] = str(reset)
            return _problem(failure.status, str(failure.error), failure.message, headers)
        with self._lock:
            if any(t.text == text for t in self.tweets):
                return _problem(
                    403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."
                )
            tweet = Tweet(id=str(next(self._ids)), text=text, oauth=oauth)
            self.tweets.append(tweet)
        data: dict[str, Any] = {"id": tweet.id, "text": text, "edit_history_tweet_ids": [tweet.id]}
        return web.json_response({"data": data}, status=201)


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"title": title, "detail": detail, "type": "about:blank", "status": status}
    return web.json_response(body, status=status, headers=headers)
