"""A request's trace shows its PostgreSQL and Milvus calls.

The SDK's in-memory exporter is attached to the process's tracer provider (the one
``configure_tracing`` installs); a store and a search must each produce ``postgres.*`` and
``milvus.*`` spans in the trace of the request's server span, below it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from somafractalmemory.api.app import create_app
from somafractalmemory.observability.tracing import add_span_processor, configure_tracing
from somafractalmemory.settings import Settings
from testkit.stores import own_connection, with_updates

Headers = dict[str, str]


@pytest.fixture
def exporter(test_settings: Settings) -> Iterator[InMemorySpanExporter]:
    configure_tracing(test_settings)
    found = InMemorySpanExporter()
    processor = SimpleSpanProcessor(found)
    add_span_processor(processor)
    yield found
    # The provider keeps the processor for the rest of the session: stop only its exporter,
    # which then drops spans quietly (a shut processor would log a warning for every span).
    found.shutdown()


@pytest.fixture
def client(test_settings: Settings) -> Iterator[TestClient]:
    settings = with_updates(test_settings, milvus_uri=own_connection(test_settings.milvus_uri))
    with TestClient(create_app(settings), raise_server_exceptions=False) as test_client:
        yield test_client


def request_trace(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    """The spans below the one server span called ``name``."""
    servers = [s for s in spans if s.name == name and s.kind == SpanKind.SERVER]
    assert len(servers) == 1, sorted({s.name for s in spans})
    server = servers[0]
    assert server.context is not None
    by_id = {s.context.span_id: s for s in spans if s.context is not None}

    def below_server(span: ReadableSpan) -> bool:
        parent = span.parent
        while parent is not None:
            if parent.span_id == server.context.span_id:  # type: ignore[union-attr]
                return True
            ancestor = by_id.get(parent.span_id)
            parent = ancestor.parent if ancestor is not None else None
        return False

    same_trace = [
        s for s in spans if s.context is not None and s.context.trace_id == server.context.trace_id
    ]
    return [s for s in same_trace if below_server(s)]


def store_spans(trace: list[ReadableSpan], store: str) -> list[str]:
    return [s.name for s in trace if s.name.startswith(f"{store}.")]


def test_a_store_traces_its_postgres_and_milvus_calls(
    exporter: InMemorySpanExporter, client: TestClient, auth: Headers
) -> None:
    exporter.clear()
    response = client.post(
        "/memories",
        json={"coord": "9,9,9", "payload": {"text": "a kite caught in the old oak"}},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    trace = request_trace(exporter.get_finished_spans(), "POST /memories")
    assert store_spans(trace, "postgres"), [s.name for s in trace]
    assert store_spans(trace, "milvus"), [s.name for s in trace]
    for span in trace:
        if span.name.startswith(("postgres.", "milvus.")):
            assert span.kind == SpanKind.CLIENT
            assert span.attributes is not None
            assert span.attributes["db.system"] == span.name.split(".")[0]


def test_a_search_traces_its_postgres_and_milvus_calls(
    exporter: InMemorySpanExporter, client: TestClient, auth: Headers
) -> None:
    stored = client.post(
        "/memories",
        json={"coord": "8,8,8", "payload": {"text": "snow on the harbour cranes"}},
        headers=auth,
    )
    assert stored.status_code == 201, stored.text
    exporter.clear()
    response = client.post(
        "/memories/search", json={"query": "cranes in the snow", "top_k": 3}, headers=auth
    )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["coord"] == "8,8,8"
    trace = request_trace(exporter.get_finished_spans(), "POST /memories/search")
    assert "milvus.search" in store_spans(trace, "milvus"), [s.name for s in trace]
    assert store_spans(trace, "postgres"), [s.name for s in trace]
