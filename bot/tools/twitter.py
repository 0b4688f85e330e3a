"""`send_tweet` (AutoGPT's command): post a tweet through tweepy's v2 `Client.create_tweet`, signed
with OAuth 1.0a user context (TW_CONSUMER_KEY, TW_CONSUMER_SECRET, TW_ACCESS_TOKEN,
TW_ACCESS_TOKEN_SECRET). It has effects outside the session, so it always waits for a human's
approval of that very step unless TOOL_POLICY allows it.

tweepy's host is hard-coded ("https://api.twitter.com" + route, in `Client.request`). The request
goes out through the client's own `requests.Session` (`Client.session`, one per client), so the
client here gets a session that rewrites that origin to TWITTER_API_URL before the request is
prepared: OAuth 1.0a is then signed over the URL actually requested, and nothing shared with other
code is patched. The same session gives every request a timeout (tweepy sets none).

Every failure (bad credentials, duplicate tweet, rate limit, server error, timeout, unreachable
API) becomes a ToolError with a clear message; no key ever appears in one.
"""

from __future__ import annotations

import asyncio
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import tweepy
from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator

from bot.settings import Settings
from bot.tools.base import ToolContext, ToolError, ToolRegistry

TWEEPY_ORIGIN = "https://api.twitter.com"  # what tweepy's Client.request puts before every route
MAX_TWEET_CHARS = 280
TIMEOUT_S = 20.0  # connect and read timeout of one request to the X API
STATUS_URL = "https://x.com/i/web/status/{id}"
KEY_SETTINGS = ("tw_consumer_key", "tw_consumer_secret", "tw_access_token", "tw_access_token_secret")

# tweepy's Client is synchronous: its calls run here, so a slow one never holds the default executor.
_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="send_tweet")


class SendTweetArgs(BaseModel):
    tweet_text: str = Field(validation_alias=AliasChoices("tweet_text", "text"))

    @field_validator("tweet_text", mode="after")
    @classmethod
    def _length(cls, v: str) -> str:
        text = unicodedata.normalize("NFC", v.strip())  # X counts NFC characters
        if not text:
            raise ValueError("the tweet is empty: give the text to post")
        if len(text) > MAX_TWEET_CHARS:
            raise ValueError(
                f"the tweet is {len(text)} characters long; a tweet can have at most "
                f"{MAX_TWEET_CHARS}: shorten it by {len(text) - MAX_TWEET_CHARS}"
            )
        return text


class TweetData(BaseModel):
    id: str
    text: str = ""


class CreatedTweet(BaseModel):
    """What POST /2/tweets answers."""

    data: TweetData


# ---------------------------------------------------------------------------- settings


def _secret(settings: Settings, name: str) -> str:
    value = getattr(settings, name)
    return value.get_secret_value().strip() if value is not None else ""


def missing_keys(settings: Settings) -> list[str]:
    return [name.upper() for name in KEY_SETTINGS if not _secret(settings, name)]


def off_reason(settings: Settings) -> str | None:
    missing = missing_keys(settings)
    if not missing:
        return None
    return f"needs {', '.join(missing)} (the X app's OAuth 1.0a keys) to be set"


def _origin(url: str) -> str:
    """scheme://host[:port] of a URL, without credentials or path, fit for a message."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}" if parts.hostname else "the configured X API"
    except ValueError:
        return "the configured X API"


# ---------------------------------------------------------------------------- the client


class _RoutedSession(requests.Session):
    """tweepy's session: requests to tweepy's hard-coded origin go to `base_url` instead (before
    OAuth signs them), and each one has a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if isinstance(url, str) and url.startswith(TWEEPY_ORIGIN + "/"):
            url = self.base_url + url[len(TWEEPY_ORIGIN) :]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(method, url, *args, **kwargs)


def make_client(settings: Settings, timeout: float = TIMEOUT_S) -> tweepy.Client:
    """A tweepy v2 client with the four keys, talking to TWITTER_API_URL."""
    client = tweepy.Client(
        consumer_key=_secret(settings, "tw_consumer_key"),
        consumer_secret=_secret(settings, "tw_consumer_secret"),
        access_token=_secret(settings, "tw_access_token"),
        access_token_secret=_secret(settings, "tw_access_token_secret"),
        return_type=dict,
        wait_on_rate_limit=False,  # a rate limit is reported, never slept through
    )
    client.session.close()
    client.session = _RoutedSession(settings.twitter_api_url, timeout)
    return client


