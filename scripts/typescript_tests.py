#!/usr/bin/env python3
"""Run the TypeScript client's tests against a real SFM server (``make test-typescript``).

0. check that clients/typescript/package.json has pyproject.toml's version;
1. in clients/typescript, ``npm ci`` (when node_modules does not match package-lock.json),
   then the strict type check of the sources and tests (``npm run lint``), the build of
   ``dist/`` and of the tests: in a subprocess, while the stack is prepared;
2. a fresh database at the migrations' head, the collections dropped and ensured, the Redis
   db flushed, and two tenants with a key each;
3. one SFM server (uvicorn subprocess, :func:`testkit.server.running_server`) on that stack;
4. ``node --test`` over the built tests with ``SFM_URL``, ``SFM_API_KEY`` and
   ``SFM_API_KEY_2`` (a second tenant: isolation and tenant-wide counts);
5. the server stopped, the collections and the database dropped.

The stack comes from POSTGRES_DSN, MILVUS_URI, MILVUS_COLLECTION and REDIS_URL (the Make target
sets a database, collection and Redis db of their own); both names must contain "test".
Exit status: node's (0 when every test passed), or 1 when a step before it failed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # testkit/

import redis  # noqa: E402

from somafractalmemory.settings import Settings  # noqa: E402
from testkit.server import running_server, server_env  # noqa: E402
from testkit.stores import (  # noqa: E402
    drop_collections,
    drop_database,
    ensure_collections,
    migrate,
    new_tenant,
    recreate_database,
)

CLIENT = ROOT / "clients" / "typescript"
# npm ci only when node_modules was not installed from this very package-lock.json (the hash
# of the lock it came from is kept beside it); npm's cache is preferred to the registry.
PREPARE = (
    "set -e; lock=$(sha256sum package-lock.json | cut -d' ' -f1); "
    'if [ "$(cat node_modules/.sfm-lock-sha256 2>/dev/null)" != "$lock" ]; then '
    "npm ci --no-audit --no-fund --prefer-offline; "
    'echo "$lock" > node_modules/.sfm-lock-sha256; fi; '
    "npm run --silent lint; npm run --silent build:test"
)


def version_mismatch() -> str | None:
    """The package.json version when it is not pyproject.toml's (they are released together)."""
    with (ROOT / "pyproject.toml").open("rb") as handle:
        python = tomllib.load(handle)["project"]["version"]
    npm = json.loads((CLIENT / "package.json").read_text())["version"]
    return None if npm == python else f"package.json has {npm}, pyproject.toml {python}"


def log(message: str) -> None:
    print(f"[typescript-tests] {message}", flush=True)


def main() -> int:
    # No background sweep or webhook deliveries racing the tests' own counts.
    settings = Settings(items_sweep_interval_seconds=3600, webhook_concurrency=0)
    dsn = settings.postgres_dsn.get_secret_value()
    if "test" not in urlsplit(dsn).path or "test" not in settings.milvus_collection:
        log("refusing to run: POSTGRES_DSN and MILVUS_COLLECTION must name test stores")
        return 2
    mismatch = version_mismatch()
    if mismatch:
        log(f"FAILED: the client's version must be the package's: {mismatch}")
        return 1
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sfm-ts-") as tmp:
        prepare_log = Path(tmp) / "prepare.log"
        with prepare_log.open("wb") as out:
            prepare = subprocess.Popen(
                ["bash", "-c", PREPARE], cwd=CLIENT, stdout=out, stderr=subprocess.STDOUT
            )
        recreate_database(dsn)
        try:
            migrate(dsn)
            drop_collections(settings.milvus_uri, settings.milvus_collection)
            ensure_collections(settings)
            redis.Redis.from_url(settings.redis_url.get_secret_value()).flushdb()
            _, first = new_tenant(settings, "ts")
            _, second = new_tenant(settings, "ts-other")
            log(f"stack ready in {time.monotonic() - started:.1f} s")
            env = server_env(settings, SOMA_WEBHOOK_ALLOW_HTTP_LOOPBACK="true")
            with running_server(env, Path(tmp) / "server.log", access_log=False) as server:
                log(f"server on {server.url} after {time.monotonic() - started:.1f} s")
                if prepare.wait() != 0:
                    print(prepare_log.read_text(), flush=True)
                    log("FAILED: npm ci / lint / build (output above)")
                    return 1
                print(prepare_log.read_text(), end="", flush=True)
                node_env = {
                    **os.environ,
                    "SFM_URL": server.url,
                    "SFM_API_KEY": first["Authorization"].split()[1],
                    "SFM_API_KEY_2": second["Authorization"].split()[1],
                }
                status = subprocess.run(
                    # the files side by side: they wait on the server, not the CPU
                    ["node", "--test", "--test-concurrency=8", "--test-reporter=spec", "build/"],
                    cwd=CLIENT,
                    env=node_env,
                    check=False,
                ).returncode
                if status != 0:
                    print("--- server log (tail) ---\n" + server.log_tail(60), flush=True)
        finally:
            if prepare.poll() is None:
                prepare.kill()
                prepare.wait()
            drop_collections(settings.milvus_uri, settings.milvus_collection)
            drop_database(dsn)
    log(f"done in {time.monotonic() - started:.1f} s (exit {status})")
    return status


if __name__ == "__main__":
    sys.exit(main())
