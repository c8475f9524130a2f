#!/usr/bin/env bash
# Create the environment (scripts/bootstrap.sh) and run the linter and the whole test suite offline.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$root/scripts/bootstrap.sh" | tail -n1)"
cd "$root"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
"$venv/bin/python" -m flake8 captum_attn_shapley tests benchmarks
"$venv/bin/python" -m pytest "$@"
