#!/usr/bin/env bash
# Create the environment (scripts/bootstrap.sh) and run the command-line program, e.g.
#   scripts/explain.sh "the flight was late and the crew was rude"
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$("$root/scripts/bootstrap.sh" | tail -n1)"
export TOKENIZERS_PARALLELISM=false
exec "$venv/bin/captum-attn-shapley" explain "$@"
