"""The REST API the bot calls, under ``/api/v10``: login, the application, command sync, channels,
messages (JSON or multipart with files; Components V2 layouts too), edits, deletes, threads and
"typing" (recorded in ``typing`` with its time.monotonic()). Replies are
``application/json`` exactly, as discord.py wants. Every body is checked against Discord's limits
(a violation is recorded and refused with 400, code 50035), and ``fail``/``rate_limit`` script
failures by method and path."""

from __future__ import annotations

import copy
import json
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Unpack

from aiohttp import web
from aiohttp.web_request import FileField

from tests.fakes.discord.gateway import Gateway, Options
from tests.fakes.discord.limits import COMPONENTS_V2, FILE, GALLERY, LIMITS, THUMBNAIL, check_message, walk
from tests.fakes.discord.state import (
    APP_ID,
    BOT_ID,
    GUILD_ID,
    HAS_THREAD,
    LOADING,
    OWNER,
    TOKEN,
    Message,
    Request,
    iso,
    thread_json,
    user_json,
)
from tests.fakes.server import Failure, Failures

Handler = Callable[..., Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]

RATE_LIMIT_HEADERS = {
    "Via": "1.1 google",
    "X-RateLimit-Limit": "5",
    "X-RateLimit-Remaining": "0",
    "X-RateLimit-Bucket": "fake-bucket",
    "X-RateLimit-Scope": "user",
}


def _json(data: Any, status: int = 200) -> web.Response:
    # exactly `application/json`: discord.py parses a reply as JSON only then (no charset)
    return web.Response(
        status=status, body=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
    )


def _error(message: str, code: int, status: int) -> web.Response:
    return _json({"message": message, "code": code}, status)


def _failed(failure: Failure) -> web.Response:
    if failure.retry_after is None:
        return _error(failure.message, int(failure.error), failure.status)
    limited = _json({"message": failure.message, "retry_after": failure.retry_after, "global": False}, 429)
    after = str(failure.retry_after)
    limited.headers.update({**RATE_LIMIT_HEADERS, "Retry-After": after, "X-RateLimit-Reset-After": after})
    return limited


def _content_type(name: str) -> str:
    guessed = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def _resolve_media(data: dict[str, Any]) -> None:
    """As Discord does, a layout's attachment://NAME media get the attachment's id and type (the
    URL is kept as sent, as the fake keeps an embed's)."""
    if not int(data.get("flags") or 0) & COMPONENTS_V2:
        return
    data["components"] = components = copy.deepcopy(data.get("components") or [])
    by_name = {a["filename"]: a for a in data.get("attachments") or []}
    for c in walk(components):
        media: list[dict[str, Any]] = []
        if c.get("type") == GALLERY:
            media = [i.get("media") or {} for i in c.get("items") or []]
        elif c.get("type") == FILE:
            media = [c.get("file") or {}]
        elif c.get("type") == THUMBNAIL:
            media = [c.get("media") or {}]
        for m in media:
            found = by_name.get(str(m.get("url") or "").removeprefix("attachment://"))
            if found is not None:
                m.update(
                    attachment_id=found["id"],
                    content_type=found["content_type"],
                    proxy_url=found["proxy_url"],
                )


UNKNOWN_CHANNEL = ("Unknown Channel", 10003, 404)
UNKNOWN_MESSAGE = ("Unknown Message", 10008, 404)


