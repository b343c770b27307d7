"""Operations: statistics, health, readiness, liveness and metrics.

``/healthz`` and ``/readyz`` run the same checks as start-up (:mod:`somafractalmemory.health`),
and differ only in which failed parts make them answer 503."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from somafractalmemory.api.deps import StackDep, TenantDep
from somafractalmemory.api.strict import StrictQueryRoute
from somafractalmemory.health import check_parts
from somafractalmemory.observability.metrics import REGISTRY
from somafractalmemory.schemas import ErrorResponse, HealthResponse, StatsResponse
from somafractalmemory.stack import Stack

router = APIRouter(tags=["operations"], route_class=StrictQueryRoute)


@router.get("/stats", responses={401: {"model": ErrorResponse}, 503: {"model": ErrorResponse}})
def stats(tenant: TenantDep, stack: StackDep) -> StatsResponse:
    """Counts for the caller's tenant; 503 when Milvus cannot count its vectors."""
    found = stack.memories.stats(tenant)
    items, item_vectors = stack.items.stats(tenant)
    return StatsResponse(**asdict(found), items=items, item_vectors=item_vectors)


def _health(stack: Stack, parts: tuple[str, ...], required: tuple[str, ...]) -> JSONResponse:
    errors = {part: exc.detail for part, exc in check_parts(stack).items()}
    failed_required = [p for p in required if p in errors and p in parts]
    body = HealthResponse(
        status="down" if failed_required else ("degraded" if errors else "ok"),
        postgres="down" if "postgres" in errors else "up",
        milvus="down" if "milvus" in errors else "up",
        redis="down" if "redis" in errors else "up",
        errors=errors,
    )
    return JSONResponse(status_code=503 if failed_required else 200, content=body.model_dump())


def _required_parts(stack: Stack) -> tuple[str, ...]:
    s = stack.settings
    return tuple(
        part
        for part, needed in (
            ("postgres", s.require_postgres),
            ("milvus", s.require_milvus),
            ("redis", s.require_redis),
        )
        if needed
    )


@router.get("/healthz", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def healthz(stack: StackDep) -> JSONResponse:
    """200 when every required part answers, else 503 naming each failed part and why."""
    return _health(stack, ("postgres", "milvus", "redis"), _required_parts(stack))


@router.get("/readyz", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
def readyz(stack: StackDep) -> JSONResponse:
    """200 when requests can be served: PostgreSQL and Milvus up (Redis does not count)."""
    return _health(stack, ("postgres", "milvus"), ("postgres", "milvus"))


@router.get("/livez")
def livez() -> dict[str, str]:
    """200 while the process runs; touches no store."""
    return {"status": "alive"}


@router.get("/metrics", response_class=Response)
def metrics() -> Response:
    """Prometheus metrics."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
