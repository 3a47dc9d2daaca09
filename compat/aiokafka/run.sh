#!/usr/bin/env bash
# Runs the aiokafka compat suite against target/debug/gregor (set GREGOR_BIN for another binary).
#   bash compat/aiokafka/run.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export GREGOR_BIN="${GREGOR_BIN:-$PWD/target/debug/gregor}"
exec .venv/bin/python -m pytest compat/aiokafka -v --timeout=300 "$@"
