#!/usr/bin/env bash
# Go client suites (sarama, franz-go, kafka-go): fetches the modules pinned in go.mod/go.sum
# through the Go module proxy with the machine's Go (/usr/local/go), then prebuilds the test
# binaries (`go test -run XXX`), so run.sh needs no network. Idempotent; quick when cached.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1; then
  echo "compat/go/install.sh: no Go toolchain (expected /usr/local/go/bin/go)" >&2
  exit 1
fi
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
go version
go mod download
go test -count=1 -run XXX ./... >/dev/null
go list -m -f '{{.Path}} {{.Version}}' github.com/IBM/sarama github.com/twmb/franz-go \
  github.com/twmb/franz-go/pkg/kadm github.com/segmentio/kafka-go
