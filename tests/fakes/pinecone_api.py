"""A fake Pinecone index data plane on 127.0.0.1, for tests: what the `pinecone` client's
`AsyncIndex` / `Index` send to an index's host.

Routes (JSON, camelCase like Pinecone's REST API; every one needs the ``Api-Key`` header, else
401):

- ``POST /vectors/upsert``   ``{"vectors": [{"id", "values", "metadata"}], "namespace"}`` ->
  ``{"upsertedCount": n}`` (an id already there is replaced)
- ``POST /query``            ``{"vector", "topK", "namespace", "includeMetadata", "includeValues"}`` ->
  ``{"matches": [{"id", "score", "metadata"?, "values"}], "namespace", "usage": {"readUnits"}}``,
  cosine similarity, best first
- ``POST /vectors/delete``   ``{"namespace", "ids"? | "deleteAll"?}`` -> ``{}``
- ``POST|GET /describe_index_stats`` -> ``{"namespaces": {ns: {"vectorCount"}}, "dimension",
  "indexFullness", "totalVectorCount", "metric", "vectorType"}``

A vector whose length is not the index's ``dimension`` answers 400, as Pinecone does. Scripted
failures (``fail_next``, route names ``upsert``, ``query``, ``delete``, ``describe_index_stats``)
answer Pinecone's error shape; 429 and 5xx carry ``Retry-After`` (``retry_after``, default 0) so the
client's own retries stay quick::

    with FakePinecone(api_key="pc-key", dimension=64) as index:
        settings = make_settings(..., pinecone_index_host=index.base_url, pinecone_api_key="pc-key")
        index.fail_next("query", 503, times=4)
        index.namespaces()
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from aiohttp import web

from tests.fakes.server import HOST, Failure, Failures, ThreadServer

_GRPC_CODE = {400: 3, 401: 16, 403: 7, 404: 5, 429: 8, 500: 13, 503: 14}


@dataclass
class Stored:
    values: np.ndarray  # unit vector (zero vector kept as is)
    raw: list[float]
    metadata: dict[str, Any] | None


@dataclass(frozen=True)
class Call:
    route: str
    namespace: str
    api_key: str


class FakePinecone(ThreadServer):
    def __init__(
        self, *, api_key: str, dimension: int = 64, metric: str = "cosine", host: str = HOST, port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.dimension = dimension
        self.metric = metric
        self.data: dict[str, dict[str, Stored]] = {}  # namespace -> id -> vector
        self.calls: list[Call] = []
        self.delay = 0.0
        self.failures = Failures()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ for tests
    def reset(self, dimension: int | None = None) -> None:
        with self._lock:
            self.data.clear()
            self.calls.clear()
        self.failures.clear()
        self.delay = 0.0
        if dimension is not None:
            self.dimension = dimension

    def namespaces(self) -> dict[str, int]:
        with self._lock:
            return {ns: len(vectors) for ns, vectors in self.data.items() if vectors}

    def texts(self, namespace: str) -> list[str]:
        with self._lock:
            return [str((v.metadata or {}).get("text")) for v in self.data.get(namespace, {}).values()]

    def fail_next(
        self,
        route: str,
        status: int,
        message: str | None = None,
        *,
        times: int = 1,
        retry_after: float | None = None,
    ) -> Failure:
        return self.failures.add(
            Failure(
                route,
                status,
                error=_GRPC_CODE.get(status, 2),
                message=message or f"fake Pinecone error {status}",
                times=times,
                retry_after=retry_after,
            )
        )

    # ------------------------------------------------------------------ serving
    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/vectors/upsert", self._route("upsert", self._upsert))
        app.router.add_post("/query", self._route("query", self._query))
        app.router.add_post("/vectors/delete", self._route("delete", self._delete))
        app.router.add_post("/describe_index_stats", self._route("describe_index_stats", self._stats))
        app.router.add_get("/describe_index_stats", self._route("describe_index_stats", self._stats))

    def _route(self, name: str, handler: Any) -> Any:
        async def serve(request: web.Request) -> web.Response:
            key = request.headers.get("Api-Key", "")
            body: dict[str, Any] = {}
            if request.method == "POST" and request.can_read_body:
                try:
                    parsed = await request.json()
                except ValueError:
                    return _error(400, "The request body is not JSON.")
                body = parsed if isinstance(parsed, dict) else {}
            with self._lock:
                self.calls.append(Call(name, str(body.get("namespace") or ""), key))
            if key != self.api_key:
                return _error(401, "Invalid API Key")
            await self.sleep(self.delay)
            if (failure := self.failures.take(name, body, request.method)) is not None:
                headers = {}
                if failure.status == 429 or failure.status >= 500:
                    headers["Retry-After"] = f"{failure.retry_after or 0:g}"
                return _error(failure.status, failure.message, headers)
            with self._lock:
                return handler(body)

        return serve

    def _vector(self, values: Any) -> np.ndarray | web.Response:
        if not isinstance(values, list) or not all(isinstance(v, int | float) for v in values):
            return _error(400, "Vector values must be a list of numbers.")
        if len(values) != self.dimension:
            return _error(
                400,
                f"Vector dimension {len(values)} does not match the dimension of the index {self.dimension}",
            )
        vector = np.asarray(values, dtype=np.float64)
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector

    def _upsert(self, body: dict[str, Any]) -> web.Response:
        namespace = str(body.get("namespace") or "")
        rows = body.get("vectors")
        if not isinstance(rows, list) or not rows:
            return _error(400, "No vectors provided.")
        staged: dict[str, Stored] = {}
        for row in rows:
            if not isinstance(row, dict) or not isinstance(row.get("id"), str) or not row["id"]:
                return _error(400, "Each vector needs a non-empty string id.")
            vector = self._vector(row.get("values"))
            if isinstance(vector, web.Response):
                return vector
            metadata = row.get("metadata")
            if metadata is not None and not isinstance(metadata, dict):
                return _error(400, "Metadata must be a JSON object.")
            staged[row["id"]] = Stored(vector, list(row["values"]), metadata)
        self.data.setdefault(namespace, {}).update(staged)
        return web.json_response({"upsertedCount": len(staged)})

    def _query(self, body: dict[str, Any]) -> web.Response:
        namespace = str(body.get("namespace") or "")
        top_k = body.get("topK")
        if not isinstance(top_k, int) or not 1 <= top_k <= 10_000:
            return _error(400, "topK must be between 1 and 10000.")
        vector = self._vector(body.get("vector"))
        if isinstance(vector, web.Response):
            return vector
        stored = list(self.data.get(namespace, {}).items())
        scored = sorted(((float(v.values @ vector), vid, v) for vid, v in stored), key=lambda t: -t[0])
        matches = []
        for score, vid, v in scored[:top_k]:
            match: dict[str, Any] = {
                "id": vid,
                "score": score,
                "values": v.raw if body.get("includeValues") else [],
            }
            if body.get("includeMetadata") and v.metadata is not None:
                match["metadata"] = v.metadata
            matches.append(match)
        return web.json_response({"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}})

    def _delete(self, body: dict[str, Any]) -> web.Response:
        namespace = str(body.get("namespace") or "")
        if body.get("deleteAll"):
            self.data.pop(namespace, None)
        elif isinstance(body.get("ids"), list):
            for vid in body["ids"]:
                self.data.get(namespace, {}).pop(str(vid), None)
        else:
            return _error(400, "Delete needs ids, deleteAll or a filter.")
        return web.json_response({})

    def _stats(self, body: dict[str, Any]) -> web.Response:
        namespaces = {ns: {"vectorCount": len(v)} for ns, v in self.data.items() if v}
        return web.json_response(
            {
                "namespaces": namespaces,
                "dimension": self.dimension,
                "indexFullness": 0.0,
                "totalVectorCount": sum(n["vectorCount"] for n in namespaces.values()),
                "metric": self.metric,
                "vectorType": "dense",
            }
        )


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"code": _GRPC_CODE.get(status, 2), "message": message, "details": []}
    return web.json_response(body, status=status, headers=headers)
