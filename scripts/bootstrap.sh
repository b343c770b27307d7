#!/usr/bin/env bash
# The one way SomaFractalMemory starts (make run, Docker CMD).
#   1. alembic upgrade head              (stop at once if it fails)
#   2. wait for PostgreSQL, Milvus, Redis with exponential backoff (SOMA_BOOTSTRAP_TIMEOUT)
#   3. ensure the Milvus collection and index, validate_infrastructure()
#   4. exec uvicorn somafractalmemory.http_api:app
# --dry-run checks everything (no migration, no collection created) and exits without serving.
# A failure exits non-zero with one line per failed part, naming it and its address.
set -euo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

PYTHON="${PYTHON:-python}"
missing=0
for var in POSTGRES_DSN MILVUS_URI REDIS_URL; do
  if [ -z "${!var:-}" ]; then
    echo "FAILED settings ($var): required, not set" >&2
    missing=1
  fi
done
[ "$missing" -eq 0 ] || exit 2
export POSTGRES_DSN MILVUS_URI REDIS_URL

if [ "$DRY_RUN" -eq 0 ]; then
  # Waits for PostgreSQL (backoff), then migrates; a failed migration stops here.
  "$PYTHON" -m somafractalmemory.cli migrate --wait || exit 1
  "$PYTHON" -m somafractalmemory.bootstrap || exit 1
  exec "$PYTHON" -m uvicorn somafractalmemory.http_api:app \
    --host "${SOMA_HOST:-127.0.0.1}" --port "${SOMA_PORT:-9595}" \
    --proxy-headers --no-server-header
else
  exec "$PYTHON" -m somafractalmemory.bootstrap --dry-run
fi
