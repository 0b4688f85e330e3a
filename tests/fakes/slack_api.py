"""A local Slack for tests: the Web API the bot calls, the `response_url`s, file uploads and a
Socket Mode websocket, plus a sender that signs requests exactly as Slack does.

``FakeSlackAPI`` is a ``LoopServer`` (tests/fakes/server.py): aiohttp on 127.0.0.1 in the test's
event loop. It answers like Slack (``{"ok": true, ...}``, realistic ``ts``), keeps every posted
message with its edits, and checks EVERY payload against Slack's limits: a violation is recorded in
``api.violations`` and, as Slack would, refused with ``invalid_blocks``. Tests assert
``api.violations == []``::

    async with FakeSlackAPI() as api:
        client = AsyncWebClient(token="xoxb-test", base_url=api.base_url)
        api.rate_limit("chat.postMessage", times=1, retry_after=1)   # the next post gets a 429
        api.fail("chat.postMessage", "is_archived", when=lambda p: ...)
        ...
        api.thread("C1", root_ts)      # the messages of a thread, each with .current blocks

``SignedSender`` posts slash commands, block_actions (built from the buttons actually posted),
view submissions and events to the Bolt app, signed with the signing secret
(``v0=HMAC-SHA256(secret, "v0:{timestamp}:{body}")``), and times each answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from pydantic import SecretStr
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.signature import SignatureVerifier

from adapters.slack.adapter import SlackAdapter
from adapters.slack.settings import SlackSettings
from bot.core import Core
from bot.settings import Settings
from tests.fakes.server import HOST, Failure, Failures, LoopServer

TEAM: Final = "T0TEST"
BOT_USER: Final = "UBOT"
BOT_ID: Final = "BBOT"
APP_ID: Final = "A0TEST"
BOT_TOKEN: Final = "xoxb-test-token"
APP_TOKEN: Final = "xapp-test-token"
SIGNING_SECRET: Final = "test-signing-secret"

# Slack's limits
MESSAGE_TEXT_MAX: Final = 40_000
MESSAGE_BLOCKS_MAX: Final = 50
VIEW_BLOCKS_MAX: Final = 100
BLOCKS_CHARS_MAX: Final = 12_000  # compact JSON of one message's blocks ("well under ~12,000")
SECTION_TEXT_MAX: Final = 3000
FIELD_TEXT_MAX: Final = 2000
HEADER_TEXT_MAX: Final = 150
BUTTON_TEXT_MAX: Final = 75
BUTTON_VALUE_MAX: Final = 2000
ID_MAX: Final = 255
MODAL_TITLE_MAX: Final = 24
PRIVATE_METADATA_MAX: Final = 3000
PLAN_TASKS_MAX: Final = 50
TASK_TITLE_MAX: Final = 255
TASK_STATES: Final = frozenset({"pending", "in_progress", "complete", "error"})
# assistant.threads.*
STATUS_MAX: Final = 150
LOADING_MESSAGES_MAX: Final = 10
PROMPTS_MAX: Final = 4
THREAD_TITLE_MAX: Final = 255

KNOWN_BLOCKS: Final = frozenset(
    {
        "section",
        "header",
        "context",
        "actions",
        "divider",
        "input",
        "image",
        "rich_text",
        "video",
        "file",
        "plan",
        "task_card",
    }
)
_ENTITY = re.compile(
    r"<(?:@[UW][A-Z0-9]+|#C[A-Z0-9]+(?:\|[^>]*)?|![a-z^][^>]*|(?:https?://|mailto:)[^>\s|]+(?:\|[^>]*)?)>"
)


# ---------------------------------------------------------------------------- validation


def _text_problems(obj: Any, limit: int, where: str, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"{where}: not a text object: {str(obj)[:80]}"]
    if plain_only and obj["type"] != "plain_text":
        return [f"{where}: must be plain_text"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}: empty text"]
    out = []
    if len(text) > limit:
        out.append(f"{where}: text of {len(text)} characters (limit {limit})")
    if obj["type"] == "mrkdwn":
        if text.count("```") % 2:
            out.append(f"{where}: an unclosed ``` code block")
        stray = _ENTITY.sub("", text)
        if "<" in stray:
            out.append(f"{where}: unescaped '<' in mrkdwn: {stray[stray.index('<') :][:40]!r}")
    return out


def _element_problems(el: Any, where: str) -> list[str]:
    if not isinstance(el, dict):
        return [f"{where}: not an element"]
    out = []
    if len(str(el.get("action_id") or "")) > ID_MAX:
        out.append(f"{where}: action_id longer than {ID_MAX}")
    if el.get("type") == "button":
        out += _text_problems(el.get("text"), BUTTON_TEXT_MAX, f"{where}.text", plain_only=True)
        if len(str(el.get("value") or "")) > BUTTON_VALUE_MAX:
            out.append(f"{where}: value longer than {BUTTON_VALUE_MAX}")
        if el.get("style") not in (None, "primary", "danger"):
            out.append(f"{where}: bad style {el.get('style')!r}")
        if (confirm := el.get("confirm")) is not None:
            out += _text_problems(confirm.get("title"), 100, f"{where}.confirm.title", plain_only=True)
            out += _text_problems(confirm.get("text"), 300, f"{where}.confirm.text")
            out += _text_problems(confirm.get("confirm"), 30, f"{where}.confirm.confirm", plain_only=True)
            out += _text_problems(confirm.get("deny"), 30, f"{where}.confirm.deny", plain_only=True)
    return out


def _task_problems(task: Any, where: str) -> list[str]:
    """A task card (a `task_card` block, or one of a plan's tasks)."""
    if not isinstance(task, dict):
        return [f"{where}: not a task card"]
    out = []
    if not isinstance(task.get("task_id"), str) or not task["task_id"]:
        out.append(f"{where}: a task card needs a task_id")
    title = task.get("title")
    if not isinstance(title, str) or not title.strip():
        out.append(f"{where}: a task card needs a title")
    elif len(title) > TASK_TITLE_MAX:
        out.append(f"{where}: title of {len(title)} characters (limit {TASK_TITLE_MAX})")
    if task.get("status") is not None and task["status"] not in TASK_STATES:
        out.append(f"{where}: bad status {task['status']!r}")
    for key in ("details", "output"):
        if task.get(key) is not None and (
            not isinstance(task[key], dict) or task[key].get("type") != "rich_text"
        ):
            out.append(f"{where}.{key}: must be one rich_text")
    return out


def check_blocks(
    blocks: Any, where: str, max_blocks: int = MESSAGE_BLOCKS_MAX, max_chars: int | None = BLOCKS_CHARS_MAX
) -> list[str]:
    """Every limit of Slack's Block Kit this project relies on; an empty list when all is well."""
    if blocks is None:
        return []
    if not isinstance(blocks, list):
        return [f"{where}: blocks is not a list"]
    out: list[str] = []
    if len(blocks) > max_blocks:
        out.append(f"{where}: {len(blocks)} blocks (limit {max_blocks})")
    size = len(json.dumps(blocks, ensure_ascii=False, separators=(",", ":")))
    if max_chars is not None and size > max_chars:
        out.append(f"{where}: blocks of {size} characters (keep under {max_chars})")
    seen_ids: set[str] = set()
    for i, b in enumerate(blocks):
        w = f"{where}.blocks[{i}]"
        if not isinstance(b, dict) or b.get("type") not in KNOWN_BLOCKS:
            out.append(f"{w}: unknown block {str(b)[:60]}")
            continue
        if (bid := b.get("block_id")) is not None:
            if len(bid) > ID_MAX:
                out.append(f"{w}: block_id longer than {ID_MAX}")
            if bid in seen_ids:
                out.append(f"{w}: duplicate block_id {bid}")
            seen_ids.add(bid)
        kind = b["type"]
        if kind == "section":
            if not b.get("text") and not b.get("fields"):
                out.append(f"{w}: a section needs text or fields")
            if b.get("text") is not None:
                out += _text_problems(b["text"], SECTION_TEXT_MAX, f"{w}.text")
            fields = b.get("fields") or []
            if len(fields) > 10:
                out.append(f"{w}: {len(fields)} fields (limit 10)")
            for j, f in enumerate(fields):
                out += _text_problems(f, FIELD_TEXT_MAX, f"{w}.fields[{j}]")
            if b.get("accessory") is not None:
                out += _element_problems(b["accessory"], f"{w}.accessory")
        elif kind == "header":
            out += _text_problems(b.get("text"), HEADER_TEXT_MAX, f"{w}.text", plain_only=True)
        elif kind == "context":
            elements = b.get("elements") or []
            if not 1 <= len(elements) <= 10:
                out.append(f"{w}: {len(elements)} context elements (1 to 10)")
            for j, el in enumerate(elements):
                if isinstance(el, dict) and el.get("type") in ("plain_text", "mrkdwn"):
                    out += _text_problems(el, SECTION_TEXT_MAX, f"{w}.elements[{j}]")
        elif kind == "actions":
            elements = b.get("elements") or []
            if not 1 <= len(elements) <= 25:
                out.append(f"{w}: {len(elements)} actions (1 to 25)")
            for j, el in enumerate(elements):
                out += _element_problems(el, f"{w}.elements[{j}]")
        elif kind == "input":
            out += _text_problems(b.get("label"), 2000, f"{w}.label", plain_only=True)
            out += _element_problems(b.get("element"), f"{w}.element")
        elif kind == "plan":
            if not isinstance(b.get("title"), str) or not b["title"].strip():
                out.append(f"{w}: a plan needs a title")
            tasks = b.get("tasks") or []
            if not isinstance(tasks, list) or len(tasks) > PLAN_TASKS_MAX:
                out.append(f"{w}: tasks must be a list of at most {PLAN_TASKS_MAX}")
                tasks = []
            for j, task in enumerate(tasks):
                out += _task_problems(task, f"{w}.tasks[{j}]")
            task_ids = [t.get("task_id") for t in tasks if isinstance(t, dict)]
            if len(task_ids) != len(set(task_ids)):
                out.append(f"{w}: task_ids are not unique")
        elif kind == "task_card":
            out += _task_problems(b, w)
        try:  # and whatever slack_sdk's models know on top
            parsed = Block.parse(b)
            if parsed is not None:
                parsed.validate_json()
        except (SlackObjectFormationError, TypeError, KeyError, ValueError) as exc:
            out.append(f"{w}: slack_sdk cannot read it: {exc}")
    return out


def check_message(payload: dict[str, Any], where: str) -> list[str]:
    blocks = _json_value(payload.get("blocks"))
    text = payload.get("text")
    out = check_blocks(blocks, where)
    if not blocks and not text:
        out.append(f"{where}: neither text nor blocks")
    if isinstance(text, str) and len(text) > MESSAGE_TEXT_MAX:
        out.append(f"{where}: text of {len(text)} characters (Slack cuts past {MESSAGE_TEXT_MAX})")
    return out


def check_view(view: Any, where: str) -> list[str]:
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return [f"{where}: not a modal or home view"]
    out = check_blocks(view.get("blocks"), where, VIEW_BLOCKS_MAX, None)
    if len(str(view.get("private_metadata") or "")) > PRIVATE_METADATA_MAX:
        out.append(f"{where}: private_metadata longer than {PRIVATE_METADATA_MAX}")
    if len(str(view.get("callback_id") or "")) > ID_MAX:
        out.append(f"{where}: callback_id longer than {ID_MAX}")
    if view["type"] == "modal":
        out += _text_problems(view.get("title"), MODAL_TITLE_MAX, f"{where}.title", plain_only=True)
        for key in ("submit", "close"):
            if view.get(key) is not None:
                out += _text_problems(view[key], MODAL_TITLE_MAX, f"{where}.{key}", plain_only=True)
        has_input = any(b.get("type") == "input" for b in view.get("blocks") or [])
        if has_input and not view.get("submit"):
            out.append(f"{where}: a modal with inputs needs a submit button")
    return out


def _json_value(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


# ---------------------------------------------------------------------------- records


@dataclass
class ApiCall:
    method: str
    payload: dict[str, Any]
    status: int
    response: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)


@dataclass
class Posted:
    """A message the bot posted, with every version of it (chat.update)."""

    channel: str
    ts: str
    thread_ts: str | None
    versions: list[dict[str, Any]]
    broadcast: bool = False

    @property
    def current(self) -> dict[str, Any]:
        return self.versions[-1]

    @property
    def blocks(self) -> list[dict[str, Any]]:
        return list(self.current.get("blocks") or [])

    @property
    def text(self) -> str:
        return str(self.current.get("text") or "")

    def as_first_posted(self) -> Posted:
        """The message as it was first posted (a client that has not refreshed still shows it)."""
        return Posted(self.channel, self.ts, self.thread_ts, self.versions[:1], self.broadcast)

    @property
    def edits(self) -> int:
        return len(self.versions) - 1

    def all_text(self) -> str:
        """Every text in the current blocks, joined (to look for words in a message)."""
        return "\n".join(_texts(self.blocks))

    def buttons(self) -> list[tuple[str, dict[str, Any]]]:
        """(block_id, button) for every button in the current blocks."""
        found = []
        for b in self.blocks:
            if b.get("type") == "actions":
                found += [
                    (b.get("block_id", ""), el) for el in b.get("elements", []) if el.get("type") == "button"
                ]
            elif b.get("type") == "section" and (acc := b.get("accessory")) and acc.get("type") == "button":
                found.append((b.get("block_id", ""), acc))
        return found

    def button(self, action_id: str) -> tuple[str, dict[str, Any]]:
        for block_id, el in self.buttons():
            if el.get("action_id") == action_id:
                return block_id, el
        raise LookupError(f"message {self.ts} has no {action_id} button; it has {self.buttons()}")


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["text"]] if isinstance(node.get("text"), str) else []
        if node.get("type") in ("plan", "task_card") and isinstance(node.get("title"), str):
            found.append(node["title"])  # a plan's and a task card's title are plain strings
        for key, value in node.items():
            if key != "text" or not isinstance(value, str):
                found += _texts(value)
        return found
    if isinstance(node, list):
        return [t for item in node for t in _texts(item)]
    return []


