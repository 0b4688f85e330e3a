"""MCP tool servers (MCP_SERVERS, MCP_CONFIG): their tools join the registry as `SERVER__TOOL`.

Through the official `mcp` SDK's client (`mcp.Client`: the stdio transport for a command the bot
starts, the streamable HTTP transport for a URL; the handshake, listing and calling are the
SDK's). Each server has one task for its whole life: it connects, lists the tools, keeps a
health check going, and when the server fails to start or dies it withdraws the server's tools
(not offered in the prompt; proposing or calling one is a clear error for the agent) and
connects again with backoff, until it is back.

What the agent is told: the text of a result (images, audio and binary resources summarised,
a text resource's text), cut at MAX_FILE_BYTES / 2 characters like a sandboxed command's output
(the engine then keeps MAX_RESULT_CHARS of it in the session and the rest in a workspace file);
a call that takes longer than MCP_TIMEOUT_S is a tool error. A server going down is said once in
the log, once in the thread of each session that calls it, and in `check-config`.

A tool's arguments are checked against its JSON schema (jsonschema, which the SDK uses too), and
its annotations set the outside-effects flag: `readOnlyHint: true` has none, anything else has
them, so the approval policy asks for it even in continuous mode. TOOL_POLICY applies by name
(`demo__echo=allow`) and by pattern (`demo__*=ask`).

With MCP_SANDBOX=true a stdio server runs in bubblewrap (bot/sandbox/bwrap.py), with its own
folder as its workspace. The `mcp` package is imported only when a server is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from bot.models import Session
from bot.redact import NO_SECRETS, Redactor
from bot.settings import McpServer, Settings
from bot.tools.base import Tool, ToolContext, ToolError, ToolOutput, ToolRegistry

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult

log = logging.getLogger(__name__)

SEPARATOR = "__"  # demo__echo: the tool echo of the server demo
SECTION = "MCP tool servers"
RECONNECT_FIRST_S = 1.0  # the first retry after a server failed; doubled each time
RECONNECT_MAX_S = 60.0
HEALTH_S = 30.0  # how often a connected server's tools are listed again (a dead one is found)
START_WAIT_S = 15.0  # how long the core's start waits for the servers
CONNECT_TIMEOUT_S = 30.0  # starting (the handshake) and listing the tools may take this, or MCP_TIMEOUT_S
CLOSE_WAIT_S = 8.0  # the SDK gives a stdio server 2 s to exit, then terminates it
DESCRIPTION_CHARS = 300
STATUS_NAMES = 12  # tools named in a server's line of check-config
ERROR_CHARS = 300
HTTP_READ_S = 300.0  # a streamable HTTP server may hold a response stream open this long
SANDBOX_CPU_S = 30 * 24 * 3600.0  # a sandboxed server runs for weeks: its CPU limit is not a timeout
WORKSPACES = "mcp"  # DATA_DIR/mcp/NAME: a sandboxed server's own folder, and its stderr log

Notify = Callable[[Session, str], Awaitable[None]]
State = Literal["starting", "up", "down", "disabled"]


class McpArgs(BaseModel):
    """Stands in for an MCP tool's arguments model: they are checked against its JSON schema."""


