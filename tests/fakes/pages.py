"""A local web server for the browsing tests.

``PageServer`` is a ``ThreadServer`` (tests/fakes/server.py), like ``ScriptedLLM``: aiohttp on
127.0.0.1 (and, for the browser tests, also on 127.0.0.2 with the same port) in a background thread
with its own event loop. Every request
is recorded (``server.requests``: path, Host header, headers, the address it reached), so a test
can prove that a refused fetch never reached it.

Pages::

    /article                  an HTML article with links (relative, absolute, javascript:, mailto:)
    /many-links               an HTML page with 40 links
    /long?paras=N             an HTML article of N paragraphs (default 30) of about 300 characters
    /redirect/{n}             a chain of n redirects ending at /article
    /redirect-to?url=U        one redirect to U (e.g. http://10.0.0.1/)
    /cross                    redirect to the same server under the name localhost: /headers
    /same                     redirect to /headers on the same origin
    /headers                  JSON of the request headers received
    /huge?mb=N                N MiB (default 6), streamed in chunks, no Content-Length
    /huge-declared            a Content-Length of 6 MiB, then nothing
    /slow?s=S                 sleeps S seconds, then a short page
    /trickle?s=S              a page sent a few bytes every 0.1 s for S seconds
    /doc.pdf                  a one-page PDF with a line of text
    /plain.txt, /data.json    plain text and JSON
    /image.png                a 1x1 PNG
    /file.bin?kb=N            N KiB (default 4) of bytes 0..255 repeated, for downloads
    /status/{code}            an empty response with that status
    /js                       text written by a script (only a real browser sees it)
    /js-fetch?url=U&url=V     a script fetching each URL and writing, one line each, what came back
                              ("Fetched N: ...") or "Blocked N"; &frame=F adds an iframe showing F
    /js-go?url=U              a page whose script sends the window to U once it has loaded
"""

from __future__ import annotations

import html
import json
import struct
import threading
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar

from aiohttp import web

from tests.fakes.server import HOST, ThreadServer

ARTICLE_TITLE = "The Quiet Life of Lighthouse Keepers"
ARTICLE_FACT = "Keepers trimmed the lamp wicks every four hours through the night."
JS_TEXT = "Rendered by JavaScript: the harbour opens at dawn."
PDF_TEXT = "Hello from a tiny PDF about tides"
PLAIN_TEXT = "Plain text: the ferry leaves at nine."
JSON_DATA = {"ferry": {"leaves": "09:00", "from": "North Pier"}}
SECRET = "internal-secret-7f3a"


@dataclass
class Seen:
    path: str
    host: str  # the Host header
    local: str  # the address the connection reached (127.0.0.1 or 127.0.0.2)
    headers: dict[str, str] = field(default_factory=dict)


def article_html(port: int) -> str:
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{ARTICLE_TITLE}</title></head>
<body>
<nav><a href="/">Home</a> <a href="/about">About us</a></nav>
<main><article>
<h1>{ARTICLE_TITLE}</h1>
<p>For two centuries, lighthouse keepers lived on rocks far out at sea. {ARTICLE_FACT}
Their logbooks record storms, shipwrecks and the slow arrival of electric light.</p>
<p>Read the <a href="/history">full history of the service</a> or the
<a href="http://example.org/keepers">keepers' association page</a>.
Contact <a href="mailto:editor@example.org">the editor</a> or
<a href="javascript:alert(1)">do nothing</a>.</p>
<p>Most stations were automated by the end of the twentieth century, and the last keepers left
their towers with their families, books and the habits of a life measured by the lamp.</p>
</article></main>
<footer><a href="http://127.0.0.1:{port}/plain.txt">Plain version</a></footer>
</body></html>"""


def many_links_html() -> str:
    links = "\n".join(f'<li><a href="/page/{i}">Page number {i}</a></li>' for i in range(40))
    return f"""<html><head><title>Index</title></head><body><h1>Index of pages</h1>
<p>This index lists many pages about the coast, one per line, for readers.</p><ul>{links}</ul>
</body></html>"""


JS_HTML = """<!DOCTYPE html><html><head><title>Harbour</title></head><body>
<div id="out">Loading...</div>
<script>
  var parts = ["Rendered by", "JavaScript:", "the harbour", "opens at dawn."];
  document.getElementById("out").textContent = parts.join(" ");
</script></body></html>"""


def long_html(paragraphs: int) -> str:
    body = "\n".join(
        f"<p>Paragraph {i}: the tide tables of the northern harbour list the high and low waters for "
        f"every day of the year, and the keepers copied them into their logbooks by hand so that "
        f"every boat leaving the pier knew when the channel was deep enough to cross safely.</p>"
        for i in range(paragraphs)
    )
    return (
        f"<html><head><title>Tides</title></head><body><article><h1>Tides</h1>{body}</article></body></html>"
    )


def js_go_html(url: str) -> str:
    return f"""<!DOCTYPE html><html><head><title>Leaving</title></head><body><p>Leaving this page.</p>
<script>
  window.addEventListener("load", function () {{
    setTimeout(function () {{ location.replace({json.dumps(url)}); }}, 20);
  }});
</script></body></html>"""


def js_fetch_html(urls: list[str], frames: list[str] | None = None) -> str:
    iframes = "".join(f'<iframe src="{html.escape(u)}"></iframe>' for u in frames or [])
    return f"""<!DOCTYPE html><html><head><title>Fetcher</title></head><body>
<h1>Fetch results</h1>{iframes}
<div id="out"></div>
<script>
  var out = document.getElementById("out");
  function line(text) {{ var p = document.createElement("p"); p.textContent = text; out.appendChild(p); }}
  {json.dumps(urls)}.forEach(function (url, i) {{
    fetch(url).then(function (r) {{ return r.text(); }})
      .then(function (t) {{ line("Fetched " + i + ": " + t); }})
      .catch(function () {{ line("Blocked " + i); }});
  }});
