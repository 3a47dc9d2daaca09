#!/usr/bin/env bash
# Runs the Go client suites against ${GREGOR_BIN:-<repo>/target/debug/gregor}, one package
# after the other: sarama/, franzgo/, kafkago/ (each test starts its own broker). Each package
# writes compat/results/<client>.json from its TestMain. Needs install.sh first (offline here).
#   bash compat/go/run.sh [extra go test args, e.g. -run TestTransactions]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly GOPROXY=off
export GREGOR_BIN="${GREGOR_BIN:-$(cd ../.. && pwd)/target/debug/gregor}"
exec go test -count=1 -timeout 420s -p 1 -v "$@" ./...