class Rest(Gateway):
    client_max_size: ClassVar[int] = 32 * 1024 * 1024

    def __init__(self, **options: Unpack[Options]) -> None:
        super().__init__(**options)
        self.requests: list[Request] = []
        self.failed: list[Request] = []  # requests answered with an injected failure
        self.commands: list[dict[str, Any]] = []
        self.typing: list[tuple[int, float]] = []  # (channel id, time.monotonic()) of each "typing"
        self._failures = Failures()

    def add_routes(self, app: web.Application) -> None:
        super().add_routes(app)
        app.router.add_route("*", "/api/v10/{path:.*}", self._api)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/v10"

    # ------------------------------------------------------------------ test controls

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int = 403,
        code: int = 50013,
        message: str = "Missing Permissions",
        times: int = 1,
        when: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """The next `times` requests matching (method, path regex, `when(body)`) fail."""
        self._failures.add(Failure(path, status, code, message, times, when, method))

    def rate_limit(self, method: str, path: str, *, retry_after: float = 0.05, times: int = 1) -> None:
        """The next `times` matching requests get 429 with `retry_after`, as Discord sends it."""
        message = "You are being rate limited."
        self._failures.add(Failure(path, 429, 0, message, times, None, method, retry_after))

    # ------------------------------------------------------------------ serving

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        files: dict[str, bytes] = {}
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            body: dict[str, Any] = {}
            for key, value in form.items():
                if key == "payload_json":
                    body = json.loads(str(value))
                elif isinstance(value, FileField):
                    files[str(value.filename)] = value.file.read()
            return body, files
        raw = await request.read()
        return (json.loads(raw) if raw else {}), files

    async def _api(self, request: web.Request) -> web.StreamResponse:
        self._touch()
        path = "/" + request.match_info["path"]
        body, files = await self._body(request)
        self.requests.append(Request(request.method, path, body, time.monotonic()))
        if (failure := self._failures.take(path, body, request.method)) is not None:
            self.failed.append(Request(request.method, path, body, time.monotonic()))
            return _failed(failure)
        webhook = path.startswith("/interactions/") or path.startswith("/webhooks/")
        if not webhook and request.headers.get("Authorization") != f"Bot {TOKEN}":
            return _error("401: Unauthorized", 0, 401)
        for method, pattern, handler in self._routes():
            match = re.fullmatch(pattern, path)
            if method == request.method and match:
                try:
                    return await handler(request, body, files, *match.groups())
                finally:
                    self._touch()
        self.violations.append(f"unexpected request {request.method} {path}")
        return _error("404: Not Found", 0, 404)

    def _routes(self) -> list[Route]:
        return [
            ("GET", r"/gateway", self._r_gateway),
            ("GET", r"/gateway/bot", self._r_gateway),
            ("GET", r"/users/@me", self._r_me),
            ("GET", r"/oauth2/applications/@me", self._r_application),
            ("GET", r"/applications/@me", self._r_application),
            ("GET", r"/applications/(\d+)/commands", self._r_commands),
            ("PUT", r"/applications/(\d+)/commands", self._r_sync),
            ("GET", r"/channels/(\d+)", self._r_channel),
            ("POST", r"/channels/(\d+)/messages", self._r_create),
            ("GET", r"/channels/(\d+)/messages/(\d+)", self._r_get_message),
            ("PATCH", r"/channels/(\d+)/messages/(\d+)", self._r_edit),
            ("DELETE", r"/channels/(\d+)/messages/(\d+)", self._r_delete),
            ("POST", r"/channels/(\d+)/messages/(\d+)/threads", self._r_thread),
            ("POST", r"/channels/(\d+)/typing", self._r_typing),
        ]

    def _refuse(self, problems: list[str]) -> web.Response | None:
        if not problems:
            return None
        self.violations += problems
        # Discord's shape: {"<field>": {"_errors": [{"code", "message"}]}}
        errors = {"_errors": [{"code": "INVALID_FORM_BODY", "message": p} for p in problems]}
        return _json({"message": "Invalid Form Body", "code": 50035, "errors": {"body": errors}}, 400)

    # ------------------------------------------------------------------ the application

    async def _r_gateway(self, request: web.Request, body: Any, files: Any) -> web.Response:
        self.violations.append(
            "the bot asked the API for the gateway address instead of using DEFAULT_GATEWAY"
        )
        return _json({"url": self.gateway_url.rstrip("/"), "shards": 1})

    async def _r_me(self, request: web.Request, body: Any, files: Any) -> web.Response:
        return _json({**user_json(BOT_ID), "verified": True, "mfa_enabled": False})

    async def _r_application(self, request: web.Request, body: Any, files: Any) -> web.Response:
        return _json(
            {
                "id": str(APP_ID),
                "name": "AutoGPT",
                "icon": None,
                "description": "",
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user_json(OWNER),
                "verify_key": "0" * 64,
                "flags": 0,
                "team": None,
                "summary": "",
                "rpc_origins": [],
            }
        )

    async def _r_commands(self, request: web.Request, body: Any, files: Any, app: str) -> web.Response:
        return _json(self.commands)

    async def _r_sync(self, request: web.Request, body: Any, files: Any, app: str) -> web.Response:
        problems: list[str] = []
        for command in body:
            name = command.get("name", "")
            if not re.fullmatch(r"[-_\w]{1,32}", name) or name != name.lower():
                problems.append(f"command name {name!r} is not valid")
            if not 1 <= len(command.get("description") or "") <= 100:
                problems.append(f"/{name}: description must be 1 to 100 characters")
            for option in command.get("options") or []:
                if not 1 <= len(option.get("description") or "") <= 100:
                    problems.append(f"/{name} {option.get('name')}: description must be 1 to 100 characters")
        if refused := self._refuse(problems):
            return refused
        self.commands = [
            {**c, "id": str(self.snowflake()), "application_id": str(APP_ID), "version": "1"} for c in body
        ]
        return _json(self.commands)

    # ------------------------------------------------------------------ channels and messages

    async def _r_channel(self, request: web.Request, body: Any, files: Any, cid: str) -> web.Response:
        channel = self.channels.get(int(cid))
        if channel is None:
            return _error(*UNKNOWN_CHANNEL)
        return _json(channel)

    def _attachments(self, files: dict[str, bytes]) -> list[dict[str, Any]]:
        return [
            {
                "id": str(self.snowflake()),
                "filename": name,
                "size": len(content),
                "url": self.url(f"/attachments/{name}"),
                "proxy_url": self.url(f"/attachments/{name}"),
                "content_type": _content_type(name),
            }
            for name, content in files.items()
        ]

    def typing_in(self, channel_id: int) -> list[float]:
        """When the bot sent "typing" to `channel_id` (time.monotonic())."""
        return [at for cid, at in self.typing if cid == channel_id]

    def _channel_message(self, cid: str, mid: str) -> Message | None:
        """A message of the channel that everyone sees."""
        message = self.messages.get(int(mid))
        if message is None or message.channel_id != int(cid) or message.ephemeral_to is not None:
            return None
        return message

    async def _r_create(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], cid: str
    ) -> web.Response:
        channel_id = int(cid)
        channel = self.channels.get(channel_id)
        if channel is None:
            return _error(*UNKNOWN_CHANNEL)
        problems = check_message(
            body, f"POST /channels/{cid}/messages", files=len(files), attachments=set(files)
        )
        problems += [f"file {n} is over 10 MiB" for n, c in files.items() if len(c) > LIMITS["file_bytes"]]
        ref = body.get("message_reference")
        if ref is not None:
            target = self.messages.get(int(ref.get("message_id") or 0))
            if target is None or target.channel_id != channel_id:
                problems.append(f"POST /channels/{cid}/messages: reply to an unknown message (50035)")
        if refused := self._refuse(problems):
            return refused
        data = self._message_json(self.snowflake(), channel_id, BOT_ID, body)
        data["attachments"] = self._attachments(files)
        _resolve_media(data)
        if ref is not None:
            data["type"] = 19
            data["message_reference"] = {"message_id": str(ref["message_id"]), "channel_id": cid}
        message = Message(int(data["id"]), channel_id, BOT_ID, [data], files=files)
        self.messages[message.id] = message
        channel["last_message_id"] = data["id"]
        await self.dispatch("MESSAGE_CREATE", data)
        return _json(data)

    async def _r_get_message(
        self, request: web.Request, body: Any, files: Any, cid: str, mid: str
    ) -> web.Response:
        message = self._channel_message(cid, mid)
        if message is None:
            return _error(*UNKNOWN_MESSAGE)
        return _json(message.current)

    def _apply_edit(
        self, message: Message, body: dict[str, Any], files: dict[str, bytes], where: str
    ) -> web.Response | None:
        kept = message.current.get("attachments") or []
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            kept = [a for a in kept if a["id"] in keep]
        names = {str(a["filename"]) for a in kept} | set(files)
        if refused := self._refuse(
            check_message(body, where, files=len(files), editing=True, attachments=names)
        ):
            return refused
        data = dict(message.current)
        for key in ("content", "embeds", "components"):
            if key in body:
                data[key] = body[key] if body[key] is not None else ([] if key != "content" else "")
        if "flags" in body and body["flags"] is not None:
            data["flags"] = (data.get("flags", 0) & ~LOADING) | int(body["flags"])
        else:
            data["flags"] = data.get("flags", 0) & ~LOADING
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            data["attachments"] = [a for a in data.get("attachments", []) if a["id"] in keep]
        if files:
            data["attachments"] = data.get("attachments", []) + self._attachments(files)
            message.files.update(files)
        if not (
            data.get("content") or data.get("embeds") or data.get("attachments") or data.get("components")
        ):
            self.violations.append(f"{where}: the edit leaves an empty message (50006)")
            return _error("Cannot send an empty message", 50006, 400)
        if data["flags"] & COMPONENTS_V2 and (data.get("content") or data.get("embeds")):
            # a Components V2 message stays one; one made so must have its content and embeds emptied
            return self._refuse([f"{where}: a Components V2 message cannot have content or embeds"])
        _resolve_media(data)
        data["edited_timestamp"] = iso()
        message.versions.append(data)
        return None

    async def _r_edit(
        self, request: web.Request, body: dict[str, Any], files: dict[str, bytes], cid: str, mid: str
    ) -> web.Response:
        message = self._channel_message(cid, mid)
        if message is None:
            return _error(*UNKNOWN_MESSAGE)
        if message.author_id != BOT_ID:
            return _error("Cannot edit a message authored by another user", 50005, 403)
        if refused := self._apply_edit(message, body, files, f"PATCH /channels/{cid}/messages/{mid}"):
            return refused
        await self.dispatch("MESSAGE_UPDATE", message.current)
        return _json(message.current)

    async def _r_delete(
        self, request: web.Request, body: Any, files: Any, cid: str, mid: str
    ) -> web.Response:
        message = self._channel_message(cid, mid)
        if message is None:
            return _error(*UNKNOWN_MESSAGE)
        if message.author_id != BOT_ID:
            return _error("Missing Permissions", 50013, 403)
        del self.messages[message.id]
        self.deleted.append(message)
        await self.dispatch("MESSAGE_DELETE", {"id": mid, "channel_id": cid, "guild_id": str(GUILD_ID)})
        return web.Response(status=204)

    async def _r_typing(self, request: web.Request, body: Any, files: Any, cid: str) -> web.Response:
        if int(cid) not in self.channels:
            return _error(*UNKNOWN_CHANNEL)
        self.typing.append((int(cid), time.monotonic()))
        return web.Response(status=204)

    async def _r_thread(
        self, request: web.Request, body: dict[str, Any], files: Any, cid: str, mid: str
    ) -> web.Response:
        parent = self.channels.get(int(cid))
        message = self.messages.get(int(mid))
        if parent is None or message is None or message.channel_id != int(cid):
            return _error(*UNKNOWN_MESSAGE)
        if parent["type"] not in (0, 5):
            return _error("Cannot execute action on this channel type", 50024, 400)
        if message.current.get("thread"):
            return _error("A thread has already been created for this message", 160004, 400)
        name = body.get("name")
        problems = []
        if not isinstance(name, str) or not 1 <= len(name) <= LIMITS["thread_name"]:
            problems.append(f"POST threads: name must be 1 to 100 characters, got {name!r}")
        if body.get("auto_archive_duration") not in (None, 60, 1440, 4320, 10080):
            problems.append(f"POST threads: auto_archive_duration {body.get('auto_archive_duration')}")
        if refused := self._refuse(problems):
            return refused
        assert isinstance(name, str)
        # as on Discord: a thread opened from a message has its id
        thread = thread_json(message.id, cid, name, body.get("auto_archive_duration") or 4320)
        self.channels[message.id] = thread
        message.versions.append({**message.current, "thread": thread, "flags": message.flags | HAS_THREAD})
        await self.dispatch("THREAD_CREATE", {**thread, "newly_created": True})
        return _json(thread)
