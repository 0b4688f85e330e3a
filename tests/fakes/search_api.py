"""A fake Google Custom Search JSON API on 127.0.0.1, for tests.

``GET /customsearch/v1?key=&cx=&q=&num=`` answers Google-shaped results: ``num`` items (at most
10) made from the query, unless ``items`` is set. Every request is recorded. ``fail_next``
makes the next requests answer an error in Google's shape::

    with FakeGoogleSearch() as google:
        settings = make_settings(..., google_search_api_url=google.base_url, google_api_key="k", ...)
        google.fail_next(429)
        google.requests[-1].params["q"]

``FakeGoogleSearch`` is a ``ThreadServer`` (tests/fakes/server.py): it runs in a background thread
with its own event loop, for sync and async tests alike.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.server import HOST, Failure, Failures, ThreadServer

_STATUS = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL"}
_REASON = {400: "badRequest", 403: "forbidden", 429: "rateLimitExceeded", 500: "backendError"}


@dataclass(frozen=True)
class SearchRequest:
    path: str
    params: dict[str, str]


class FakeGoogleSearch(ThreadServer):
    def __init__(self, host: str = HOST, port: int = 0) -> None:
        super().__init__(host, port)
        self.requests: list[SearchRequest] = []
        self.items: list[dict[str, Any]] | None = None  # None: made from the query
        self.delay = 0.0
        self._failures = Failures()
        self._lock = threading.Lock()

    def fail_next(self, status: int, message: str | None = None, reason: str | None = None) -> None:
        """The next request gets HTTP ``status`` with Google's error body."""
        self._failures.add(
            Failure(
                ".*",
                status,
                error=reason or _REASON.get(status, "error"),
                message=message or f"fake Google error {status}",
            )
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/{path:.*}", self._handle)

    # ------------------------------------------------------------------ serving
    async def _handle(self, request: web.Request) -> web.Response:
        params = {k: request.query.getall(k)[-1] for k in request.query}
        with self._lock:
            self.requests.append(SearchRequest(request.path, params))
        failure = self._failures.take(request.path, params)
        await self.sleep(self.delay)
        if request.path != "/customsearch/v1":
            return _send(404, {"error": {"code": 404, "message": "Not Found"}})
        if failure is not None:
            error = {
                "code": failure.status,
                "message": failure.message,
                "errors": [{"message": failure.message, "domain": "global", "reason": failure.error}],
                "status": _STATUS.get(failure.status, "UNKNOWN"),
            }
            return _send(failure.status, {"error": error})
        if not params.get("key") or not params.get("cx") or not params.get("q"):
            return _send(400, {"error": {"code": 400, "message": "Missing key, cx or q", "errors": []}})
        try:
            num = int(params.get("num", "10"))
        except ValueError:
            num = 10
        if not 1 <= num <= 10:
            invalid = {"code": 400, "message": "Invalid value for num", "errors": [{"reason": "invalid"}]}
            return _send(400, {"error": invalid})
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
        return _send(200, body)


def _send(status: int, body: dict[str, Any]) -> web.Response:
    response = web.json_response(body, status=status)
    response.charset = "UTF-8"
    return response
