"""A real webhook endpoint for tests: an HTTP server (``http.server``) in a process of its own
that appends every POST it receives to a JSON Lines file, then answers.

    python -m testkit.webhook_receiver --port 8123 --out received.jsonl [--status 500]

Each line is ``{"path", "delivery", "signature", "body"}`` (the raw body as text), written
with one ``write`` on a file opened for appending before the answer is sent: a receiver
killed at any moment leaves whole lines, and a delivery it never answered is simply sent
again. :class:`Receiver` runs it as a subprocess that a test kills (SIGKILL) and restarts on
the same port.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from testkit.server import ROOT, answering, free_port, wait_until


def serve(port: int, out: Path, status: int) -> None:
    """Serve until killed."""
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            line = {
                "path": self.path,
                "delivery": self.headers.get("SFM-Delivery"),
                "signature": self.headers.get("SFM-Signature"),
                "body": body.decode(),
            }
            os.write(fd, (json.dumps(line) + "\n").encode())
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet: the file is the record

    ThreadingHTTPServer.allow_reuse_address = True
    with ThreadingHTTPServer(("127.0.0.1", port), Handler) as server:
        server.serve_forever()


class Receiver:
    """The receiver as a subprocess on a fixed port, writing to ``out``."""

    def __init__(self, out: Path, port: int | None = None) -> None:
        self.out = out
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, status: int = 200) -> None:
        """Start it (answering ``status`` to every POST) and wait until it listens."""
        assert self.proc is None, "already running"
        command = [sys.executable, "-m", "testkit.webhook_receiver"]
        command += ["--port", str(self.port), "--out", str(self.out), "--status", str(status)]
        self.proc = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
        wait_until(f"receiver on {self.port}", lambda: answering(self.port), 30, 0.05)

    def kill(self) -> None:
        """SIGKILL it: connections drop, nothing more is answered."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None

    def received(self) -> list[dict[str, Any]]:
        """Every POST received so far, in order."""
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--status", type=int, default=200)
    args = parser.parse_args()
    serve(args.port, args.out, args.status)


if __name__ == "__main__":
    main()
