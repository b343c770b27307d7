"""The ASGI entry point: ``uvicorn somafractalmemory.http_api:app``."""

from somafractalmemory.api.app import create_app

app = create_app()
