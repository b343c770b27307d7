"""Create the database named in POSTGRES_DSN if it does not exist (developer machines, CI).

Run as ``python scripts/ensure_database.py``; connects to the server's ``postgres`` database.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql


def main() -> int:
    dsn = os.environ["POSTGRES_DSN"]
    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not name:
        print("POSTGRES_DSN names no database", file=sys.stderr)
        return 2
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                print(f"postgres: created database {name}")
            else:
                print(f"postgres: database {name} exists")
    except psycopg.OperationalError as exc:
        host = parts.hostname or "localhost"
        print(f"FAILED postgres ({host}:{parts.port or 5432}): {exc}".strip(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
