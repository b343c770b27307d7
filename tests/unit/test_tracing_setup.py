"""Requests are instrumented only when their traces go somewhere.

Each case builds the app in a fresh interpreter: a tracer provider, once installed, stays for
the life of a process (the test session installs one for tests/faults/test_tracing.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

BUILD_APP = (
    "from somafractalmemory.api.app import create_app; "
    "app = create_app(); "
    "print(getattr(app, '_is_instrumented_by_opentelemetry', False))"
)


def instrumented(**env: str) -> bool:
    """Whether ``create_app()`` (settings from the environment) instruments the app."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", BUILD_APP],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1] == "True"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_TRACES_EXPORTER": "none"}, False),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
    ],
)
def test_requests_are_traced_only_with_an_exporter(env: dict[str, str], expected: bool) -> None:
    assert instrumented(**env) is expected