</script></body></html>"""


def tiny_pdf(text: str = PDF_TEXT) -> bytes:
    """A valid one-page PDF (Helvetica) showing `text`, with a correct cross-reference table."""
    stream = f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def file_bytes(kb: int) -> bytes:
    return bytes(range(256)) * (kb * 4)


class PageServer(ThreadServer):
    handler_cancellation: ClassVar[bool] = False  # a client that went away is part of some tests

    def __init__(self, *, second_address: bool = True) -> None:
        super().__init__(HOST, 0)
        self.second_address = second_address
        self.requests: list[Seen] = []
        self._lock = threading.Lock()

    @property
    def base(self) -> str:
        return self.origin

    async def _serve_more(self, runner: web.AppRunner) -> None:
        if self.second_address:
            await web.TCPSite(runner, "127.0.0.2", self.port).start()

    def add_routes(self, app: web.Application) -> None:
        app.middlewares.append(self._record_mw)
        app.router.add_get("/article", self._article)
        app.router.add_get("/many-links", _sync(lambda r: _html(many_links_html())))
        app.router.add_get("/long", _sync(lambda r: _html(long_html(int(r.query.get("paras", "30"))))))
        app.router.add_get("/redirect/{n}", self._redirect_chain)
        app.router.add_get("/redirect-to", self._redirect_to)
        app.router.add_get("/cross", self._cross)
        app.router.add_get("/same", _sync(lambda r: _redirect("/headers")))
        app.router.add_get("/headers", self._headers)
        app.router.add_get("/huge", self._huge)
        app.router.add_get("/huge-declared", self._huge_declared)
        app.router.add_get("/slow", self._slow)
        app.router.add_get("/trickle", self._trickle)
        app.router.add_get(
            "/doc.pdf", _sync(lambda r: web.Response(body=tiny_pdf(), content_type="application/pdf"))
        )
        app.router.add_get(
            "/plain.txt", _sync(lambda r: web.Response(text=PLAIN_TEXT, content_type="text/plain"))
        )
        app.router.add_get("/data.json", _sync(lambda r: web.json_response(JSON_DATA)))
        app.router.add_get(
            "/image.png", _sync(lambda r: web.Response(body=tiny_png(), content_type="image/png"))
        )
        app.router.add_get("/file.bin", self._file)
        app.router.add_get("/status/{code}", _sync(lambda r: web.Response(status=int(r.match_info["code"]))))
        app.router.add_get("/js", _sync(lambda r: _html(JS_HTML)))
        app.router.add_get(
            "/js-fetch",
            _sync(lambda r: _html(js_fetch_html(r.query.getall("url", []), r.query.getall("frame", [])))),
        )
        app.router.add_get("/js-go", _sync(lambda r: _html(js_go_html(r.query["url"]))))
        app.router.add_get("/secret", _sync(lambda r: web.Response(text=SECRET, headers=_cors())))

    # -- records --------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()

    def paths(self) -> list[str]:
        with self._lock:
            return [s.path for s in self.requests]

    def seen(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.requests if s.path == path]

    @web.middleware
    async def _record_mw(self, request: web.Request, handler: web.Handler) -> web.StreamResponse:
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        seen = Seen(
            path=request.path,
            host=request.headers.get("Host", ""),
            local=str(sockname[0]) if sockname else "",
            headers=dict(request.headers),
        )
        with self._lock:
            self.requests.append(seen)
        return await handler(request)

    # -- handlers -------------------------------------------------------------------

    async def _article(self, request: web.Request) -> web.Response:
        return _html(article_html(self.port))

    async def _redirect_chain(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return _redirect("/article" if n <= 1 else f"/redirect/{n - 1}")

    async def _redirect_to(self, request: web.Request) -> web.Response:
        return _redirect(request.query["url"])

    async def _cross(self, request: web.Request) -> web.Response:
        return _redirect(f"http://localhost:{self.port}/headers")

    async def _headers(self, request: web.Request) -> web.Response:
        return web.json_response(dict(request.headers))

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        total = int(float(request.query.get("mb", "6")) * 1024 * 1024)
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        block = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>\n"
        sent = 0
        try:
            while sent < total:
                await response.write(block)
                sent += len(block)
        except (ConnectionError, RuntimeError):  # the client stopped reading: that is the point
            return response
        await response.write_eof()
        return response

    async def _huge_declared(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        response.content_length = 6 * 1024 * 1024
        await response.prepare(request)
        await self.sleep(5)
        return response

    async def _slow(self, request: web.Request) -> web.Response:
        await self.sleep(float(request.query.get("s", "3")))
        return _html("<html><body><p>Finally here, a slow page.</p></body></html>")

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        await response.prepare(request)
        steps = int(float(request.query.get("s", "3")) / 0.1)
        try:
            await response.write(b"<html><body><p>")
            for _ in range(steps):
                await self.sleep(0.1)
                await response.write(b"drip ")
            await response.write(b"</p></body></html>")
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return response

    async def _file(self, request: web.Request) -> web.Response:
        body = file_bytes(int(request.query.get("kb", "4")))
        return web.Response(body=body, content_type="application/octet-stream")


def _sync(
    fn: Callable[[web.Request], web.StreamResponse],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return fn(request)

    return handler


def _html(text: str) -> web.Response:
    return web.Response(text=text, content_type="text/html", charset="utf-8")


def _redirect(location: str) -> web.Response:
    return web.Response(status=302, headers={"Location": location})


def _cors() -> dict[str, str]:
    return {"Access-Control-Allow-Origin": "*"}
