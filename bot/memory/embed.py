"""Embeddings through the OpenAI(-compatible) embeddings API, with what each call costs.

Texts are cut to the model's input limit first. Recent embeddings are kept in a small LRU cache:
the engine asks for memories about the same task cycle after cycle, and a cached query costs
nothing.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import httpx2
import numpy as np
import openai
from openai import AsyncOpenAI
from pydantic_core import from_json

from bot.llm import tokens
from bot.llm.client import ReplyTooLarge, azure_deployment, call_failure, dumps, make_openai, usage_of
from bot.memory.errors import MemoryUnavailable
from bot.models import Usage
from bot.settings import Settings

MAX_EMBED_TOKENS = 8000  # OpenAI's embedding models take 8192 tokens
CACHE_SIZE = 512


class Embedder:
    def __init__(self, settings: Settings, client: AsyncOpenAI | None = None) -> None:
        self.settings = settings
        self.model = settings.embedding_model  # what a call is priced as
        # what the request names: on Azure the model's deployment (AZURE_MODEL_MAP, else its name)
        self.deployment = azure_deployment(settings, self.model, chat=False)
        self._client = client
        self._owns_client = client is None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        # the request's path and the start of its body, made once (on Azure the path names the
        # deployment: the client has none of its own)
        where = quote(self.deployment, safe="")
        self._path = f"/deployments/{where}/embeddings" if settings.use_azure else "/embeddings"
        self._head = b'{"model":%s,"encoding_format":"base64","input":' % dumps(self.deployment)

    @property
    def client(self) -> AsyncOpenAI:
        if self._client is None:
            self._client = make_openai(self.settings)
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            await client.close()

    async def embed(self, text: str) -> tuple[np.ndarray, Usage]:
        """A unit float32 vector for `text` and the usage of the call (zero when cached).
        Raises MemoryUnavailable when the service fails (after the client's retries)."""
        text = tokens.truncate(text, MAX_EMBED_TOKENS)
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached, Usage()
        try:
            # the client's own `post` (its retries, errors, auth and timeouts), with the body made
            # here once and the answer read as bytes: `embeddings.create` would transform the
            # request and build response models around a vector that numpy reads directly
            body = b"".join((self._head, dumps([text]), b"}"))
            response = await self.client.post(self._path, content=body, cast_to=httpx2.Response)
            data = from_json(response.content, allow_inf_nan=False)
        except openai.OpenAIError as exc:
            message, _ = call_failure(exc, "embedding service", self.settings.llm_timeout)
            raise MemoryUnavailable(message) from exc
        except (ReplyTooLarge, ValueError) as exc:  # the bounded transport's, or a body not JSON
            raise MemoryUnavailable(f"the embedding service's reply could not be read: {exc}") from exc
        usage = usage_of(SimpleNamespace(usage=_usage_fields(data)), self.model, self.settings)
        vector = _first_vector(data)
        if vector is None:
            raise MemoryUnavailable("the embedding service returned no vector", usage)
        norm = float(np.linalg.norm(vector)) if vector.ndim == 1 and vector.size else 0.0
        if not np.isfinite(norm) or norm == 0.0:
            raise MemoryUnavailable("the embedding service returned an unusable vector", usage)
        vector = vector / norm
        vector.setflags(write=False)
        self._cache[text] = vector
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return vector, usage


def _usage_fields(data: Any) -> SimpleNamespace:
    usage = data.get("usage") if isinstance(data, dict) else None
    prompt = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    return SimpleNamespace(prompt_tokens=prompt if isinstance(prompt, int) and prompt >= 0 else 0)


def _first_vector(data: Any) -> np.ndarray | None:
    """The first embedding of a reply: base64 little-endian float32 (asked for), or a list of
    numbers (what a server that ignores `encoding_format` sends)."""
    items = data.get("data") if isinstance(data, dict) else None
    first = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else None
    embedding = first.get("embedding") if first is not None else None
    if isinstance(embedding, str):
        try:
            raw = base64.b64decode(embedding, validate=True)
        except (binascii.Error, ValueError):
            return None
        if not raw or len(raw) % 4:
            return None
        return np.frombuffer(raw, dtype="<f4").astype(np.float32)
    if isinstance(embedding, list) and embedding:
        try:
            return np.asarray(embedding, dtype=np.float32)
        except (TypeError, ValueError):
            return None
    return None