@dataclass(frozen=True)
class McpTool(Tool):
    """A tool of an MCP server, as the registry offers it."""

    link: Link | None = field(default=None, compare=False, repr=False)
    remote: str = ""  # its name on the server
    schema: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    checker: Any = field(default=None, compare=False, repr=False)  # a jsonschema validator

    def prompt_line(self) -> str:
        props = self.schema.get("properties")
        required = set(self.schema.get("required") or [])
        fields = []
        if isinstance(props, dict):
            for name, prop in props.items():
                kind = _kind(prop)
                fields.append(f'"{name}": "<{kind}{"" if name in required else ", optional"}>"')
        line = f"{self.name}: {self.description}"
        return f"{line}, args: {', '.join(fields)}" if fields else line

    def withdrawn(self) -> str | None:
        return self.link.withdrawn() if self.link is not None else None

    def validate(self, args: dict[str, Any]) -> Any:
        if (why := self.withdrawn()) is not None:
            raise ToolError(f"{self.name} is not available now: {why}. Use another command.")
        if self.checker is not None:
            errors = sorted(self.checker.iter_errors(args), key=lambda e: [str(p) for p in e.absolute_path])
            if errors:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.absolute_path) or 'args'}: {_clip(e.message, 200)}"
                    for e in errors[:5]
                )
                raise ToolError(
                    f"Invalid arguments for {self.name}: {problems}. Expected: {self.prompt_line()}"
                )
        return args


def _kind(prop: Any) -> str:
    if not isinstance(prop, dict):
        return "value"
    if isinstance(prop.get("enum"), list):
        return "one of " + "|".join(json.dumps(v) for v in prop["enum"][:10])
    kind = prop.get("type")
    if isinstance(kind, list):
        return " or ".join(str(k) for k in kind)
    if kind == "array" and isinstance(prop.get("items"), dict) and prop["items"].get("type"):
        return f"array of {prop['items']['type']}"
    return str(kind) if kind else "value"


def _clip(text: str, limit: int) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _checker(schema: dict[str, Any]) -> Any:
    """A jsonschema validator for a tool's input schema; None when the schema itself is invalid
    (the server checks the arguments then)."""
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for
    from referencing import Registry

    cls = validator_for(schema)
    try:
        cls.check_schema(schema)
    except SchemaError:
        return None
    return cls(schema, registry=Registry())  # $refs resolve within the schema only, never fetched


