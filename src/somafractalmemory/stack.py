"""The stack: every client the service uses, built from the settings and closed together.

There is exactly one backend per role and nothing to fall back on: the factory builds the
PostgreSQL, Milvus and Redis adapters named by the settings, checks that it built what it
meant to, and leaves connecting-or-failing to :mod:`somafractalmemory.bootstrap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from somafractalmemory.core.context_sources import ContextBuilder, MemoryCandidates
from somafractalmemory.core.embedding import Embedder, create_embedder
from somafractalmemory.core.history import History
from somafractalmemory.core.items import ItemService
from somafractalmemory.core.keys import KeyService
from somafractalmemory.core.messages import MessageService
from somafractalmemory.core.service import MemoryService
from somafractalmemory.core.tokens import create_tokenizers
from somafractalmemory.core.webhooks import WebhookService
from somafractalmemory.settings import Settings
from somafractalmemory.stores.items_milvus import ItemVectorIndex
from somafractalmemory.stores.milvus import MilvusStore
from somafractalmemory.stores.postgres import PostgresStore, create_postgres_engine
from somafractalmemory.stores.rate_limit import RateLimiter
from somafractalmemory.stores.redis import MemoryCache, create_redis_client


@dataclass
class Stack:
    """The adapters and services of one process."""

    settings: Settings
    postgres: PostgresStore
    milvus: MilvusStore
    cache: MemoryCache
    embedder: Embedder
    memories: MemoryService
    keys: KeyService
    rate_limiter: RateLimiter
    items: ItemService
    messages: MessageService
    history: History
    webhooks: WebhookService
    context: ContextBuilder

    def close(self) -> None:
        """Close the clients in the reverse order of creation."""
        self.keys.close()
        self.rate_limiter.close()
        self.cache.close()
        self.milvus.close()
        self.postgres.engine.dispose()


def create_postgres_store(settings: Settings) -> PostgresStore:
    """The PostgreSQL adapter (connects lazily, on first use)."""
    return PostgresStore(create_postgres_engine(settings), settings.postgres_address)


def create_milvus_store(settings: Settings) -> MilvusStore:
    """The Milvus adapter (connects on first use)."""
    return MilvusStore(settings)


def create_cache(settings: Settings) -> MemoryCache:
    """The Redis cache adapter (connects lazily, on first use)."""
    client = create_redis_client(settings)
    if not isinstance(client, redis.Redis):  # pragma: no cover - guards a library change
        raise TypeError(f"expected a redis.Redis client, built {type(client).__name__}")
    return MemoryCache(client, settings)


def create_stack(settings: Settings, milvus: MilvusStore | None = None) -> Stack:
    """Build every client from the settings; the embedding model and the tokenizers
    ``POST /context`` counts with are loaded here, once."""
    postgres = create_postgres_store(settings)
    milvus = milvus or create_milvus_store(settings)
    cache = create_cache(settings)
    embedder = create_embedder(settings)
    # One backend per role, nothing else: refuse anything but the real adapters.
    for built, kind in (
        (postgres, PostgresStore),
        (milvus, MilvusStore),
        (cache, MemoryCache),
        (embedder, Embedder),
    ):
        if type(built) is not kind:
            raise TypeError(f"expected {kind.__name__}, got {type(built).__name__}")
    memories = MemoryService(postgres, milvus, cache, embedder)
    items = ItemService(
        postgres, ItemVectorIndex(milvus), embedder, memories.searcher.queries, cache
    )
    return Stack(
        settings=settings,
        postgres=postgres,
        milvus=milvus,
        cache=cache,
        embedder=embedder,
        memories=memories,
        keys=KeyService(postgres),
        rate_limiter=RateLimiter(cache.client, settings),
        items=items,
        messages=MessageService(items),
        history=History(postgres),
        webhooks=WebhookService(postgres, settings),
        # The candidate sources of POST /context, one per kind of record it may include.
        context=ContextBuilder(
            [MemoryCandidates(memories)],
            create_tokenizers(settings.embedding_model, settings.context_tokenizers),
        ),
    )
