#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install everything it needs.
# Idempotent: re-running only reinstalls when pyproject.toml, constraints or assets changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${CAPTUM_ATTN_SHAPLEY_VENV:-$root/.venv}"
python="${PYTHON:-python3}"
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$(cat pyproject.toml constraints.txt requirements-assets.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -c constraints.txt -e ".[test]"
  "$venv/bin/python" -m pip install --quiet --no-deps -r requirements-assets.txt
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
echo "$venv"
