"""Query embeddings through the Redis cache, for every search path (memories and items).

A query text is embedded by the local model; the vector is cached in Redis by model and text,
best effort (a Redis failure only costs the embedding).
"""

from __future__ import annotations

from concurrent.futures import Future

from somafractalmemory.core.embedding import Embedder
from somafractalmemory.core.embedding_stop import EmbeddingStopped, StopSignal
from somafractalmemory.stores.redis import MemoryCache


class QueryEmbedder:
    """The embedding of a search's query text, from the cache when it has it."""

    def __init__(self, embedder: Embedder, cache: MemoryCache | None) -> None:
        self.embedder = embedder
        self.cache = cache

    def vector(self, text: str) -> list[float]:
        """The query's embedding: from the Redis cache when it has it (best effort, like every
        Redis use), else computed, and cached once the search has answered.

        The lookup runs on a thread of its own while the query is embedded, not before: a
        miss then costs the search nothing (a Redis round trip is 0.1-0.6 ms, the embedding
        several ms), and a hit stops the embedding and is used. A lookup that has not answered
        when the embedding is done is not waited for.
        """
        cache = self.cache
        if cache is None:
            return self.embedder.embed_one(text)
        model = self.embedder.model_name
        lookup = cache.lookup_query_vector(model, text)  # None: too many lookups waiting
        stop = StopSignal()
        if lookup is not None:
            lookup.add_done_callback(lambda done: stop.set() if self._usable(done) else None)
        try:
            vector = self.embedder.embed_one(text, stop)
        except EmbeddingStopped:
            cached = lookup.result() if lookup is not None else None
            assert cached is not None  # only a usable lookup stops the embedding
            return cached
        if lookup is None or not self._usable(lookup):
            cache.put_query_vector_later(model, text, vector)
        return vector

    def _usable(self, lookup: Future[list[float] | None]) -> bool:
        """Whether a query-vector lookup has answered with a vector of the model's size."""
        if not lookup.done():
            return False
        cached = lookup.result()
        return cached is not None and len(cached) == self.embedder.dimension
