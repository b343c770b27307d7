"""The CLI reads ``.env`` from the current directory (as `make run` writes it), under the
environment; with neither, it names each missing store address and guesses none."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from somafractalmemory.core.keys import KeyService
from somafractalmemory.settings import Settings
from somafractalmemory.stack import Stack
from testkit.server import ROOT, free_port

STORE_VARIABLES = ("POSTGRES_DSN", "MILVUS_URI", "REDIS_URL")


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``somafractalmemory ARGS`` in ``cwd``, with no SFM setting in its environment but
    ``env`` (this tree's code, wherever the package is installed from)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTGRES_", "MILVUS_", "REDIS_", "SOMA_", "OTEL_"))
    }
    clean["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [sys.executable, "-m", "somafractalmemory.cli", *args],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write_env_file(directory: Path, settings: Settings) -> None:
    directory.joinpath(".env").write_text(
        "# as make writes it\n"
        f"POSTGRES_DSN={settings.postgres_dsn.get_secret_value()}\n"
        f"MILVUS_URI={settings.milvus_uri}\n"
        f"MILVUS_COLLECTION={settings.milvus_collection}\n"
        f"REDIS_URL={settings.redis_url.get_secret_value()}\n"
    )


def test_keys_create_reads_the_env_file_of_the_current_directory(
    stack: Stack, tmp_path: Path
) -> None:
    write_env_file(tmp_path, stack.settings)
    tenant = f"envfile-{uuid.uuid4().hex[:8]}"
    done = cli(tmp_path, "keys", "create", "--tenant", tenant)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith("sfm_"), done.stdout
    assert tenant in {k.tenant for k in KeyService(stack.postgres).list()}


def test_the_environment_wins_over_the_env_file(stack: Stack, tmp_path: Path) -> None:
    write_env_file(tmp_path, stack.settings)
    closed = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"
    done = cli(tmp_path, "keys", "list", POSTGRES_DSN=closed)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "nowhere" in done.stderr or "127.0.0.1" in done.stderr, done.stderr


def test_without_env_or_env_file_each_missing_address_is_named(tmp_path: Path) -> None:
    done = cli(tmp_path, "keys", "create", "--tenant", "nobody")
    assert done.returncode == 2, done.stdout + done.stderr
    for name in STORE_VARIABLES:
        assert f"settings: {name}: Field required" in done.stderr, done.stderr
