#!/usr/bin/env bash
# Runs the Kafka CLI tools suite (Apache Kafka 4.4.0's own tools) against target/debug/gregor
# (set GREGOR_BIN for another binary); writes compat/results/kafka-tools.json.
#   bash compat/kafka_tools/run.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export GREGOR_BIN="${GREGOR_BIN:-$PWD/target/debug/gregor}"
if [[ ! -s compat/kafka_tools/build/classpath.txt ]]; then
  bash compat/kafka_tools/install.sh
fi
exec .venv/bin/python -m pytest compat/kafka_tools -v --timeout=300 -p no:cacheprovider "$@"
