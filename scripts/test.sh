#!/usr/bin/env bash
# Create the environments (scripts/bootstrap.sh), run flake8 and mypy, and the whole test suite offline:
# first with the newest captum allowed (0.9), then again with captum 0.8.0 and the `insights` extra (Captum
# Insights, tested end to end in Debian's headless Chromium, installed here with apt-get if missing).
# The tutorial notebooks are executed in the first run only (they are documentation; the package itself is
# tested under both). Set SKIP_CAPTUM08=1 to run only the first. Extra arguments go to pytest.
# Screenshots of the browser tests are kept in $TEST_ARTIFACTS (default: test-artifacts/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg
export TEST_ARTIFACTS="${TEST_ARTIFACTS:-$root/test-artifacts}"
venv="$(scripts/bootstrap.sh "$root/.venv" | tail -n1)"
"$venv/bin/python" -m flake8 captum_attn_shapley tests benchmarks tutorials
"$venv/bin/python" -m mypy captum_attn_shapley
echo "== test suite with $("$venv/bin/python" -c 'import captum; print("captum", captum.__version__)')"
"$venv/bin/python" -m pytest --durations=8 "$@"
if [ "${SKIP_CAPTUM08:-0}" != "1" ]; then
  scripts/install_browser.sh
  venv08="$(EXTRAS=test,insights scripts/bootstrap.sh "$root/.venv-captum08" | tail -n1)"
  echo "== test suite with $("$venv08/bin/python" -c 'import captum; print("captum", captum.__version__)')"
  "$venv08/bin/python" -m pytest --durations=8 -m "not notebook" "$@"
fi
