#!/usr/bin/env bash
# Runs the kafka-python 2.0.2 suite against target/debug/gregor (or $GREGOR_BIN).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GREGOR_BIN="${GREGOR_BIN:-$(cd .. && pwd)/target/debug/gregor}"
exec kafka_python_202/.venv/bin/python -m pytest kafka_python_202 -v --timeout=300 -p no:cacheprovider "$@"