@dataclass
class AssistantThread:
    """An assistant thread a user opened (Slack made its root message), and what the app set."""

    user: str
    channel: str
    thread_ts: str
    title: str | None = None
    prompts: list[dict[str, str]] = field(default_factory=list)
    statuses: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), status)


@dataclass
class Upload:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    completed: dict[str, Any] | None = None


# ---------------------------------------------------------------------------- the server


class FakeSlackAPI(LoopServer):
    client_max_size: ClassVar[int] = 16 * 1024 * 1024
    shutdown_timeout: ClassVar[float] = 0.5

    def __init__(self, host: str = HOST) -> None:
        super().__init__(host)
        self.calls: list[ApiCall] = []
        self.peers: set[tuple[str, int]] = set()  # the client ends of the connections Web API calls came on
        self.messages: dict[tuple[str, str], Posted] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.responses: list[dict[str, Any]] = []  # posts to response_url
        self.opened_views: list[dict[str, Any]] = []
        self.published: list[dict[str, Any]] = []
        self.uploads: dict[str, Upload] = {}
        self.hosted: dict[
            str, tuple[str, bytes, str]
        ] = {}  # files users shared: id -> (name, bytes, mimetype)
        self.downloads: list[tuple[str, str | None]] = []  # (file id, Authorization) of each download
        self.joined: list[str] = []
        self.assistant_threads: dict[tuple[str, str], AssistantThread] = {}
        self.violations: list[str] = []
        self.not_member: set[str] = set()
        self._rate_limits = Failures()  # answered before the token is even looked at
        self._failures = Failures()
        self._seq = 0
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._connected = asyncio.Event()
        self._response_users: dict[str, str] = {}
        self._told: list[tuple[str, dict[str, Any]]] = []  # (user, ephemeral message), in order

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/files-pri/{file_id}/{name}", self._download)
        app.router.add_get("/socket-mode", self._socket_mode)

    @property
    def url(self) -> str:  # type: ignore[override]  # here the origin, as before the shared base
        return self.origin

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self) -> str:
        return f"{self.url}/response/{uuid.uuid4().hex[:12]}"

    # -- scripting
    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """The next `times` calls of `method` get HTTP 429 with `Retry-After: retry_after`."""
        self._rate_limits.add(
            Failure(re.escape(method), 429, "ratelimited", times=times, retry_after=retry_after)
        )

    def fail(
        self, method: str, error: str, times: int = 1, when: Callable[[dict[str, Any]], bool] | None = None
    ) -> None:
        """The next `times` calls of `method` (whose payload matches `when`) get `ok: false`."""
        self._failures.add(Failure(re.escape(method), 200, error, times=times, when=when))

    # -- what a test looks at
    def of(self, method: str) -> list[ApiCall]:
        return [c for c in self.calls if c.method == method]

    def thread(self, channel: str, root_ts: str) -> list[Posted]:
        """The root message and its replies, in order."""
        return [
            m
            for m in self.messages.values()
            if m.channel == channel and (m.ts == root_ts or m.thread_ts == root_ts)
        ]

    def roots(self, channel: str | None = None) -> list[Posted]:
        return [m for m in self.messages.values() if m.thread_ts is None and channel in (None, m.channel)]

    def with_text(self, words: str) -> list[Posted]:
        return [m for m in self.messages.values() if words in m.all_text()]

    def ephemerals_to(self, user: str) -> list[str]:
        """What `user` was told privately: chat.postEphemeral and ephemeral response_url posts."""
        told = [m for who, m in self._told if who == user]
        return [
            "\n".join([str(m.get("text") or ""), *_texts(_json_value(m.get("blocks")) or [])]) for m in told
        ]

    # -- assistant threads
    def open_assistant_thread(self, user: str = "U1", channel: str | None = None) -> AssistantThread:
        """A user opens a new assistant thread (the app's pane, or its DM): Slack posts the
        thread's root in the app's DM with the user, where the app may then post and set the
        thread's status, title and suggested prompts."""
        channel = channel or f"D{user}"
        ts = self._ts()
        root = {"text": "", "blocks": [], "subtype": "assistant_app_thread"}
        self.messages[(channel, ts)] = Posted(channel, ts, None, [root])
        thread = self.assistant_threads[(channel, ts)] = AssistantThread(user, channel, ts)
        return thread

    def statuses(self, channel: str, thread_ts: str) -> list[tuple[float, str]]:
        """Every status set on an assistant thread, with when (time.monotonic())."""
        return list(self.assistant_threads[(channel, thread_ts)].statuses)

    def _assistant_thread(self, method: str, p: dict[str, Any]) -> AssistantThread | dict[str, Any]:
        channel, thread = p.get("channel_id"), p.get("thread_ts")
        if not channel or not thread:
            self.violations.append(f"{method} without channel_id or thread_ts: {p}")
            return {"ok": False, "error": "invalid_arguments"}
        found = self.assistant_threads.get((str(channel), str(thread)))
        if found is None:  # not an assistant thread (a channel, a DM thread of the app's own)
            return {
                "ok": False,
                "error": "invalid_thread_ts" if str(channel).startswith("D") else "channel_not_found",
            }
        return found

    def _m_assistant_threads_setStatus(self, p: dict[str, Any]) -> dict[str, Any]:
        status = p.get("status")
        if not isinstance(status, str):
            self.violations.append(f"assistant.threads.setStatus without a status: {p}")
            return {"ok": False, "error": "invalid_arguments"}
        if len(status) > STATUS_MAX:
            self.violations.append(f"assistant.threads.setStatus: status of {len(status)} characters")
            return {"ok": False, "error": "invalid_arguments"}
        loading = _json_value(p.get("loading_messages"))
        if loading is not None and (
            not isinstance(loading, list) or not 1 <= len(loading) <= LOADING_MESSAGES_MAX
        ):
            self.violations.append(f"assistant.threads.setStatus: bad loading_messages {loading!r}")
            return {"ok": False, "error": "invalid_arguments"}
        thread = self._assistant_thread("assistant.threads.setStatus", p)
        if isinstance(thread, dict):
            return thread
        thread.statuses.append((time.monotonic(), status))
        return {"ok": True}

    def _m_assistant_threads_setSuggestedPrompts(self, p: dict[str, Any]) -> dict[str, Any]:
        prompts = _json_value(p.get("prompts"))
        if (
            not isinstance(prompts, list)
            or not 1 <= len(prompts) <= PROMPTS_MAX
            or not all(
                isinstance(x, dict)
                and isinstance(x.get("title"), str)
                and x["title"].strip()
                and isinstance(x.get("message"), str)
                and x["message"].strip()
                for x in prompts
            )
        ):
            self.violations.append(f"assistant.threads.setSuggestedPrompts: bad prompts {prompts!r}")
            return {"ok": False, "error": "invalid_arguments"}
        thread = self._assistant_thread("assistant.threads.setSuggestedPrompts", p)
        if isinstance(thread, dict):
            return thread
        thread.prompts = prompts
        return {"ok": True}

    def _m_assistant_threads_setTitle(self, p: dict[str, Any]) -> dict[str, Any]:
        title = p.get("title")
        if not isinstance(title, str) or not title.strip() or len(title) > THREAD_TITLE_MAX:
            self.violations.append(f"assistant.threads.setTitle: bad title {title!r}")
            return {"ok": False, "error": "invalid_arguments"}
        thread = self._assistant_thread("assistant.threads.setTitle", p)
        if isinstance(thread, dict):
            return thread
        thread.title = title
        return {"ok": True}

    # -- handlers
    async def _payload(self, request: web.Request) -> dict[str, Any]:
        payload: dict[str, Any] = dict(request.query)
        if request.content_type == "application/json":
            body = await request.json()
            if isinstance(body, dict):
                payload.update(body)
        elif request.can_read_body:
            form = await request.post()
            payload.update({k: v for k, v in form.items() if isinstance(v, str)})
        for key in ("blocks", "view", "files", "attachments", "prompts", "loading_messages"):
            if key in payload:
                payload[key] = _json_value(payload[key])
        return payload

    def _ts(self) -> str:
        self._seq += 1
        return f"{int(time.time())}.{self._seq:06d}"

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.transport is not None and (peer := request.transport.get_extra_info("peername")):
            self.peers.add((str(peer[0]), int(peer[1])))
        payload = await self._payload(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or payload.get("token")
        if (limited := self._rate_limits.take(method, payload)) is not None:
            body = {"ok": False, "error": limited.error}
            self.calls.append(ApiCall(method, payload, limited.status, body, token))
            headers = {"Retry-After": str(limited.retry_after)}
            return web.json_response(body, status=limited.status, headers=headers)
        body = self._answer(method, payload, token)
        self.calls.append(ApiCall(method, payload, 200, body, token))
        return web.json_response(body)

    def _answer(self, method: str, payload: dict[str, Any], token: str | None) -> dict[str, Any]:
        expected = APP_TOKEN if method == "apps.connections.open" else BOT_TOKEN
        if token != expected:
            return {"ok": False, "error": "invalid_auth"}
        if (failure := self._failures.take(method, payload)) is not None:
            return {"ok": False, "error": failure.error}
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        return handler(payload)

    def _refuse(self, problems: list[str]) -> dict[str, Any] | None:
        if not problems:
            return None
        self.violations += problems
        return {"ok": False, "error": "invalid_blocks", "errors": problems[:5]}

    def _m_auth_test(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://test-team.slack.com/",
            "team": "Test Team",
            "user": "autogpt",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _m_apps_connections_open(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://{self.host}:{self.port}/socket-mode"}

    def _m_conversations_join(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel"))
        self.not_member.discard(channel)
        self.joined.append(channel)
        return {"ok": True, "channel": {"id": channel, "is_member": True}}

    def _m_chat_postMessage(self, p: dict[str, Any]) -> dict[str, Any]:
        channel = str(p.get("channel") or "")
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        thread = p.get("thread_ts") or None
        if thread is not None and (channel, thread) not in self.messages:
            self.violations.append(f"chat.postMessage: thread_ts {thread} is not a message in {channel}")
            return {"ok": False, "error": "thread_not_found"}
        if refused := self._refuse(check_message(p, "chat.postMessage")):
            return refused
        ts = self._ts()
        version = {"text": p.get("text"), "blocks": _json_value(p.get("blocks"))}
        broadcast = str(p.get("reply_broadcast")).lower() == "true"
        self.messages[(channel, ts)] = Posted(channel, ts, thread, [version], broadcast)
        message = {"type": "message", "user": BOT_USER, "bot_id": BOT_ID, "ts": ts, **version}
        if thread:
            message["thread_ts"] = thread
        return {"ok": True, "channel": channel, "ts": ts, "message": message}

    def _m_chat_update(self, p: dict[str, Any]) -> dict[str, Any]:
        key = (str(p.get("channel")), str(p.get("ts")))
        if key not in self.messages:
            return {"ok": False, "error": "message_not_found"}
        if refused := self._refuse(check_message(p, "chat.update")):
            return refused
        version = {"text": p.get("text"), "blocks": _json_value(p.get("blocks"))}
        self.messages[key].versions.append(version)
        return {"ok": True, "channel": key[0], "ts": key[1], "text": p.get("text"), "message": version}

    def _m_chat_postEphemeral(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("user") or not p.get("channel"):
            self.violations.append("chat.postEphemeral without user or channel")
            return {"ok": False, "error": "invalid_arguments"}
        if refused := self._refuse(check_message(p, "chat.postEphemeral")):
            return refused
        self.ephemerals.append(p)
        self._told.append((str(p["user"]), p))
        return {"ok": True, "message_ts": self._ts()}

    def _m_views_open(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("trigger_id"):
            self.violations.append("views.open without trigger_id")
            return {"ok": False, "error": "invalid_trigger_id"}
        if refused := self._refuse(check_view(p.get("view"), "views.open")):
            return refused
        view = dict(p["view"], id="V" + uuid.uuid4().hex[:10].upper(), state={"values": {}}, team_id=TEAM)
        self.opened_views.append(view)
        return {"ok": True, "view": view}

    def _m_views_publish(self, p: dict[str, Any]) -> dict[str, Any]:
        if not p.get("user_id"):
            self.violations.append("views.publish without user_id")
            return {"ok": False, "error": "invalid_arguments"}
        if refused := self._refuse(check_view(p.get("view"), "views.publish")):
            return refused
        self.published.append(p)
        return {"ok": True, "view": dict(p["view"], id="V" + uuid.uuid4().hex[:10].upper())}

    def _m_files_getUploadURLExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(p.get("length") or -1)
        except ValueError:
            length = -1
        if not p.get("filename") or length < 1:
            self.violations.append(f"files.getUploadURLExternal: bad filename or length {p}")
            return {"ok": False, "error": "invalid_arguments"}
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        self.uploads[file_id] = Upload(file_id, str(p["filename"]), length)
        return {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}

    def share(self, name: str, content: bytes, mimetype: str, *, with_url: bool = True) -> dict[str, Any]:
        """A file a user shares (as a message event's `files` carries it), downloadable from
        this server with the bot token, as from files.slack.com. `with_url=False`: only its id,
        as Slack sends when the app must call files.info first."""
        file_id = "F" + uuid.uuid4().hex[:10].upper()
        self.hosted[file_id] = (name, content, mimetype)
        if not with_url:
            return {"id": file_id, "file_access": "check_file_info"}
        return self._file_object(file_id)

    def _file_object(self, file_id: str) -> dict[str, Any]:
        name, content, mimetype = self.hosted[file_id]
        url = f"{self.url}/files-pri/{file_id}/{name}"
        return {
            "id": file_id,
            "name": name,
            "title": name,
            "mimetype": mimetype,
            "filetype": name.rsplit(".", 1)[-1],
            "size": len(content),
            "mode": "hosted",
            "url_private": url,
            "url_private_download": url + "?download=1",
        }

    def _m_files_info(self, p: dict[str, Any]) -> dict[str, Any]:
        if str(p.get("file")) not in self.hosted:
            return {"ok": False, "error": "file_not_found"}
        return {"ok": True, "file": self._file_object(str(p["file"]))}

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        auth = request.headers.get("Authorization")
        self.downloads.append((file_id, auth))
        if auth != f"Bearer {BOT_TOKEN}":  # as Slack does: a login page, not the file
            return web.Response(text="<html>sign in</html>", content_type="text/html")
        if file_id not in self.hosted:
            return web.Response(status=404)
        _, content, mimetype = self.hosted[file_id]
        return web.Response(body=content, content_type=mimetype)

    async def _upload(self, request: web.Request) -> web.Response:
        upload = self.uploads.get(request.match_info["file_id"])
        if upload is None:
            return web.Response(status=404, text="unknown file")
        upload.content = await request.read()
        if len(upload.content) != upload.length:
            self.violations.append(
                f"upload {upload.file_id}: {len(upload.content)} bytes, announced {upload.length}"
            )
        return web.Response(text=f"OK - {len(upload.content)}")

    def _m_files_completeUploadExternal(self, p: dict[str, Any]) -> dict[str, Any]:
        files = p.get("files")
        if not isinstance(files, list) or not files:
            self.violations.append("files.completeUploadExternal without files")
            return {"ok": False, "error": "invalid_arguments"}
        out = []
        for f in files:
            upload = self.uploads.get(str(f.get("id")))
            if upload is None or upload.content is None:
                self.violations.append(f"files.completeUploadExternal: {f.get('id')} was never uploaded")
                return {"ok": False, "error": "file_not_found"}
            upload.completed = p
            out.append({"id": upload.file_id, "name": upload.filename, "title": f.get("title")})
        thread = p.get("thread_ts")
        if thread and (str(p.get("channel_id")), str(thread)) not in self.messages:
            self.violations.append(f"files.completeUploadExternal: no thread {thread}")
        return {"ok": True, "files": out}

    async def _response_url(self, request: web.Request) -> web.Response:
        payload = await request.json()
        problems = check_message(payload, "response_url")
        self.violations += problems
        payload["_user"] = self._response_users.get(request.match_info["id"])
        self.responses.append(payload)
        if payload.get("response_type") == "ephemeral":
            self._told.append((str(payload["_user"]), payload))
        return web.Response(text="ok") if not problems else web.Response(status=400, text="invalid_blocks")

    def response_url_for(self, user: str) -> str:
        url = self.response_url()
        self._response_users[url.rsplit("/", 1)[1]] = user
        return url

    # -- Socket Mode
    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        async with self.websocket(request) as ws:
            hello = {"type": "hello", "num_connections": 1, "connection_info": {"app_id": APP_ID}}
            await ws.send_json(hello)
            self._connected.set()
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                waiter = self._acks.pop(str(data.get("envelope_id")), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(data)
        return ws

    async def socket_send(
        self, kind: str, payload: dict[str, Any], within: float = 5.0
    ) -> tuple[dict[str, Any], float]:
        """Deliver one envelope over Socket Mode; returns the app's ack and how long it took."""
        await asyncio.wait_for(self._connected.wait(), within)
        envelope_id = str(uuid.uuid4())
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = waiter
        started = time.monotonic()
        await self._websockets[-1].send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        ack = await asyncio.wait_for(waiter, within)
        return ack, time.monotonic() - started


# ---------------------------------------------------------------------------- Slack's side of the app


@dataclass
class Sent:
    status: int
    body: str
    seconds: float


def sign(secret: str, timestamp: int, body: str) -> str:
    signature = SignatureVerifier(secret).generate_signature(timestamp=str(timestamp), body=body)
    assert signature is not None
    return signature


class SignedSender:
    """Sends what Slack sends to the app's /slack/events, signed with the signing secret."""

    def __init__(self, url: str, api: FakeSlackAPI, secret: str = SIGNING_SECRET, team: str = TEAM) -> None:
        self.url = url
        self.api = api
        self.secret = secret
        self.team = team

    async def post(
        self,
        body: str,
        content_type: str = "application/x-www-form-urlencoded",
        *,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> Sent:
        ts = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": sign(secret or self.secret, ts, body),
        }
        started = time.monotonic()
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.url, data=body.encode(), headers=headers) as resp,
        ):
            text = await resp.text()
            return Sent(resp.status, text, time.monotonic() - started)

    # -- what Slack sends
    def command_form(self, text: str, user: str = "U1", channel: str = "C1") -> dict[str, str]:
        return {
            "token": "legacy-verification-token",
            "team_id": self.team,
            "team_domain": "test-team",
            "channel_id": channel,
            "channel_name": "general",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/autogpt",
            "text": text,
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.api.response_url_for(user),
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
        }

    async def command(self, text: str, user: str = "U1", channel: str = "C1", **kw: Any) -> Sent:
        return await self.post(urlencode(self.command_form(text, user, channel)), **kw)

    def _user(self, user: str) -> dict[str, str]:
        return {"id": user, "username": user.lower(), "name": user.lower(), "team_id": self.team}

    def click_payload(self, message: Posted, action_id: str, user: str) -> dict[str, Any]:
        """A block_actions payload for a button actually present in the message as posted now."""
        block_id, button = message.button(action_id)
        return {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "container": {
                "type": "message",
                "message_ts": message.ts,
                "channel_id": message.channel,
                "is_ephemeral": False,
                **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
            },
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "team": {"id": self.team, "domain": "test-team"},
            "enterprise": None,
            "is_enterprise_install": False,
            "channel": {"id": message.channel, "name": "general"},
            "message": {
                "type": "message",
                "user": BOT_USER,
                "bot_id": BOT_ID,
                "text": message.text,
                "ts": message.ts,
                **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
                "blocks": message.blocks,
            },
            "state": {"values": {}},
            "response_url": self.api.response_url_for(user),
            "actions": [
                {
                    "action_id": button["action_id"],
                    "block_id": block_id,
                    "text": button["text"],
                    "value": button.get("value"),
                    **({"style": button["style"]} if button.get("style") else {}),
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }

    async def interactive(self, payload: dict[str, Any], **kw: Any) -> Sent:
        return await self.post(urlencode({"payload": json.dumps(payload)}), **kw)

    async def click(self, message: Posted, action_id: str, user: str = "U1") -> Sent:
        return await self.interactive(self.click_payload(message, action_id, user))

    async def click_home(self, view: dict[str, Any], action_id: str, value: str, user: str = "U1") -> Sent:
        """A button of a published Home tab (the button must be in `view`)."""
        button = next(
            (
                b["accessory"]
                for b in view["blocks"]
                if b.get("accessory", {}).get("action_id") == action_id
                and b["accessory"].get("value") == value
            ),
            None,
        )
        assert button is not None, f"no {action_id} button with value {value} in the Home tab"
        payload = {
            "type": "block_actions",
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "container": {"type": "view", "view_id": "VHOME"},
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "team": {"id": self.team, "domain": "test-team"},
            "view": dict(view, id="VHOME"),
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "b",
                    "text": button["text"],
                    "value": value,
                    "type": "button",
                    "action_ts": f"{time.time():.6f}",
                }
            ],
        }
        return await self.interactive(payload)

    async def submit(self, view: dict[str, Any], values: dict[str, dict[str, str]], user: str = "U1") -> Sent:
        """A view_submission of a modal the app opened, with typed `values` {block_id: {action_id: text}}."""
        for block_id, inputs in values.items():
            block = next((b for b in view["blocks"] if b.get("block_id") == block_id), None)
            assert block is not None, f"the modal has no block {block_id}"
            assert set(inputs) == {block["element"]["action_id"]}
        state = {
            bid: {aid: {"type": "plain_text_input", "value": text} for aid, text in inputs.items()}
            for bid, inputs in values.items()
        }
        payload = {
            "type": "view_submission",
            "team": {"id": self.team, "domain": "test-team"},
            "user": self._user(user),
            "api_app_id": APP_ID,
            "token": "legacy-verification-token",
            "trigger_id": f"{int(time.time())}.{uuid.uuid4().hex[:8]}",
            "view": dict(view, state={"values": state}, hash="1.abc", app_id=APP_ID, bot_id=BOT_ID),
            "response_urls": [],
            "is_enterprise_install": False,
            "enterprise": None,
        }
        return await self.interactive(payload)

    def event_body(self, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "token": "legacy-verification-token",
            "team_id": self.team,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(time.time()),
            "authorizations": [{"team_id": self.team, "user_id": BOT_USER, "is_bot": True}],
            "is_ext_shared_channel": False,
        }

    async def event(self, event: dict[str, Any]) -> Sent:
        return await self.post(json.dumps(self.event_body(event)), "application/json")

    async def assistant_thread_started(self, user: str = "U1", channel: str | None = None) -> AssistantThread:
        """A user opens a new assistant thread: Slack makes it and sends `assistant_thread_started`."""
        thread = self.api.open_assistant_thread(user, channel)
        event = {
            "type": "assistant_thread_started",
            "assistant_thread": {
                "user_id": user,
                "context": {"channel_id": "C1", "team_id": self.team, "enterprise_id": None},
                "channel_id": thread.channel,
                "thread_ts": thread.thread_ts,
            },
            "event_ts": f"{time.time():.6f}",
        }
        sent = await self.event(event)
        assert sent.status == 200, sent.body
        return thread

    async def assistant_message(self, thread: AssistantThread, text: str, user: str | None = None) -> Sent:
        """The user writes in an assistant thread (a `message.im` event in the thread)."""
        ts = self.api._ts()
        event = {
            "type": "message",
            "channel": thread.channel,
            "user": user or thread.user,
            "text": text,
            "ts": ts,
            "thread_ts": thread.thread_ts,
            "channel_type": "im",
            "team": self.team,
            "event_ts": ts,
        }
        return await self.event(event)

    async def reply(self, message: Posted, text: str, user: str = "U1", **extra: Any) -> Sent:
        """A user's message in the thread of `message` (a `message` event)."""
        event = {
            "type": "message",
            "channel": message.channel,
            "user": user,
            "text": text,
            "ts": self.api._ts(),
            "thread_ts": message.thread_ts or message.ts,
            "channel_type": "channel",
            "team": self.team,
            **extra,
        }
        return await self.event({k: v for k, v in event.items() if v is not None})


# ---------------------------------------------------------------------------- the bot on it


def slack_settings(api: FakeSlackAPI, **overrides: Any) -> SlackSettings:
    """Slack in HTTP mode against `api`, on a free port (`overrides`: SlackSettings fields)."""
    values: dict[str, Any] = {
        "bot_token": SecretStr(BOT_TOKEN),
        "app_token": SecretStr(APP_TOKEN),
        "signing_secret": SecretStr(SIGNING_SECRET),
        "mode": "http",
        "http_port": 0,
        "api_url": api.base_url,
        "admin_user_ids": ["UADMIN"],
    }
    values.update(overrides)
    return SlackSettings(_env_file=None, **values)  # type: ignore[call-arg]


class SlackBot:
    """The core and the Slack adapter served over HTTP on 127.0.0.1, as `autogpt-bot run` does,
    with Slack's side (`send`) pointed at it. `restart()` is a new process on the same store."""

    def __init__(
        self,
        settings: Settings,
        api: FakeSlackAPI,
        slack: SlackSettings | None = None,
        rate_limit_retries: int = 2,
    ) -> None:
        self.settings = settings
        self.slack = slack or slack_settings(api)
        self.api = api
        self.rate_limit_retries = rate_limit_retries
        self.core: Core | None = None
        self.adapter: SlackAdapter | None = None
        self.send = SignedSender("http://127.0.0.1:0/slack/events", api)

    async def start(self) -> SlackBot:
        self.core = await Core.start(self.settings)
        self.adapter = SlackAdapter(
            self.core, self.slack, host="127.0.0.1", rate_limit_retries=self.rate_limit_retries
        )
        await self.adapter.start()
        await self.core.resume_all()
        self.send.url = self.adapter.url
        return self

    async def stop(self) -> None:
        if self.adapter is not None:
            await self.adapter.stop()
            self.adapter = None
        if self.core is not None:
            await self.core.close()
            self.core = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    @property
    def c(self) -> Core:
        assert self.core is not None
        return self.core

    async def settle(self, within: float = 15.0) -> None:
        """Wait until listeners that acknowledged and the sessions they kicked are all done."""
        assert self.adapter is not None
        deadline = time.monotonic() + within
        while True:
            await asyncio.wait_for(self.adapter.deps.inflight.wait(), max(0.1, deadline - time.monotonic()))
            await self.c.runner.idle(max(0.1, deadline - time.monotonic()))
            await asyncio.sleep(0.02)
            if not self.adapter.deps.inflight.busy and not self.c.runner.busy:
                return

    # -- looking at the chat
    def root(self, session_id: str) -> Posted:
        found = [m for m in self.api.roots() if f"`{session_id}`" in m.all_text()]
        assert len(found) == 1, f"expected one root message of {session_id}, found {len(found)}"
        return found[0]

    def thread(self, session_id: str) -> list[Posted]:
        root = self.root(session_id)
        return [m for m in self.api.thread(root.channel, root.ts) if m.ts != root.ts]

    def step(self, session_id: str, step_no: int) -> Posted:
        found = [m for m in self.thread(session_id) if m.text.startswith(f"Step {step_no}:")]
        assert len(found) == 1, f"expected one message for step {step_no}, found {len(found)}"
        return found[0]

    def of_kind(self, session_id: str, prefix: str) -> list[Posted]:
        return [m for m in self.thread(session_id) if m.text.startswith(prefix)]


@contextlib.asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[SlackBot]:
    """A started SlackBot on a fresh FakeSlackAPI; every payload it sent must be within limits."""
    async with FakeSlackAPI() as api:
        slack = SlackBot(settings, api)
        await slack.start()
        try:
            yield slack
        finally:
            await slack.stop()
        assert api.violations == []


async def start_goal(bot: SlackBot, text: str = "goal write a poem to poem.txt", user: str = "U1") -> str:
    """Send `/autogpt <text>` and return the id of the session it started."""
    sent = await bot.send.command(text, user=user)
    assert sent.status == 200, sent.body
    await bot.settle()
    started = [m for m in bot.api.ephemerals_to(user) if "Started session" in m]
    assert started, bot.api.ephemerals_to(user)
    return started[-1].split("Started session ", 1)[1][:6]
