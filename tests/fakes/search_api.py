"""A fake Google Custom Search JSON API on 127.0.0.1, for tests.

``GET /customsearch/v1?key=&cx=&q=&num=`` answers Google-shaped results: ``num`` items (at most
10) made from the query, unless ``items`` is set. Every request is recorded. ``fail_next``
makes the next requests answer an error in Google's shape::

    with FakeGoogleSearch() as google:
        settings = make_settings(..., google_search_api_url=google.base_url, google_api_key="k", ...)
        google.fail_next(429)
        google.requests[-1].params["q"]
"""

from __future__ import annotations

import collections
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
_REASON = {400: "badRequest", 403: "forbidden", 429: "rateLimitExceeded", 500: "backendError"}


@dataclass(frozen=True)
class SearchRequest:
    path: str
    params: dict[str, str]


@dataclass(frozen=True)
class Failure:
    status: int
    message: str
    reason: str


class FakeGoogleSearch:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.requests: list[SearchRequest] = []
        self.items: list[dict[str, Any]] | None = None  # None: made from the query
        self.delay = 0.0
        self._fail: collections.deque[Failure] = collections.deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def fail_next(self, status: int, message: str | None = None, reason: str | None = None) -> None:
        with self._lock:
            self._fail.append(
                Failure(
                    status,
                    message or f"fake Google error {status}",
                    reason or _REASON.get(status, "error"),
                )
            )

    def start(self) -> FakeGoogleSearch:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                fake._handle(self)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="FakeGoogle", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeGoogleSearch:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ serving
    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            self.requests.append(SearchRequest(parts.path, params))
            failure = self._fail.popleft() if self._fail else None
        deadline = time.monotonic() + self.delay
        while time.monotonic() < deadline and not self._stopping.is_set():
            time.sleep(0.02)
        if parts.path != "/customsearch/v1":
            self._send(handler, 404, {"error": {"code": 404, "message": "Not Found"}})
            return
        if failure is not None:
            body = {
                "error": {
                    "code": failure.status,
                    "message": failure.message,
                    "errors": [{"message": failure.message, "domain": "global", "reason": failure.reason}],
                    "status": _STATUS.get(failure.status, "UNKNOWN"),
                }
            }
            self._send(handler, failure.status, body)
            return
        if not params.get("key") or not params.get("cx") or not params.get("q"):
            self._send(
                handler, 400, {"error": {"code": 400, "message": "Missing key, cx or q", "errors": []}}
            )
            return
        try:
            num = int(params.get("num", "10"))
        except ValueError:
            num = 10
        if not 1 <= num <= 10:
            self._send(
                handler,
                400,
                {
                    "error": {
                        "code": 400,
                        "message": "Invalid value for num",
                        "errors": [{"reason": "invalid"}],
                    }
                },
            )
            return
        query = params["q"]
        items = (
            self.items
            if self.items is not None
            else [
                {
                    "kind": "customsearch#result",
                    "title": f"Result {i} for {query}",
                    "link": f"https://example.com/{i}?q={query.replace(' ', '+')}",
                    "snippet": f"Snippet {i} about {query}.\nSecond line.",
                }
                for i in range(1, 11)
            ]
        )
        body: dict[str, Any] = {
            "kind": "customsearch#search",
            "queries": {"request": [{"searchTerms": query, "count": num}]},
            "searchInformation": {"totalResults": str(len(items))},
        }
        if items[:num]:
            body["items"] = items[:num]
        self._send(handler, 200, body)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json; charset=UTF-8")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:  # the client gave up (a timeout test)
            pass
