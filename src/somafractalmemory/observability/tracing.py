"""OpenTelemetry tracing: one tracer provider per process, set up from the settings.

``OTEL_TRACES_EXPORTER`` chooses the exporter: ``otlp`` (to ``OTEL_EXPORTER_OTLP_ENDPOINT``),
``console`` for development, ``none`` (the default). Store adapters wrap each call in a span
with :func:`store_span`, so a request's trace shows its PostgreSQL and Milvus calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from somafractalmemory.settings import TracingSettings

TRACER_NAME = "somafractalmemory"
_provider: TracerProvider | None = None
_service_name = "somafractalmemory"


def tracer() -> trace.Tracer:
    """The package's tracer (a no-op until :func:`configure_tracing` installs a provider)."""
    return trace.get_tracer(TRACER_NAME)


def configure_tracing(settings: TracingSettings) -> TracerProvider | None:
    """Install the process's tracer provider once, with the exporter the settings name.

    With no exporter (``none``) nothing is installed: spans stay the API's non-recording
    ones, which cost next to nothing, instead of SDK spans built only to be dropped.
    """
    global _service_name
    _service_name = settings.otel_service_name
    exporter_name = settings.traces_exporter
    if _provider is not None or exporter_name == "none":
        return _provider
    provider = _install_provider()
    if exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.otel_exporter_otlp_endpoint or None
        if endpoint and not endpoint.rstrip("/").endswith("/v1/traces"):
            endpoint = endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    elif exporter_name == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    return provider


def _install_provider() -> TracerProvider:
    global _provider
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": _service_name}))
        trace.set_tracer_provider(_provider)
    return _provider


def tracing_active() -> bool:
    """Whether this process has a real tracer provider (ours, or one the embedding
    application set): only then is it worth tracing requests at all."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def add_span_processor(processor: SpanProcessor) -> None:
    """Attach another processor, installing the SDK provider if no exporter did (tests use
    the SDK's in-memory exporter this way)."""
    _install_provider().add_span_processor(processor)


@contextmanager
def store_span(store: str, operation: str) -> Iterator[trace.Span]:
    """A span around one call to a store, named ``<store>.<operation>``; with no tracer
    provider, the invalid span and nothing else (a search makes several store calls, and
    even a non-recording span costs a context switch in and out)."""
    if not tracing_active():
        yield trace.INVALID_SPAN
        return
    with tracer().start_as_current_span(
        f"{store}.{operation}",
        kind=trace.SpanKind.CLIENT,
        attributes={"db.system": store, "db.operation": operation},
    ) as span:
        yield span
