"""The gateway websocket: HELLO, IDENTIFY -> READY and GUILD_CREATE, RESUME, heartbeats, and the
events dispatched to every live connection, zlib-stream compressed when the client asks for it in
the URL query (as discord.py does). A message event reaches a connection as its intents allow:
without the Message Content intent, a message that does not mention the bot arrives empty."""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from typing import Any, TypedDict

from aiohttp import WSMsgType, web

from tests.fakes.discord.state import (
    APP_ID,
    BOT_ID,
    CHANNEL_ID,
    GUILD_ID,
    TOKEN,
    DiscordState,
    Message,
    member_json,
    user_json,
)
from tests.fakes.server import HOST, LoopServer

INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15
PRIVILEGED = {1 << 1: "GUILD_MEMBERS", 1 << 8: "GUILD_PRESENCES", INTENT_MESSAGE_CONTENT: "MESSAGE_CONTENT"}


class Connection:
    """One gateway websocket: its compression, intents and sequence."""

    def __init__(self, ws: web.WebSocketResponse, compress: str | None) -> None:
        self.ws = ws
        self.compress = compress
        self.zlib = zlib.compressobj() if compress == "zlib-stream" else None
        self.seq = 0
        self.intents: int | None = None
        self.identify: dict[str, Any] | None = None
        self.sent: list[dict[str, Any]] = []
        self.lock = asyncio.Lock()

    async def send(self, payload: dict[str, Any]) -> None:
        async with self.lock:
            if self.ws.closed:
                return
            self.sent.append(payload)
            data = json.dumps(payload).encode()
            if self.zlib is not None:
                await self.ws.send_bytes(self.zlib.compress(data) + self.zlib.flush(zlib.Z_SYNC_FLUSH))
            else:
                await self.ws.send_str(data.decode())

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self.seq += 1
        await self.send({"op": 0, "t": event, "s": self.seq, "d": data})


class Options(TypedDict, total=False):
    """``FakeDiscord``'s keyword arguments (see ``Gateway``), for the layers on top of it."""

    allow_privileged: int
    heartbeat_interval_ms: int
    host: str


def _op(op: int, data: Any) -> dict[str, Any]:
    return {"op": op, "d": data, "s": None, "t": None}


