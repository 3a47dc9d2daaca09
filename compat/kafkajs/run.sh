#!/usr/bin/env bash
# Runs the kafkajs compat suite (node --test) against target/debug/gregor
# (GREGOR_TEST_BINARY or GREGOR_BIN for another binary).
#   bash compat/kafkajs/run.sh [extra node --test args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
exec node --test --test-concurrency=1 --test-timeout=300000 "$@" test/
