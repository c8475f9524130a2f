#!/usr/bin/env bash
# Regenerate the locks of the test environments: requirements/captum08.lock and requirements/captum09.lock,
# the whole resolved set of package versions (pip freeze of a fresh environment), one per captum environment.
#   scripts/lock.sh
# Each lock is made in a throw-away virtual environment, installed from the project's loose ranges through
# constraints.txt (which pins torch to the local CPU wheel), with the offline assets. The captum 0.8 lock is
# resolved first (captum 0.8 caps numpy below 2); the captum 0.9 lock is then resolved with the packages
# that compute the embedded models' data and weights (model_cache.KEY_PACKAGES) pinned to the same
# versions, so that both environments share one model cache. After regenerating, run the whole suite
# (scripts/test.sh): the embedded models are trained anew for the new versions and the claims tier checks
# that they still support the published figures; rerun the benchmarks (benchmarks/README.md) when they
# changed. The locks hold for this project's machines (Linux x86_64, CPython 3.11).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

lock() {  # lock NAME EXTRAS [CONSTRAINT_FILE]
  local name="$1" extras="$2" venv="$work/$1"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  local constraints=(-c constraints.txt)
  if [ -n "${3:-}" ]; then constraints+=(-c "$3"); fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${constraints[@]}" -e ".[${extras}]"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-assets.txt
  {
    echo "# The $name test environment: every package version, resolved by scripts/lock.sh on $(date -u +%F)"
    echo "# for $("$venv/bin/python" -c 'import platform; print(platform.system(), platform.machine(), "CPython", platform.python_version())')"
    echo "# with the extras [$extras]. Used as constraints by scripts/bootstrap.sh; do not edit by hand."
    "$venv/bin/python" -m pip freeze --exclude-editable | LC_ALL=C sort -f
  } > "requirements/$name.lock"
  echo "requirements/$name.lock: $(grep -vc '^#' "requirements/$name.lock") packages" >&2
}

lock captum08 test,insights
key_packages="$("$work/captum08/bin/python" -c 'from captum_attn_shapley.demos.model_cache import KEY_PACKAGES; print(*KEY_PACKAGES)')"
shared="$work/shared-versions.txt"
for package in $key_packages; do
  grep -i "^${package}==" requirements/captum08.lock >> "$shared" || true
done
lock captum09 test,docs,jobs "$shared"
