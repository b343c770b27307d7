#!/usr/bin/env bash
# Install the git pre-commit hook that refuses a commit changing a migration under
# src/somafractalmemory/migrations/versions/ without bumping `version` in pyproject.toml.
# For people without the pre-commit tool (.pre-commit-config.yaml runs the same check).
#   scripts/install-hooks.sh          install, unless another pre-commit hook is there
#   scripts/install-hooks.sh --force  replace it (the old one is kept as pre-commit.bak)
set -euo pipefail

FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

cd "$(git rev-parse --show-toplevel)"
# --git-path respects core.hooksPath and works in linked worktrees.
hooks_dir="$(git rev-parse --git-path hooks)"
hook="$hooks_dir/pre-commit"
marker="installed by scripts/install-hooks.sh"

if [ -e "$hook" ] && ! grep -q "$marker" "$hook"; then
  if [ "$FORCE" -eq 0 ]; then
    echo "install-hooks: $hook exists and was not installed by this script." >&2
    echo "  If it is the pre-commit tool's hook, it already runs this check" \
      "(.pre-commit-config.yaml). Use --force to replace it." >&2
    exit 1
  fi
  mv "$hook" "$hook.bak"
  echo "install-hooks: kept the old hook as $hook.bak"
fi

mkdir -p "$hooks_dir"
cat >"$hook" <<HOOK
#!/bin/sh
# $marker: a migration change needs a version bump.
root="\$(git rev-parse --show-toplevel)" || exit 1
cd "\$root" || exit 1
py=.venv/bin/python
[ -x "\$py" ] || py=python3
exec "\$py" scripts/check_migration_version.py --staged
HOOK
chmod +x "$hook"
echo "install-hooks: installed $hook"
