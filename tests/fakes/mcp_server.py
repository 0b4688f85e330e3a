"""A local MCP tool server written with the SDK's server side (MCPServer, formerly FastMCP), for
the MCP tests: run as a real stdio subprocess (`python mcp_server.py`) or as a real streamable
HTTP server (`python mcp_server.py --http PORT [--token TOKEN]`: every request must then carry
`Authorization: Bearer TOKEN`).

Its tools: `echo` and `add` (read-only), `delete_item` (destructive), `slow` (sleeps), `crash`
(the process dies mid-call), `big` (a result of N megabytes), `picture` (text and an image),
`whoami` (the Authorization header it was sent) and `where` (the working directory, whether
the bot's data can be seen, and the environment it was given)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
from pathlib import Path

if __name__ == "__main__" and "--fail" in sys.argv:  # a broken server: exits before it speaks
    print("cannot start: no configuration", file=sys.stderr, flush=True)
    sys.exit(2)

from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ImageContent, TextContent, ToolAnnotations

READ_ONLY = ToolAnnotations(read_only_hint=True)
DESTRUCTIVE = ToolAnnotations(read_only_hint=False, destructive_hint=True)
PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6300010000050001"
        "0d0a2db40000000049454e44ae426082"
    )
).decode()

server = MCPServer("fake-tools")


@server.tool(description="Say the text back", annotations=READ_ONLY)
def echo(text: str) -> str:
    return f"echo: {text}"


@server.tool(description="Add two whole numbers", annotations=READ_ONLY)
def add(a: int, b: int) -> str:
    return str(a + b)


@server.tool(description="Delete an item for good", annotations=DESTRUCTIVE)
def delete_item(name: str) -> str:
    return f"deleted {name}"


@server.tool(description="Wait, then answer")
async def slow(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return f"slept {seconds:g} s"


@server.tool(description="Die in the middle of the call")
def crash() -> str:
    print("crashing on purpose", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool(description="A result of N megabytes", annotations=READ_ONLY)
def big(megabytes: float) -> str:
    return "x" * int(megabytes * 1024 * 1024)


@server.tool(description="Text and a picture", annotations=READ_ONLY)
def picture() -> list[TextContent | ImageContent]:
    return [
        TextContent(type="text", text="a red dot"),
        ImageContent(type="image", data=PNG_1PX, mime_type="image/png"),
    ]


@server.tool(description="The Authorization header of this request", annotations=READ_ONLY)
def whoami(ctx: Context) -> str:
    request = ctx.request_context.request
    headers = getattr(request, "headers", None)
    return f"you sent: {headers.get('authorization') if headers is not None else '(stdio)'}"


@server.tool(description="Where the server runs", annotations=READ_ONLY)
def where(secret_file: str = "") -> str:
    seen = "cannot read it"
    if secret_file:
        try:
            seen = Path(secret_file).read_text()
        except OSError as exc:
            seen = f"cannot read it ({exc.strerror})"
    return f"cwd={os.getcwd()} uid={os.getuid()} file={seen} env={sorted(os.environ)}"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--http", type=int, metavar="PORT")
    p.add_argument("--token")
    ns = p.parse_args()
    if ns.http is None:
        server.run("stdio")
        return
    import uvicorn
    from starlette.responses import PlainTextResponse

    app = server.streamable_http_app(json_response=False)
    token = ns.token

    async def guarded(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] == "http" and token:
            headers = dict(scope.get("headers") or [])
            if headers.get(b"authorization", b"").decode() != f"Bearer {token}":
                await PlainTextResponse("unauthorized", status_code=401)(scope, receive, send)
                return
        await app(scope, receive, send)

    uvicorn.run(guarded, host="127.0.0.1", port=ns.http, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
