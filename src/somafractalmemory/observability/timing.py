"""Per-stage timing of a request (embed, milvus, postgres, fuse).

Each stage's time feeds the ``api_stage_duration_seconds`` histogram, and, while a request
collects them with :func:`collect_timings`, its ``Server-Timing`` header.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import Histogram

from somafractalmemory.observability.metrics import REGISTRY

STAGE_DURATION = Histogram(
    "api_stage_duration_seconds",
    "Time spent in each stage of serving a request",
    ["stage"],
    registry=REGISTRY,
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
STAGES = ("embed", "milvus", "postgres", "fuse")

_current: ContextVar[dict[str, float] | None] = ContextVar("sfm_stage_timings", default=None)


def record(stage: str, seconds: float) -> None:
    """Add ``seconds`` to ``stage`` for the histogram and the current request, if any."""
    STAGE_DURATION.labels(stage=stage).observe(seconds)
    timings = _current.get()
    if timings is not None:
        timings[stage] = timings.get(stage, 0.0) + seconds


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time a block as part of stage ``name``."""
    started = time.perf_counter()
    try:
        yield
    finally:
        record(name, time.perf_counter() - started)


@contextmanager
def collect_timings() -> Iterator[dict[str, float]]:
    """Collect the stage times of the calls made inside the block (same thread)."""
    timings: dict[str, float] = {}
    token = _current.set(timings)
    try:
        yield timings
    finally:
        _current.reset(token)


def server_timing_header(timings: dict[str, float]) -> str:
    """The ``Server-Timing`` header value, durations in milliseconds."""
    return ", ".join(f"{name};dur={timings[name] * 1000:.2f}" for name in STAGES if name in timings)
