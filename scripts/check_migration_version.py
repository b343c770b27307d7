#!/usr/bin/env python3
"""Refuse a migration change that does not bump the package version.

A file added or edited under ``src/somafractalmemory/migrations/versions/`` changes the schema
an installed package expects, so the ``version`` in ``pyproject.toml`` must be greater than it
was at the base (compared with ``packaging.version``).

    python scripts/check_migration_version.py                 # working tree against the base
    python scripts/check_migration_version.py --base v0.1.0   # ... against a given ref
    python scripts/check_migration_version.py --staged        # the index against HEAD (hook)

The base, unless ``--base`` names one: the merge-base of HEAD and ``origin/main`` when that
exists and HEAD is ahead of it; else ``HEAD~1`` (the last commit, as on ``main`` itself); else
there is nothing to compare and the check passes. Without ``--staged`` the working tree is
compared (committed, staged, unstaged and untracked files), so CI on a clean clone checks the
commits since the base. Exit status: 0 fine, 1 a migration changed without a bump, 2 the check
could not run (not a git repository, unknown ref, unreadable pyproject.toml).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

try:
    from packaging.version import InvalidVersion, Version
except ImportError:  # pragma: no cover - depends on the interpreter
    print(
        "check_migration_version: needs the 'packaging' package "
        "(run it with .venv/bin/python, or pip install packaging)",
        file=sys.stderr,
    )
    sys.exit(2)

MIGRATIONS = "src/somafractalmemory/migrations/versions/"
PYPROJECT = "pyproject.toml"
CHANGED = {"A": "added", "M": "modified", "T": "type changed"}


class CheckError(Exception):
    """The check could not run."""


def git(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git in the current directory; raise :class:`CheckError` when it fails and
    ``check`` is set."""
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise CheckError(f"git {' '.join(args)}: {result.stderr.strip() or 'failed'}")
    return result


def commit_of(ref: str) -> str | None:
    """The commit ``ref`` names, or None when it names none."""
    result = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    return result.stdout.strip() or None


def default_base() -> tuple[str | None, str]:
    """The commit to compare with when ``--base`` is not given, and how it was chosen."""
    head = commit_of("HEAD")
    upstream = commit_of("origin/main")
    if head and upstream:
        merge_base = git("merge-base", head, upstream, check=False).stdout.strip()
        if merge_base and merge_base != head:
            return merge_base, "merge-base with origin/main"
    parent = commit_of("HEAD~1")
    if parent:
        return parent, "HEAD~1"
    return None, "no origin/main and no HEAD~1"


def changed_migrations(base: str, staged: bool) -> list[tuple[str, str]]:
    """``(status, path)`` of every migration file added or modified since ``base``."""
    args = ["diff", "--name-status", "--no-renames", "-z"]
    if staged:
        args.append("--cached")
    fields = git(*args, base, "--", MIGRATIONS).stdout.split("\0")
    changes = [
        (status[0], path)
        for status, path in zip(fields[::2], fields[1::2], strict=False)
        if status and status[0] in CHANGED
    ]
    if not staged:
        untracked = git("ls-files", "--others", "--exclude-standard", "-z", "--", MIGRATIONS)
        changes += [("A", path) for path in untracked.stdout.split("\0") if path]
    return sorted(set(changes), key=lambda change: change[1])


def version_in(text: str, where: str) -> Version:
    """The ``[project] version`` of a pyproject.toml."""
    try:
        raw = tomllib.loads(text)["project"]["version"]
        return Version(str(raw))
    except (tomllib.TOMLDecodeError, KeyError, TypeError, InvalidVersion) as exc:
        raise CheckError(f"{where}: no valid [project] version ({exc})") from exc


def version_at(base: str) -> Version | None:
    """The version in ``pyproject.toml`` at commit ``base``, or None when it has none."""
    result = git("show", f"{base}:{PYPROJECT}", check=False)
    if result.returncode != 0:
        return None
    return version_in(result.stdout, f"{PYPROJECT} at {base[:12]}")


def current_version(staged: bool) -> Version:
    """The version being checked: the staged pyproject.toml, or the working tree's."""
    if staged:
        result = git("show", f":{PYPROJECT}", check=False)
        if result.returncode != 0:
            raise CheckError(f"{PYPROJECT} is not in the index")
        return version_in(result.stdout, f"{PYPROJECT} (staged)")
    try:
        text = Path(PYPROJECT).read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckError(f"{PYPROJECT}: {exc.strerror or exc}") from exc
    return version_in(text, PYPROJECT)


def suggest(version: Version) -> str:
    """The next patch version, as a hint."""
    major, minor, micro = ([*version.release, 0, 0])[:3]
    return f"{major}.{minor}.{micro + 1}"


def run(base_ref: str | None, staged: bool) -> int:
    # Paths (the migrations folder, pyproject.toml) are relative to the top of the work tree.
    os.chdir(git("rev-parse", "--show-toplevel").stdout.strip())
    if base_ref is not None:
        base = commit_of(base_ref)
        if base is None:
            raise CheckError(f"--base {base_ref}: not a commit")
        how = f"--base {base_ref}"
    elif staged:
        base, how = commit_of("HEAD"), "HEAD"
        if base is None:
            print("check_migration_version: no commit yet, nothing to compare")
            return 0
    else:
        base, how = default_base()
        if base is None:
            print(f"check_migration_version: nothing to compare ({how})")
            return 0
    target = "the index" if staged else "the working tree"
    changes = changed_migrations(base, staged)
    if not changes:
        print(f"check_migration_version: no migration changes since {base[:12]} ({how})")
        return 0
    before = version_at(base)
    after = current_version(staged)
    if before is None:
        print(f"check_migration_version: {PYPROJECT} did not exist at {base[:12]}; OK")
        return 0
    if after > before:
        print(
            f"check_migration_version: {len(changes)} migration file(s) changed, "
            f"version {before} -> {after}: OK"
        )
        return 0
    lines = [
        f"check_migration_version: migrations changed in {target} since {base[:12]} ({how}) "
        "without a version bump:",
        *(f"  {CHANGED[status]}: {path}" for status, path in changes),
        f"{PYPROJECT} version is {after}, at the base it was {before}: it must be greater "
        f"(e.g. {suggest(before)}); bump `version` in {PYPROJECT}"
        + (" and stage it." if staged else "."),
    ]
    print("\n".join(lines), file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", help="the ref to compare with (default: see the module doc)")
    parser.add_argument(
        "--staged",
        action="store_true",
        help="check what is staged (the index) against HEAD or --base: the pre-commit hook",
    )
    args = parser.parse_args(argv)
    try:
        return run(args.base, args.staged)
    except CheckError as exc:
        print(f"check_migration_version: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
