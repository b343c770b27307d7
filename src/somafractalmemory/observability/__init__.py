"""Metrics (one Prometheus registry) and traces (OpenTelemetry)."""
