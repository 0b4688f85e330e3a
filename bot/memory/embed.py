"""Embeddings through the OpenAI(-compatible) embeddings API, with what each call costs.

Texts are cut to the model's input limit first. Recent embeddings are kept in a small LRU cache:
the engine asks for memories about the same task cycle after cycle, and a cached query costs
nothing.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import openai
from openai import AsyncOpenAI

from bot.llm import tokens
from bot.llm.client import ReplyTooLarge, azure_deployment, call_failure, make_openai, usage_of
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
            response = await self.client.embeddings.create(model=self.deployment, input=[text])
        except openai.OpenAIError as exc:
            message, _ = call_failure(exc, "embedding service", self.settings.llm_timeout)
            raise MemoryUnavailable(message) from exc
        except (ReplyTooLarge, ValueError) as exc:  # the bounded transport's, or a body not JSON
            raise MemoryUnavailable(f"the embedding service's reply could not be read: {exc}") from exc
        usage = usage_of(response, self.model, self.settings)
        data = getattr(response, "data", None) or []
        if not data:
            raise MemoryUnavailable("the embedding service returned no vector", usage)
        vector = np.asarray(data[0].embedding, dtype=np.float32)
        norm = float(np.linalg.norm(vector)) if vector.ndim == 1 and vector.size else 0.0
        if not np.isfinite(norm) or norm == 0.0:
            raise MemoryUnavailable("the embedding service returned an unusable vector", usage)
        vector = vector / norm
        vector.setflags(write=False)
        self._cache[text] = vector
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return vector, usage
