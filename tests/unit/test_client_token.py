"""The Python clients carry the ``SFM-Consistency-Token`` of an answer to later requests,
as the TypeScript client does: against a small real HTTP server that sends tokens (this
server version sends none yet), sync and async."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from somafractalmemory.client import AsyncSFMClient, SFMClient
from somafractalmemory.client._config import CONSISTENCY_HEADER, newer_token

STATS = {"memories": 0, "by_type": {}, "links": 0, "vectors": 0}
# What the server answers, request after request (None: no header).
TOKENS = ["41", "45", "43", None, "opaque-token", "7"]
# What the client sends back on each request: the newest number, then the last opaque one.
SENT = [None, "41", "45", "45", "45", "opaque-token", "7"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def token_server() -> Iterator[tuple[str, list[str | None]]]:
    """A local HTTP server answering ``GET /stats`` with the next token of TOKENS; records
    the token each request carried."""
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.headers.get(CONSISTENCY_HEADER))
            token = TOKENS[len(seen) - 1] if len(seen) <= len(TOKENS) else None
            body = json.dumps(STATS).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if token is not None:
                self.send_header(CONSISTENCY_HEADER, token)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_newer_token() -> None:
    assert newer_token(None, "5") == "5"
    assert newer_token("10", "9") == "10"
    assert newer_token("9", "10") == "10"
    assert newer_token("10", "abc") == "abc"
    assert newer_token("abc", "3") == "3"
    assert newer_token("١٢", "3") == "3"  # not ASCII digits: opaque


def test_sync_client_sends_back_the_newest_token(
    token_server: tuple[str, list[str | None]],
) -> None:
    url, seen = token_server
    with SFMClient(url, "key") as sfm:
        assert sfm.consistency_token is None
        for _ in SENT:
            sfm.stats()
        assert seen == SENT
        assert sfm.consistency_token == "7"
    with SFMClient(url, "key", consistency_token="99") as other:
        other.stats()
    assert seen[-1] == "99"


@pytest.mark.anyio
async def test_async_client_sends_back_the_newest_token(
    token_server: tuple[str, list[str | None]],
) -> None:
    url, seen = token_server
    async with AsyncSFMClient(url, "key") as sfm:
        for _ in SENT:
            await sfm.stats()
        assert seen == SENT
        sfm.consistency_token = "opaque"
        await sfm.stats()
    assert seen[-1] == "opaque"
