"""Helpers shared by the test packages (no fixtures here: see ``tests/conftest.py``)."""
