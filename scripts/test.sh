#!/usr/bin/env bash
# Gregor's test command: installs what is missing, builds, runs the Rust tests (unit,
# integration, protocol-tests), then every real-client suite against target/debug/gregor, and
# regenerates compat/MATRIX.md. Every suite runs even if an earlier one fails; the exit status
# is non-zero if any failed.
#   bash scripts/test.sh [extra pytest args, e.g. -k kcat -x]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/install-test-deps.sh

echo "==> cargo build --all-targets"
cargo build --all-targets

failed=()
# No suite may hold up the others for ever: past its limit (seconds, GREGOR_SUITE_LIMIT, 20
# minutes by default) it is killed, process group and all, and counted as failed.
suite_limit=${GREGOR_SUITE_LIMIT:-1200}
run() {
  local name=$1
  shift
  echo
  echo "==> $name"
  local rc=0
  timeout -k 30 "$suite_limit" "$@" || rc=$?
  if ((rc == 124 || rc == 137)); then
    echo "TIMED OUT after ${suite_limit}s: $name"
  fi
  if ((rc != 0)); then
    failed+=("$name")
  fi
}

run "cargo test" cargo test
export GREGOR_BIN="${GREGOR_BIN:-$PWD/target/debug/gregor}"
# The matrix is built from this run's results only.
rm -rf compat/results
mkdir -p compat/results
run "pytest compat/ (kcat, confluent-kafka, kafka-python, aiokafka, groups, log engine, durability)" \
  .venv/bin/python -m pytest compat/ -v --timeout=300 --junitxml=compat/results/pytest-junit.xml "$@"
run "kafka-python 2.0.2 (pinned old versions)" bash compat/kafka_python_202/run.sh
run "kafkajs" bash compat/kafkajs/run.sh
run "Go: franz-go, sarama, kafka-go" bash compat/go/run.sh
for suite in java kafka_tools streams connect flink; do
  if [[ -f compat/$suite/run.sh ]]; then run "compat/$suite" bash compat/$suite/run.sh; fi
done
run "Rust rskafka + rust-rdkafka" bash compat/rust/run.sh
run "compat/MATRIX.md" .venv/bin/python scripts/matrix.py

echo
if ((${#failed[@]})); then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "All suites passed."
