#!/usr/bin/env bash
# Create .venv and install tunehouse with its test tools (idempotent; re-run after pulling).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.tunehouse-installed
# Reinstall only when the dependency list changed: installs are the slow part of CI.
if [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  cp pyproject.toml "$stamp"
fi
