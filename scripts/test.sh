#!/usr/bin/env bash
# The whole check, as CI runs it (.ci/run):
#   scripts/test.sh [--fast] [--latest] [PYTEST_ARGS ...]
# Creates the locked environments (scripts/bootstrap.sh with requirements/captum09.lock and
# requirements/captum08.lock), runs ruff (lint, import order, formatting), the import layers contract
# (import-linter), mypy, builds the documentation site with warnings as errors, then the test suite offline,
# in two tiers:
#   1. the fast tier (pytest -m "not claims"): properties: exactness, invariants, references, errors;
#   2. the claims tier (pytest -m claims, tests/claims/): what the trained embedded models' explanations show,
#      as published in the docs, at the benchmarks' sizes.
# first with captum 0.9 (both tiers; the tutorial notebooks and the dataset jobs run here), then with captum 0.8.0 and the
# `insights` extra (the fast tier: Captum Insights, tested end to end in Debian's headless Chromium, which is
# installed with apt-get if missing). Both locks share the versions that train the embedded models, so the
# models are trained once, on first use (deterministically; see captum_attn_shapley/model_cache.py).
#   --fast     the fast tier only (a developer's loop; no claims tier)
#   --latest   the newest versions the project's ranges allow instead of the locks (environments .venv-latest
#              and .venv-latest-captum08; their models are trained and cached separately)
# SKIP_CAPTUM08=1 skips the captum 0.8 run. Other arguments go to pytest.
# Screenshots of the browser tests are kept in $TEST_ARTIFACTS (default: test-artifacts/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fast=0
latest=0
args=()
for arg in "$@"; do
  case "$arg" in
    --fast) fast=1 ;;
    --latest) latest=1 ;;
    *) args+=("$arg") ;;
  esac
done
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
export TEST_ARTIFACTS="${TEST_ARTIFACTS:-$root/test-artifacts}"
if [ "$latest" = 1 ]; then
  venv="$(LOCK=none scripts/bootstrap.sh "$root/.venv-latest" | tail -n1)"
else
  venv="$(scripts/bootstrap.sh "$root/.venv" | tail -n1)"
fi
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
"$venv/bin/lint-imports"
"$venv/bin/python" -m mypy captum_attn_shapley
echo "== documentation site (docs/_build/html)"
"$venv/bin/python" -m sphinx -E -W --keep-going -q -b html docs docs/_build/html
version() { "$1/bin/python" -c 'import captum, numpy, transformers; print("captum", captum.__version__, "numpy", numpy.__version__, "transformers", transformers.__version__)'; }
echo "== fast tier with $(version "$venv")"
"$venv/bin/python" -m pytest --durations=8 -m "not claims" ${args[@]+"${args[@]}"}
if [ "$fast" = 0 ]; then
  echo "== claims tier with $(version "$venv")"
  "$venv/bin/python" -m pytest --durations=8 -m claims ${args[@]+"${args[@]}"}
fi
if [ "${SKIP_CAPTUM08:-0}" != "1" ]; then
  scripts/install_browser.sh
  if [ "$latest" = 1 ]; then
    venv08="$(LOCK=none EXTRAS=test,insights scripts/bootstrap.sh "$root/.venv-latest-captum08" | tail -n1)"
  else
    venv08="$(EXTRAS=test,insights scripts/bootstrap.sh "$root/.venv-captum08" | tail -n1)"
  fi
  echo "== fast tier with $(version "$venv08")"
  # the notebooks and the dataset jobs (the `jobs` extra: pyarrow, Ray) run in the captum 0.9 environment only
  "$venv08/bin/python" -m pytest --durations=8 -m "not claims and not notebook and not jobs" ${args[@]+"${args[@]}"}
fi
