"""What Slack sends, checked before any listener sees it.

Over HTTP, `SlackEndpoint` serves /slack/events in front of the Bolt app: a timestamp that is
missing or not a number, or a wrong signature, gets 401; a correctly signed body that is not
UTF-8, not a form or JSON object, too deep, or not shaped like what Slack sends gets 400 with
one warning line in the log. Only then does Bolt dispatch it. Bolt's own checks (signature,
five-minute window) still run.

In both modes (HTTP and Socket Mode) the `once` middleware runs first: a request whose identity
(an event's `event_id`, a slash command's `trigger_id`, a click's `action_ts` and `trigger_id`)
was already accepted in the last ten minutes, by any process, is acknowledged and not run
again. Slack's own retries (`X-Slack-Retry-Num`) and replays are recognised that way.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import parse_body
from slack_bolt.response import BoltResponse
from slack_sdk.signature import SignatureVerifier

from bot.store.base import SessionStore, StoreError

log = logging.getLogger(__name__)

MAX_BODY_BYTES: Final = 8 * 1024 * 1024  # Slack's messages are 40,000 characters at most
MAX_DEPTH: Final = 40
CLAIM_TTL_S: Final = 600.0


# ---------------------------------------------------------------------------- shapes


# Keys that hold an object wherever they appear: Bolt reads them with `body.get(key, {}).get(...)`,
# so one present with the value null breaks it.
OBJECT_KEYS: Final = frozenset(
    {
        "event",
        "view",
        "message",
        "previous_message",
        "item",
        "assistant_thread",
        "container",
        "function_data",
        "state",
        "function",
        "workflow_step",
        "authorizations",
        "actions",
        "response_urls",
    }
)
# What this app never serves, and Bolt's own matchers or logging trip over when it is malformed.
REFUSED_KINDS: Final = frozenset({"workflow_step_edit", "workflow_step_execute", "function_executed"})


class _Loose(BaseModel):
    model_config = ConfigDict(extra="allow")

    @model_validator(mode="before")
    @classmethod
    def _no_null_objects(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k in OBJECT_KEYS if k in data and data[k] is None]
            if nulls:
                raise ValueError(f"{nulls[0]} is null")
        return data


class Ref(_Loose):
    """A team, user, channel or enterprise given as an object."""

    id: str | None = None
    team_id: str | None = None
    enterprise_id: str | None = None


class Part(_Loose):
    """The fields Bolt reads to build its context, wherever it looks for them (the body, its
    event, a message, an item, an authorization): typed, so a value of the wrong kind is refused
    here instead of failing inside Bolt or a listener."""

    type: str | None = None
    team: str | Ref | None = None
    user: str | Ref | None = None
    channel: str | Ref | None = None
    enterprise: str | Ref | None = None
    team_id: str | None = None
    user_id: str | None = None
    channel_id: str | None = None
    enterprise_id: str | None = None
    user_team: str | None = None
    is_enterprise_install: bool | str | None = None
    is_ext_shared_channel: bool | None = None
    thread_ts: str | None = None
    ts: str | None = None
    text: str | None = None
    subtype: str | None = None
    bot_id: str | None = None
    tab: str | None = None
    channel_type: str | None = None
    function_execution_id: str | None = None
    bot_access_token: str | None = None
    inputs: dict[str, Any] | None = None
    message: Part | None = None
    previous_message: Part | None = None
    item: Part | None = None
    assistant_thread: Part | None = None
    authorizations: list[Part] | None = None


class Action(_Loose):
    action_id: str
    block_id: str | None = None
    value: str | None = None
    action_ts: str | None = None
    type: str | None = None


class Container(_Loose):
    type: str | None = None
    message_ts: str | None = None
    channel_id: str | None = None
    thread_ts: str | None = None
    view_id: str | None = None


class InputValue(_Loose):
    value: str | None = None


class ViewState(_Loose):
    values: dict[str, dict[str, InputValue]] = Field(default_factory=dict)


class View(_Loose):
    id: str | None = None
    type: str | None = None
    callback_id: str | None = None
    private_metadata: str | None = None
    hash: str | None = None
    team_id: str | None = None
    app_installed_team_id: str | None = None
    state: ViewState | None = None


class ResponseUrl(_Loose):
    response_url: str | None = None


class Body(Part):
    """Any request body: the common fields, and those of each kind that are present."""

    event: Part | None = None
    event_id: str | None = None
    command: str | None = None
    trigger_id: str | None = None
    response_url: str | None = None
    response_urls: list[ResponseUrl] | None = None
    callback_id: str | None = None
    action_id: str | None = None
    actions: list[Action] | None = None
    container: Container | None = None
    view: View | None = None
    function_data: dict[str, Any] | None = None
    challenge: str | None = None


class EventBody(Part):
    """An event as the listeners read it: Slack gives its user and channel as ids."""

    type: str  # type: ignore[assignment]
    user: str | None = None  # type: ignore[assignment]
    channel: str | None = None  # type: ignore[assignment]


class Command(_Loose):
    command: str
    text: str = ""
    user_id: str
    channel_id: str
    trigger_id: str | None = None
    response_url: str | None = None


class UserRef(_Loose):
    id: str


class Interaction(Body):
    """A click (block_actions) or a modal submitted or closed: it always says who."""

    user: UserRef  # type: ignore[assignment]


class Clicks(Interaction):
    actions: list[Action] = Field(min_length=1)  # type: ignore[assignment]
    channel: Ref | None = None  # type: ignore[assignment]  # a click's channel is an object


class SubmittedView(View):
    type: str  # type: ignore[assignment]


class Submission(Interaction):
    view: SubmittedView  # type: ignore[assignment]


class EventCallback(Body):
    event: EventBody  # type: ignore[assignment]


class Malformed(ValueError):
    """A request that Slack would not send; the message is one line for the log."""


def _depth(value: Any) -> int:
    deepest, todo = 0, [(value, 1)]
    while todo:
        node, level = todo.pop()
        if isinstance(node, dict | list):
            if level > MAX_DEPTH:
                return level
            deepest = max(deepest, level)
            todo.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def check_body(body: dict[str, Any]) -> None:
    """Raise `Malformed` unless `body` is shaped like something Slack sends."""
    if _depth(body) > MAX_DEPTH:
        raise Malformed(f"nested deeper than {MAX_DEPTH} levels")
    kind = body.get("type")
    event = body.get("event")
    view = body.get("view")
    kinds = [kind, event.get("type") if isinstance(event, dict) else None]
    if any(isinstance(k, str) and k in REFUSED_KINDS for k in kinds) or (
        isinstance(view, dict) and view.get("type") == "workflow_step"
    ):
        raise Malformed(f"a kind of request this app does not serve ({kind})")
    try:
        Body.model_validate(body)
        if "command" in body:
            Command.model_validate(body)
        if kind == "block_actions":
            Clicks.model_validate(body)
        elif kind in ("view_submission", "view_closed"):
            Submission.model_validate(body)
        elif kind in ("shortcut", "message_action", "block_suggestion", "interactive_message"):
            Interaction.model_validate(body)
        elif kind == "event_callback":
            EventCallback.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        raise Malformed(f"{where}: {err['msg']}") from None


def parse(text: str, content_type: str | None) -> dict[str, Any]:
    """The body as Bolt reads it (Bolt's own parser), checked."""
    try:
        body = parse_body(text, content_type)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not a form or JSON: {type(exc).__name__}") from None
    if not isinstance(body, dict):
        raise Malformed(f"the body is a JSON {type(body).__name__}, not an object")
    check_body(body)
    return body


def identity(body: dict[str, Any]) -> str | None:
    """What makes a request the same request when it comes twice, or None."""
    if body.get("type") == "event_callback" and isinstance(body.get("event_id"), str):
        return f"event:{body['event_id']}"
    if "command" in body and body.get("trigger_id"):
        return f"command:{body['trigger_id']}"
    actions = body.get("actions")
    if body.get("type") == "block_actions" and isinstance(actions, list) and actions:
        first = actions[0] if isinstance(actions[0], dict) else {}
        return f"action:{first.get('action_id')}:{first.get('action_ts')}:{body.get('trigger_id')}"
    if body.get("type") in ("view_submission", "view_closed") and body.get("trigger_id"):
        view = body.get("view") or {}
        return f"view:{view.get('id')}:{view.get('hash')}:{body['trigger_id']}"
    return None


# ---------------------------------------------------------------------------- both modes


def once(store: SessionStore, prefix: str = "slack:") -> Callable[..., Awaitable[BoltResponse | None]]:
    """A Bolt middleware (it runs first, in both modes): a request already accepted in the last
    CLAIM_TTL_S seconds is acknowledged and dropped; a malformed one (Socket Mode delivers
    bodies unchecked) too, with a warning."""

    async def middleware(
        body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse | None:
        try:
            check_body(body)
        except Malformed as exc:
            log.warning("Slack: dropped a malformed request: %s", exc)
            return BoltResponse(status=400, body="")
        key = identity(body)
        if key is not None:
            try:
                first = await store.claim(prefix + key, CLAIM_TTL_S)
            except StoreError as exc:  # cannot tell: serve it (the core says if the store is down)
                log.warning("Slack: could not check for a repeated request: %s", exc)
                first = True
            if not first:
                log.info("Slack: %s was delivered again; acknowledged, not run again", key)
                return BoltResponse(status=200, body="")
        await next()
        return None

    return middleware


# ---------------------------------------------------------------------------- HTTP


class SlackEndpoint:
    """POST /slack/events: the checks above, then the Bolt app."""

    def __init__(self, app: AsyncApp, signing_secret: str) -> None:
        self.app = app
        self.verifier = SignatureVerifier(signing_secret)

    def web_app(self, path: str) -> web.Application:
        application = web.Application(client_max_size=MAX_BODY_BYTES)
        application.add_routes([web.post(path, self.handle)])
        return application

    async def handle(self, request: web.Request) -> web.Response:
        timestamp = request.headers.get("X-Slack-Request-Timestamp", "")
        signature = request.headers.get("X-Slack-Signature")
        if not timestamp.strip().lstrip("-").isdigit() or signature is None:
            return web.Response(status=401)
        raw = await request.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("Slack: refused a request whose body is not UTF-8")
            return web.Response(status=400)
        if not self.verifier.is_valid(body=text, timestamp=timestamp.strip(), signature=signature):
            return web.Response(status=401)
        try:
            parse(text, request.content_type)
        except Malformed as exc:
            log.warning("Slack: refused a malformed request: %s", exc)
            return web.Response(status=400)
        headers: dict[str, str | list[str]] = {}
        for name, value in request.headers.items():
            if isinstance(existing := headers.get(name), list):
                existing.append(value)
            else:
                headers[name] = [value]
        try:
            bolt_request = AsyncBoltRequest(body=text, query=request.query_string, headers=headers)
            response = await self.app.async_dispatch(bolt_request)
        except Exception as exc:  # the checks above let through something Bolt cannot take
            log.warning("Slack: could not handle a request: %s: %s", type(exc).__name__, exc)
            return web.Response(status=400)
        return await to_aiohttp_response(response)