def _post(settings: Settings, text: str) -> dict[str, Any]:
    client = make_client(settings, TIMEOUT_S)
    try:
        reply = client.create_tweet(text=text, user_auth=True)
    finally:
        client.session.close()
    if not isinstance(reply, dict):
        raise ToolError("The X API's answer could not be read (not a JSON object).")
    return reply


# ---------------------------------------------------------------------------- errors


def _scrub(text: str, settings: Settings) -> str:
    """`text` without any of the four keys (an API message could echo one)."""
    for name in KEY_SETTINGS:
        secret = _secret(settings, name)
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def _api_detail(exc: tweepy.HTTPException) -> str:
    messages = [" ".join(str(m).split()) for m in exc.api_messages if str(m).strip()]
    detail = "; ".join(messages)[:300].rstrip(" .")
    return f": {detail}" if detail else ""


def _reset_in(reset_time: int | None) -> str:
    if reset_time is None:
        return "Try again later."
    wait = max(0, int(reset_time - time.time()))
    at = datetime.fromtimestamp(reset_time, UTC).strftime("%H:%M:%S UTC")
    return f"The limit resets at {at} (in {wait} s); try again then."


def describe_failure(exc: Exception, settings: Settings) -> str:
    """A clear message for the agent about why the tweet was not posted."""
    where = _origin(settings.twitter_api_url)
    message: str
    if isinstance(exc, tweepy.TooManyRequests):
        message = f"Not tweeted: X rate limit reached (HTTP 429){_api_detail(exc)}. " + _reset_in(
            exc.reset_time
        )
    elif isinstance(exc, tweepy.Unauthorized):
        message = (
            f"Not tweeted: X rejected the credentials (HTTP 401){_api_detail(exc)}. Check TW_CONSUMER_KEY, "
            "TW_CONSUMER_SECRET, TW_ACCESS_TOKEN and TW_ACCESS_TOKEN_SECRET."
        )
    elif isinstance(exc, tweepy.Forbidden):
        detail = _api_detail(exc)
        if "duplicate" in detail.lower():
            message = (
                f"Not tweeted: X refused a duplicate of an earlier tweet (HTTP 403){detail}. "
                "Post something different."
            )
        else:
            message = (
                f"Not tweeted: X refused the tweet (HTTP 403){detail}. The app may lack write "
                "permission, or the text breaks X's rules."
            )
    elif isinstance(exc, tweepy.TwitterServerError):
        status = exc.response.status_code
        message = (
            f"Not tweeted: the X API had a server error (HTTP {status}){_api_detail(exc)}. Try again later."
        )
    elif isinstance(exc, tweepy.HTTPException):
        status = exc.response.status_code
        message = f"Not tweeted: the X API refused the request (HTTP {status}){_api_detail(exc)}."
    elif isinstance(exc, requests.Timeout):
        message = f"Not tweeted: the X API at {where} did not answer within {TIMEOUT_S:g} s. Try again later."
    elif isinstance(exc, requests.ConnectionError):
        why = "connection refused" if "refused" in str(exc).lower() else "connection failed"
        message = f"Not tweeted: cannot reach the X API at {where} ({why})."
    elif isinstance(exc, ValidationError):
        message = "Not tweeted? The X API's answer had no tweet id; check the account before retrying."
    elif isinstance(exc, ValueError):  # a body that is not JSON
        message = "The X API's answer could not be read (not JSON); check the account before retrying."
    else:
        message = f"Not tweeted: {type(exc).__name__} while posting to {where}."
    return _scrub(message, settings)


# ---------------------------------------------------------------------------- the command


async def send_tweet(ctx: ToolContext, args: SendTweetArgs) -> str:
    settings = ctx.settings
    if (reason := off_reason(settings)) is not None:  # the registry never offers it then
        raise ToolError(f"send_tweet is off: it {reason}.")
    loop = asyncio.get_running_loop()
    try:
        reply = await loop.run_in_executor(_POOL, _post, settings, args.tweet_text)
        tweet = CreatedTweet.model_validate(reply).data
    except ToolError:
        raise
    except Exception as exc:
        raise ToolError(describe_failure(exc, settings)) from None
    return f"Tweeted: {tweet.id} ({STATUS_URL.format(id=tweet.id)})"


def register(registry: ToolRegistry) -> None:
    registry.tool(
        "send_tweet",
        "Send Tweet: post tweet_text (at most 280 characters) on X (Twitter) from the bot's account",
        SendTweetArgs,
        outside_effects=True,
        off=off_reason,
        section="Twitter",
    )(send_tweet)
