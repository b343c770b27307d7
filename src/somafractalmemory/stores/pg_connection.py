"""A client-side deadline on every wait for PostgreSQL.

``statement_timeout`` is enforced by the server, so it cannot help when the server itself
stops answering on an open connection (a hung or SIGSTOPped process, a partition that drops
packets): psycopg would wait for the socket for ever, holding the request and its pooled
connection. :class:`DeadlineConnection` bounds each wait psycopg makes for the server (a
query's answer, a commit, the pool's ping). When the deadline passes, the connection is
closed, so the pool discards it, and the caller gets ``OperationalError``, which the adapter
turns into a 503 naming PostgreSQL.

The deadline is longer than ``statement_timeout``: a slow statement on a live server is still
cancelled by the server first, with its own error.
"""

from __future__ import annotations

import select
from typing import Any, TypeVar

import psycopg
import psycopg.errors
from psycopg.abc import PQGen

RV = TypeVar("RV")


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that waits at most :attr:`wait_deadline` seconds for the server."""

    wait_deadline: float = 30.0

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        deadline = self.wait_deadline if timeout is None else min(timeout, self.wait_deadline)
        try:
            return super().wait(gen, interval, deadline)
        except psycopg.errors.OperationalError as exc:
            # psycopg's own timeout error is private (``_WaitTimeout``). An error the server
            # sent (it has a SQLSTATE: statement_timeout's QueryCanceled, say) is the server
            # answering, and the connection stays usable: pass it on untouched.
            if self.closed or exc.sqlstate is not None:
                raise
            self.pgconn.finish()  # the protocol state is unknown: never reuse this connection
            raise psycopg.OperationalError(
                f"no answer from PostgreSQL within {deadline:g} s (client-side deadline)"
            ) from exc


def connection_class(wait_deadline: float) -> type[DeadlineConnection]:
    """A :class:`DeadlineConnection` subclass with ``wait_deadline`` seconds per wait."""
    return type("DeadlineConnection", (DeadlineConnection,), {"wait_deadline": wait_deadline})


def idle_usable(connection: psycopg.Connection[Any]) -> bool:
    """Whether an idle pooled connection can be used, judged without a round trip.

    PostgreSQL sends nothing on an idle connection except when it ends it (a shutdown or
    restart, ``pg_terminate_backend``, an idle timeout: an error message, then the close),
    so a readable socket means the connection is gone. (A parameter-status message after a
    configuration reload also reads as gone: that connection is merely replaced.) A server
    that stopped answering without closing is not seen here; the wait deadline catches it.
    """
    if connection.closed or connection.broken:
        return False
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    return not poller.poll(0)