def _error_text(exc: BaseException) -> str:
    """One line for what went wrong: the first real error inside exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}" + (f": {exc.filename}" if exc.filename else "")
    text = str(exc).strip() or type(exc).__name__
    return _clip(text, ERROR_CHARS)


# ---------------------------------------------------------------------------- results


def result_text(result: CallToolResult) -> str:
    """What the agent reads of a tool's result: the text of each content block; images, audio,
    links and binary resources as a line that says what they are."""
    from mcp.types import AudioContent, EmbeddedResource, ImageContent, ResourceLink, TextContent

    parts: list[str] = []
    for block in result.content:
        if isinstance(block, TextContent):
            parts.append(block.text)
        elif isinstance(block, ImageContent | AudioContent):
            parts.append(f"[{block.type}: {block.mime_type}, about {len(block.data) * 3 // 4:,} bytes]")
        elif isinstance(block, ResourceLink):
            parts.append(f"[resource link: {block.name} {block.uri}]")
        elif isinstance(block, EmbeddedResource):
            res = block.resource
            text = getattr(res, "text", None)
            mime = f" ({res.mime_type})" if res.mime_type else ""
            if isinstance(text, str):
                parts.append(f"[resource {res.uri}{mime}]\n{text}")
            else:
                size = len(getattr(res, "blob", "") or "") * 3 // 4
                parts.append(f"[resource {res.uri}{mime}: about {size:,} bytes of binary data]")
        else:
            parts.append(f"[{getattr(block, 'type', 'content')}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts) if parts else "(no output)"


def capped(text: str, limit: int, name: str) -> str:
    if len(text) <= limit:
        return text
    return (
        text[:limit] + f"\n[... cut: {name} returned {len(text):,} characters; only the first {limit:,} "
        "are kept (MAX_FILE_BYTES / 2)]"
    )


# ---------------------------------------------------------------------------- one server


class Link:
    """One configured server: its connection, its tools, its state."""

    def __init__(self, config: McpServer, owner: McpServers) -> None:
        self.config = config
        self.name = config.name
        self.owner = owner
        self.state: State = "disabled" if config.disabled else "starting"
        self.reason: str | None = "disabled in its configuration" if config.disabled else None
        self.client: Client | None = None
        self.tools: dict[str, McpTool] = {}  # by remote name
        self.settled = asyncio.Event()  # the first attempt to connect ended, either way
        self._broken = asyncio.Event()  # a call found the connection gone
        self._told: set[str] = set()  # sessions told of this outage
        self._http_error: str | None = None  # the last HTTP error status the server answered
        self._logged = False  # this outage is in the log
        self._task: asyncio.Task[None] | None = None

    @property
    def settings(self) -> Settings:
        return self.owner.settings

    @property
    def kind(self) -> str:
        return "stdio" if self.config.command is not None else "streamable HTTP"

    def withdrawn(self) -> str | None:
        if self.state == "up":
            return None
        if self.state == "starting":
            return f"the MCP server {self.name} is still starting"
        return f"the MCP server {self.name} is down ({self.reason}); its tools are back when it is"

    def status(self) -> str:
        if self.state == "up":
            names = [t.name for t in self.tools.values()]
            shown = ", ".join(names[:STATUS_NAMES]) + (", ..." if len(names) > STATUS_NAMES else "")
            count = len(names)
            return f"{self.name}: on ({count} tool{'s' if count != 1 else ''}{': ' + shown if names else ''})"
        if self.state == "starting":
            return f"{self.name}: off (still starting after {self.owner.start_wait():g} s)"
        return f"{self.name}: off ({self.reason})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.state != "disabled" and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mcp-{self.name}")
        else:
            self.settled.set()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, CLOSE_WAIT_S)
        self._withdraw_all()
        self.client = None

    async def _run(self) -> None:
        delay = RECONNECT_FIRST_S
        while True:
            reason: str | None = None
            try:
                async with self._connected() as client:
                    await self._list(client)
                    self._up(client)
                    delay = RECONNECT_FIRST_S
                    reason = await self._watch(client)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # connecting failed, or closing a broken connection did
                reason = reason or self._failure(exc)
            self._down(reason)
            self.settled.set()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _watch(self, client: Client) -> str:
        """Until the connection breaks: list the tools again every HEALTH_S (a server that died
        while idle is found, and tools it added or dropped follow). Returns why it broke."""
        self._broken.clear()
        while True:
            try:
                await asyncio.wait_for(self._broken.wait(), HEALTH_S)
                return self.reason or "the connection closed"
            except TimeoutError:
                pass
            try:
                await self._list(client)
            except Exception as exc:
                return self._failure(exc)

    @contextlib.asynccontextmanager
    async def _connected(self) -> AsyncIterator[Client]:
        from mcp import Client

        timeout = max(self.settings.mcp_timeout_s, CONNECT_TIMEOUT_S)
        self._http_error = None
        async with contextlib.AsyncExitStack() as stack:
            if self.config.url is not None:
                import httpx2
                from mcp.client.streamable_http import streamable_http_client

                async def seen(response: httpx2.Response) -> None:  # the SDK does not say the status
                    if response.status_code >= 400 and response.request.method == "POST":
                        self._http_error = f"HTTP {response.status_code} {response.reason_phrase}".strip()

                headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
                http = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=headers,
                        timeout=httpx2.Timeout(timeout, read=HTTP_READ_S),
                        event_hooks={"response": [seen]},
                    )
                )
                transport: Any = streamable_http_client(
                    self.config.url,
                    http_client=http,
                    # a result is cut at MAX_FILE_BYTES / 2 characters: let one that big arrive
                    max_sse_event_size=max(1 << 20, self.settings.max_file_bytes),
                )
            else:
                from mcp import stdio_client

                errlog = stack.enter_context(self._stderr_log().open("w", encoding="utf-8"))
                transport = stdio_client(await self._parameters(), errlog=errlog)
            client = Client(transport, read_timeout_seconds=timeout, cache=None)
            yield await stack.enter_async_context(client)

    def _stderr_log(self) -> Path:
        folder = self.settings.data_dir / WORKSPACES
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{self.name}.stderr.log"

    def _stderr_tail(self) -> str:
        """The last line the server wrote on stderr (most servers say there why they stopped)."""
        try:
            with self._stderr_log().open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = [x for x in f.read().decode("utf-8", "replace").splitlines() if x.strip()]
        except OSError:
            return ""
        return _clip(lines[-1], 200) if lines else ""

    async def _parameters(self) -> Any:
        from mcp import StdioServerParameters

        config = self.config
        assert config.command is not None
        env = {k: v.get_secret_value() for k, v in config.env.items()}
        if not self.settings.mcp_sandbox:
            return StdioServerParameters(command=config.command, args=config.args, env=env, cwd=config.cwd)
        return await asyncio.to_thread(sandboxed, self.settings, self.name, config, env)

    async def _list(self, client: Client) -> None:
        """List the server's tools (every page) and offer them: new ones added, gone ones removed."""
        found = []
        cursor: str | None = None
        for _ in range(100):
            page = await client.list_tools(cursor=cursor)
            found += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        tools: dict[str, McpTool] = {}
        for remote in found:
            name = f"{self.name}{SEPARATOR}{remote.name}"
            known = self.tools.get(remote.name)
            annotations = remote.annotations
            outside = not (annotations is not None and annotations.read_only_hint is True)
            description = _clip(remote.description or remote.title or remote.name, DESCRIPTION_CHARS)
            schema = remote.input_schema if isinstance(remote.input_schema, dict) else {}
            if (
                known is not None
                and known.schema == schema
                and known.outside_effects == outside
                and known.description == description
            ):
                tools[remote.name] = known
                continue
            tools[remote.name] = McpTool(
                name=name,
                description=description,
                args=McpArgs,
                run=self._runner(remote.name),
                outside_effects=outside,
                section=SECTION,
                link=self,
                remote=remote.name,
                schema=schema,
                checker=_checker(schema),
            )
        registry = self.owner.registry
        for remote_name, tool in self.tools.items():
            if tools.get(remote_name) is not tool:
                registry.remove(tool.name)
        for remote_name, tool in tools.items():
            if self.tools.get(remote_name) is not tool:
                if any(t.name == tool.name for t in registry.all()):
                    log.warning(
                        "MCP server %s: its tool %s clashes with another tool: left out", self.name, tool.name
                    )
                    continue
                registry.add(tool)
        self.tools = {k: t for k, t in tools.items() if any(x is t for x in registry.all())}

    def _runner(self, remote: str) -> Callable[[ToolContext, Any], Awaitable[str | ToolOutput]]:
        async def run(ctx: ToolContext, args: Any) -> str | ToolOutput:
            return await self.call(remote, args, ctx)

        return run

    # ------------------------------------------------------------------ states

    def _up(self, client: Client) -> None:
        was = self.state
        self.client, self.state, self.reason = client, "up", None
        self._told.clear()
        self.settled.set()
        count = len(self.tools)
        if was == "down":
            log.info("MCP server %s is back: its %d tools are offered again", self.name, count)
        else:
            log.info("MCP server %s (%s) is on with %d tools", self.name, self.kind, count)
        self._logged = False

    def _down(self, reason: str) -> None:
        self.client = None
        first = self.state != "down"
        self.state, self.reason = "down", self.owner.redactor.text(reason)
        if not self._logged:
            self._logged = True
            log.warning(
                "MCP server %s (%s) is down: %s; its tools are withdrawn until it is back",
                self.name,
                self.kind,
                self.reason,
            )
        elif first:
            log.debug("MCP server %s is down again: %s", self.name, self.reason)

    def _withdraw_all(self) -> None:
        for tool in self.tools.values():
            self.owner.registry.remove(tool.name)
        self.tools = {}
        if self.state == "up":
            self.state, self.reason = "down", "closed"

    def _failure(self, exc: BaseException) -> str:
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED, REQUEST_TIMEOUT

        inner = exc
        while isinstance(inner, BaseExceptionGroup) and inner.exceptions:
            inner = inner.exceptions[0]
        if isinstance(inner, MCPError) and inner.code == REQUEST_TIMEOUT:
            reason = f"it did not answer within {max(self.settings.mcp_timeout_s, CONNECT_TIMEOUT_S):g} s"
        elif (isinstance(inner, MCPError) and inner.code == CONNECTION_CLOSED) or isinstance(
            inner, EOFError | BrokenPipeError | ConnectionResetError
        ):
            reason = "it stopped" if self.config.command else "the connection closed"
        elif isinstance(inner, FileNotFoundError) and self.config.command:
            reason = f"it cannot be started: {self.config.command} is not found"
        elif self._http_error is not None:
            reason = f"it answered {self._http_error}"
        elif self.config.url is not None and type(inner).__module__.startswith("httpx"):
            reason = f"it cannot be reached: {_error_text(inner)}"
        else:
            reason = _error_text(inner)
        if self.config.command:
            said = self._stderr_tail()
            if said:
                reason += f"; it said: {said}"
        return reason

    # ------------------------------------------------------------------ calls

    async def call(self, remote: str, args: dict[str, Any], ctx: ToolContext) -> str | ToolOutput:
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED, INTERNAL_ERROR, REQUEST_TIMEOUT

        name = f"{self.name}{SEPARATOR}{remote}"
        client = self.client
        if client is None or self.state != "up":
            why = self.withdrawn() or f"the MCP server {self.name} is not connected"
            await self._tell(ctx.session, why)
            raise ToolError(f"{name} is not available now: {why}.")
        timeout = self.settings.mcp_timeout_s
        try:
            result = await client.call_tool(remote, args, read_timeout_seconds=timeout)
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolError(
                    f"{name} did not finish within {timeout:g} s (MCP_TIMEOUT_S); it may still be working"
                ) from None
            if exc.code != CONNECTION_CLOSED:
                said = exc.error.message
                if exc.code == INTERNAL_ERROR and self._http_error:  # the SDK's stand-in for a status
                    said = f"{said} ({self._http_error})"
                raise ToolError(f"{name}: the server refused the call: {_clip(said, 500)}") from None
            raise await self._lost(ctx.session, name, self._failure(exc)) from None
        except (OSError, EOFError) as exc:
            raise await self._lost(ctx.session, name, self._failure(exc)) from None
        except Exception as exc:
            if self.client is not client or type(exc).__module__.startswith(("httpx", "anyio")):
                raise await self._lost(ctx.session, name, self._failure(exc)) from None
            raise ToolError(f"{name}: the server's answer is not usable: {_error_text(exc)}") from None
        text = capped(result_text(result), self.settings.max_file_bytes // 2, name)
        if result.is_error:
            raise ToolError(f"{name} failed: {text}")
        return text

    async def _lost(self, session: Session, name: str, reason: str) -> ToolError:
        """The connection went while a call was on it: the tools are withdrawn at once, the
        session is told once, the server's task connects again."""
        if self.state == "up":
            self._down(f"{reason} during a call to {name}")
            self._broken.set()
        why = self.withdrawn() or reason
        await self._tell(session, why)
        return ToolError(f"{name} did not finish: {why}.")

    async def _tell(self, session: Session, why: str) -> None:
        """Say once in a session's thread that the server is down and its tools withdrawn."""
        if session.id in self._told or self.owner.notify is None:
            return
        self._told.add(session.id)
        if self.state == "down":
            why = f"the MCP server {self.name} is down ({self.reason})"
        tools = f"{self.name}{SEPARATOR}*"
        text = f"The tools of MCP server {self.name} ({tools}) are withdrawn until it is back: {why}."
        try:
            await self.owner.notify(session, text)
        except Exception:
            log.warning("session %s: the MCP notice was not posted", session.id, exc_info=True)


# ---------------------------------------------------------------------------- all of them


class McpServers:
    """The configured servers of one core (or of `check-config`)."""

    def __init__(
        self,
        settings: Settings,
        registry: ToolRegistry,
        redactor: Redactor | None = None,
        notify: Notify | None = None,
    ) -> None:
        self.settings, self.registry, self.notify = settings, registry, notify
        self.redactor = redactor or NO_SECRETS
        self.links = [Link(config, self) for config in settings.mcp_server_list()]

    def start_wait(self) -> float:
        return START_WAIT_S

    async def start(self) -> None:
        """Connect every server; wait until each has connected or failed once (at most
        START_WAIT_S): a slower one joins when it is up."""
        if not self.links:
            return
        for link in self.links:
            link.start()
        waits = [asyncio.ensure_future(link.settled.wait()) for link in self.links]
        _done, pending = await asyncio.wait(waits, timeout=self.start_wait())
        for wait in pending:
            wait.cancel()
        for link in self.links:
            if link.state == "starting":
                log.warning(
                    "MCP server %s has not started within %g s; its tools join when it does",
                    link.name,
                    self.start_wait(),
                )

    async def close(self) -> None:
        await asyncio.gather(*(link.close() for link in self.links))

    def status_lines(self) -> list[str]:
        """For `check-config`: each server, on with its tools or off with the reason."""
        return [self.redactor.text(link.status()) for link in self.links]


# ---------------------------------------------------------------------------- the sandbox


def sandboxed(settings: Settings, name: str, config: McpServer, env: dict[str, str]) -> Any:
    """The stdio parameters that start `config`'s command in bubblewrap (MCP_SANDBOX=true): the
    bot's own sandbox (bot/sandbox/bwrap.py) with the server's folder DATA_DIR/mcp/NAME as its
    workspace (its files go there), this Python environment readable (a Python server can use
    the packages installed with the bot), and no wall clock. Bubblewrap reads /etc/passwd and
    /etc/group from file descriptors: a shell opens them on here-documents, then becomes it."""
    from mcp import StdioServerParameters

    from bot.sandbox.base import NOBODY, Limits, RunRequest, hand_over
    from bot.sandbox.bwrap import GROUP, PASSWD, BwrapSandbox

    read_only = [sys.prefix] if os.path.realpath(sys.prefix) != os.path.realpath(sys.base_prefix) else []
    box = BwrapSandbox(read_only=read_only)
    if config.cwd is not None:  # the folder is handed to the sandbox's user: only the bot's own
        raise ValueError("cwd cannot be used with MCP_SANDBOX: put the server's files in DATA_DIR/mcp/NAME")
    workspace = (settings.data_dir / WORKSPACES / name).resolve()
    workspace.mkdir(parents=True, exist_ok=True)
    if box.as_root:
        hand_over(workspace, NOBODY)
    request = RunRequest(
        argv=[config.command or "", *config.args],
        workspace=workspace,
        env={"LANG": "C.UTF-8", **env},
        limits=Limits(
            timeout_s=SANDBOX_CPU_S,
            memory_mb=settings.sandbox_memory_mb,
            max_processes=settings.sandbox_max_processes,
            cpus=settings.sandbox_cpus,
            file_bytes=settings.max_file_bytes,
            output_bytes=settings.max_file_bytes,
        ),
        network=settings.sandbox_network,
    )
    argv = box.argv(request, box.env(request.env), workspace, passwd_fd=3, group_fd=4)
    script = (
        'exec "$@" 3<<"PASSWD_END" 4<<"GROUP_END"\n'
        + PASSWD.decode()
        + "PASSWD_END\n"
        + GROUP.decode()
        + "GROUP_END\n"
    )
    return StdioServerParameters(command="/bin/sh", args=["-c", script, "sh", *argv], env={}, cwd="/")
