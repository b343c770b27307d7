"""The FastAPI application: ``create_app()`` and the lifespan that owns every client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from starlette.concurrency import run_in_threadpool

from somafractalmemory import __version__
from somafractalmemory.api.docs.routes import install_docs
from somafractalmemory.api.errors import install_error_handlers
from somafractalmemory.api.middleware import UNMETERED, BodyLimitMiddleware, MetricsMiddleware
from somafractalmemory.api.routes import (
    context,
    conversations,
    graph,
    history,
    items,
    memories,
    ops,
    portability,
    scopes,
    webhooks,
)
from somafractalmemory.api.ui.routes import install_ui
from somafractalmemory.bootstrap import validate_infrastructure
from somafractalmemory.core.maintenance import Maintainer
from somafractalmemory.core.webhook_dispatch import WebhookDispatcher
from somafractalmemory.observability.tracing import configure_tracing, tracing_active
from somafractalmemory.settings import Settings, TracingSettings, get_settings
from somafractalmemory.stack import Stack, create_stack

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app. Its lifespan builds the stack from ``settings`` (or the environment),
    validates it, and refuses to start when a required part is missing."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Stack]]:
        resolved = settings or get_settings()
        stack = await run_in_threadpool(create_stack, resolved)
        try:
            await run_in_threadpool(validate_infrastructure, stack)
        except Exception:
            stack.close()
            raise
        # Key lookups are cached while PostgreSQL reports every key change to this process.
        stack.keys.listen(
            resolved.postgres_libpq_dsn, resolved.store_timeout, resolved.key_cache_seconds
        )
        maintainer = Maintainer(
            stack.memories,
            stack.items,
            resolved.outbox_interval_seconds,
            resolved.items_sweep_interval_seconds,
            resolved.outbox_grace_seconds,
            stack.history,
            resolved.history_retention_days,
        )
        maintainer.start()
        # Its own thread: a dead endpoint must not hold up the outbox (nor anything else).
        dispatcher = WebhookDispatcher(stack.webhooks)
        dispatcher.start()
        logger.info("SomaFractalMemory %s serving", __version__)
        try:
            # Lifespan state: each server running the app (uvicorn, a test client) gets the
            # stack of its own lifespan in its requests' ``request.state``, never another's.
            yield {"stack": stack}
        finally:
            dispatcher.stop()
            maintainer.stop()
            stack.close()

    app = FastAPI(
        title="SomaFractalMemory",
        version=__version__,
        description="Long-term memory for AI agents: store and recall memories by meaning, "
        "by coordinate and through links. Every endpoint but the health probes and metrics "
        "needs `Authorization: Bearer <key>`.",
        lifespan=lifespan,
        # /docs and /redoc are served by install_docs, from the app (FastAPI's load a CDN).
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(history.router)
    app.include_router(memories.router)
    app.include_router(graph.router)
    app.include_router(ops.router)
    app.include_router(portability.router)
    app.include_router(items.router)
    app.include_router(context.router)
    app.include_router(conversations.router)
    app.include_router(scopes.router)
    app.include_router(webhooks.router)
    webhooks.document_deliveries(app)
    install_ui(app)
    install_docs(app)
    # Requests are traced only when traces go somewhere: the instrumentation's middleware
    # costs about 1.5 ms a request on two cores even when its spans are dropped.
    configure_tracing(settings or TracingSettings())
    if tracing_active():
        FastAPIInstrumentor.instrument_app(app, excluded_urls=",".join(sorted(UNMETERED)))
    app.add_middleware(
        BodyLimitMiddleware,
        limit=lambda: (settings or get_settings()).max_body_bytes,
    )
    app.add_middleware(MetricsMiddleware)
    return app
