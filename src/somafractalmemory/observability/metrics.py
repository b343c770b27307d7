"""Every Prometheus metric of the service, on the one registry ``/metrics`` serves."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

POSTGRES_UP = Gauge(
    "api_postgres_up", "1 when PostgreSQL answered the last call", registry=REGISTRY
)
MILVUS_UP = Gauge("api_milvus_up", "1 when Milvus answered the last call", registry=REGISTRY)
REDIS_UP = Gauge("api_redis_up", "1 when Redis answered the last call", registry=REGISTRY)

REQUESTS = Counter("api_requests", "HTTP requests received", ["method", "route"], registry=REGISTRY)
RESPONSES = Counter(
    "api_responses", "HTTP responses sent", ["method", "route", "status"], registry=REGISTRY
)
REQUEST_DURATION = Histogram(
    "api_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
DELETE_SUCCESS = Counter(
    "api_delete_success", "Memories deleted from every store", registry=REGISTRY
)
CACHE_ERRORS = Counter(
    "api_cache_errors", "Redis cache calls that failed (the request went on)", registry=REGISTRY
)
CACHE_HITS = Counter("api_cache_hits", "Reads answered from the Redis cache", registry=REGISTRY)
CACHE_MISSES = Counter("api_cache_misses", "Reads that missed the Redis cache", registry=REGISTRY)
OUTBOX_DRAINED = Counter(
    "api_outbox_drained",
    "Outbox entries whose Milvus side the drainer brought in line with PostgreSQL",
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "api_outbox_pending",
    "Outbox entries waiting (writes whose Milvus side is not confirmed)",
    registry=REGISTRY,
)
RECONCILE_DRIFT = Gauge(
    "api_reconcile_drift",
    "Memories missing from Milvus plus Milvus orphans, found by the last reconcile run",
    registry=REGISTRY,
)

WEBHOOK_DELIVERIES = Counter(
    "api_webhook_deliveries",
    "Webhook deliveries (one POST each) by outcome: delivered (2xx) or failed",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOK_CHANGES = Counter(
    "api_webhook_changes_delivered",
    "Changes delivered to webhooks (acknowledged with a 2xx)",
    registry=REGISTRY,
)

STORE_GAUGES = {"postgres": POSTGRES_UP, "milvus": MILVUS_UP, "redis": REDIS_UP}


def mark_store(store: str, up: bool) -> None:
    """Record what the last call to ``store`` showed."""
    STORE_GAUGES[store].set(1 if up else 0)
