"""Key changes pushed by PostgreSQL: a thread that LISTENs on the channel the ``api_keys`` and
``tenants`` triggers notify (migration 0005).

The thread holds one connection of its own. It calls ``on_ready`` once it listens (after every
connect), ``on_change`` on every notification and ``on_lost`` as soon as the connection fails,
then reconnects with exponential backoff. TCP keepalives bound how long a connection to a host
that vanished goes unnoticed (about 10 s).
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable

import psycopg

logger = logging.getLogger(__name__)

CHANNEL = "sfm_api_keys"
MAX_BACKOFF_SECONDS = 30.0


class KeyChangeListener:
    """``LISTEN sfm_api_keys`` on a thread; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        address: str,
        connect_timeout: float,
        on_ready: Callable[[], None],
        on_change: Callable[[], None],
        on_lost: Callable[[], None],
    ) -> None:
        self._dsn = dsn
        self._address = address
        self._connect_timeout = max(1, int(connect_timeout))
        self._on_ready = on_ready
        self._on_change = on_change
        self._on_lost = on_lost
        self._stopping = threading.Event()
        # A pipe the thread selects on beside its connection, so that stop() wakes it at once.
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="sfm-key-events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop listening and close the connection (within a second)."""
        self._stopping.set()
        os.write(self._wake_w, b"x")
        if self._thread.is_alive():
            self._thread.join(timeout=1.0)
        if not self._thread.is_alive():  # else it is still connecting: it exits on its own
            os.close(self._wake_r)
            os.close(self._wake_w)

    def _run(self) -> None:
        backoff = 0.25
        try:
            while not self._stopping.is_set():
                try:
                    self._listen()
                    return  # stopped
                except psycopg.Error as exc:
                    self._on_lost()
                    logger.warning(
                        "key change listener lost PostgreSQL at %s (%s); key lookups are not "
                        "cached until it is back",
                        self._address,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
                    )
                if self._wait(backoff):
                    return
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        finally:
            # However the thread ends (stopped, or an error nobody foresaw), nothing is cached
            # any more without a listener.
            self._on_lost()

    def _wait(self, seconds: float | None, *fds: int) -> bool:
        """Wait until one of ``fds`` is readable or ``seconds`` pass; True when stopping."""
        ready, _, _ = select.select([self._wake_r, *fds], [], [], seconds)
        return self._wake_r in ready or self._stopping.is_set()

    def _listen(self) -> None:
        with psycopg.connect(
            self._dsn,
            autocommit=True,
            connect_timeout=self._connect_timeout,
            application_name="somafractalmemory-key-events",
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
        ) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self._on_ready()
            while not self._wait(None, conn.fileno()):
                # The socket is readable: notifications, or the server ending the connection
                # (then this raises). A timeout of 0 reads what is there and returns.
                for _ in conn.notifies(timeout=0):
                    self._on_change()
