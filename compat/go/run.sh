#!/usr/bin/env bash
# Runs the sarama compat suite (go test) against target/debug/gregor.
#   bash compat/go/run.sh [extra go test args, e.g. -run TestAcks]
# GOPATH mode, offline: sarama and its dependencies come from Debian's /usr/share/gocode.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= GOPROXY=off
export GOCACHE="${GOCACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/go-build}"
exec go test -count=1 -timeout 600s -p 1 -parallel 1 -v "$@" .