class Gateway(DiscordState, LoopServer):
    """The fake's state on a local server, with the gateway at ``gateway_url``."""

    def __init__(
        self,
        *,
        allow_privileged: int = 0,
        heartbeat_interval_ms: int = 41250,
        host: str = HOST,
    ) -> None:
        DiscordState.__init__(self)
        LoopServer.__init__(self, host)
        self.allow_privileged = allow_privileged  # intents enabled in the "Developer Portal"
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.connections: list[Connection] = []
        self.identifies: list[dict[str, Any]] = []
        self.gateway_queries: list[dict[str, str]] = []
        self.heartbeats = 0
        self.resumes = 0
        self.gateway_open = True  # False: new gateway connections are refused (an outage)
        self.sessions: dict[str, Connection] = {}  # gateway session id -> the connection that made it
        self.cdn: dict[str, bytes] = {}  # files users attached, served at /cdn/<id>/<name>

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/gateway/", self._gateway)
        app.router.add_get("/cdn/{aid}/{name}", self._cdn)

    async def _cdn(self, request: web.Request) -> web.Response:
        data = self.cdn.get(request.match_info["aid"])
        return web.Response(body=data) if data is not None else web.Response(status=404)

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.host}:{self.port}/gateway/"

    def live(self) -> list[Connection]:
        return [c for c in self.connections if not c.ws.closed and c.identify is not None]

    async def wait_connected(self, count: int = 1, within: float = 5.0) -> None:
        deadline = time.monotonic() + within
        while len(self.live()) < count:
            assert time.monotonic() < deadline, "the bot did not connect to the gateway"
            await asyncio.sleep(0.01)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway connection, as Discord does now and then (clients resume)."""
        for conn in list(self.live()):
            await conn.ws.close(code=code)

    # ------------------------------------------------------------------ events

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        self._touch()
        for conn in self.live():
            if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE"):
                shown = self._as_seen_by(conn, data)
                if shown is None:
                    continue
                await conn.dispatch(event, shown)
            else:
                await conn.dispatch(event, data)

    def _as_seen_by(self, conn: Connection, data: dict[str, Any]) -> dict[str, Any] | None:
        """A message as a connection with these intents receives it."""
        intents = conn.intents or 0
        guild = data.get("guild_id") is not None
        if not intents & (INTENT_GUILD_MESSAGES if guild else INTENT_DIRECT_MESSAGES):
            return None
        mentioned = any(str(u.get("id")) == str(BOT_ID) for u in data.get("mentions") or [])
        own = str((data.get("author") or {}).get("id")) == str(BOT_ID)
        if intents & INTENT_MESSAGE_CONTENT or mentioned or own or not guild:
            return data
        return {**data, "content": "", "embeds": [], "attachments": [], "components": []}

    async def say(
        self,
        user: int,
        text: str,
        *,
        channel: int = CHANNEL_ID,
        mention: bool = True,
        files: dict[str, tuple[bytes, str]] | None = None,
    ) -> Message:
        """`user` posts `text` in `channel` (a thread id works too), mentioning the bot first;
        `files` ({name: (bytes, content type)}) are attached, served from this fake's CDN."""
        assert channel in self.channels, f"no channel {channel}"
        content = f"<@{BOT_ID}> {text}" if mention else text
        data = self._message_json(self.snowflake(), channel, user, {"content": content})
        for name, (blob, kind) in (files or {}).items():
            aid = str(self.snowflake())
            self.cdn[aid] = blob
            url = f"http://{self.host}:{self.port}/cdn/{aid}/{name}"
            data["attachments"].append(
                {
                    "id": aid,
                    "filename": name,
                    "size": len(blob),
                    "url": url,
                    "proxy_url": url,
                    "content_type": kind,
                }
            )
        if mention:
            data["mentions"] = [{**user_json(BOT_ID), "member": member_json(BOT_ID, with_user=False)}]
        message = Message(int(data["id"]), channel, user, [data])
        self.messages[message.id] = message
        await self.dispatch("MESSAGE_CREATE", data)
        return message

    # ------------------------------------------------------------------ the websocket

    async def _gateway(self, request: web.Request) -> web.StreamResponse:
        if not self.gateway_open:
            return web.Response(status=503, text="gateway unavailable")
        async with self.websocket(request, max_msg_size=0) as ws:
            query = dict(request.query)
            self.gateway_queries.append(query)
            if query.get("v") != "10" or query.get("encoding") != "json":
                self.violations.append(f"gateway: unexpected query {query}")
            compress = query.get("compress")
            if compress not in (None, "zlib-stream"):
                self.violations.append(f"gateway: compression {compress!r} is not spoken by this fake")
            conn = Connection(ws, compress if compress == "zlib-stream" else None)
            self.connections.append(conn)
            await conn.send(_op(10, {"heartbeat_interval": self.heartbeat_interval_ms}))
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = json.loads(msg.data)
                op = frame.get("op")
                if op == 1:
                    self.heartbeats += 1
                    await conn.send(_op(11, None))
                elif op == 2:
                    await self._identify(conn, frame.get("d") or {})
                elif op == 6:
                    await self._resume(conn, frame.get("d") or {})
        return ws

    async def _resume(self, conn: Connection, data: dict[str, Any]) -> None:
        """RESUME a session this fake started (missed events are not replayed); else op 9."""
        known = self.sessions.get(str(data.get("session_id")))
        if data.get("token") != TOKEN or known is None:
            await conn.send(_op(9, False))
            return
        self.resumes += 1
        conn.intents, conn.identify = known.intents, known.identify
        conn.seq = int(data.get("seq") or 0)
        await conn.dispatch("RESUMED", {})

    async def _identify(self, conn: Connection, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != TOKEN:
            await conn.ws.close(code=4004, message=b"Authentication failed.")
            return
        intents = int(data.get("intents") or 0)
        missing = [
            name for bit, name in PRIVILEGED.items() if intents & bit and not self.allow_privileged & bit
        ]
        if missing:
            await conn.ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        conn.intents = intents
        conn.identify = data
        session_id = f"session-{len(self.identifies)}"
        self.sessions[session_id] = conn
        await conn.dispatch(
            "READY",
            {
                "v": 10,
                "user": {**user_json(BOT_ID), "verified": True, "mfa_enabled": False, "email": None},
                "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                "session_id": session_id,
                "resume_gateway_url": self.gateway_url,
                "application": {"id": str(APP_ID), "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        await conn.dispatch("GUILD_CREATE", self._guild_json())
