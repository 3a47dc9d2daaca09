#!/usr/bin/env bash
# Gregor's test command: build, Rust tests, then the real-client compat suites.
#   bash scripts/test.sh [extra pytest args, e.g. -k kcat -x]
# Expects the Python venv at .venv (created by .ci/run; see the message below).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV_PY=.venv/bin/python
if [[ ! -x "$VENV_PY" ]]; then
  cat >&2 <<'MSG'
scripts/test.sh: .venv is missing. Create it once with:
    python3 -m venv .venv && .venv/bin/pip install -r compat/requirements.txt
  and install kcat (Debian: apt-get install kcat). `bash .ci/run` does all of this.
MSG
  exit 2
fi

echo "==> cargo build --all-targets"
cargo build --all-targets

echo "==> cargo test"
cargo test

echo "==> pytest compat/ (real clients against target/debug/gregor)"
export GREGOR_BIN="${GREGOR_BIN:-$PWD/target/debug/gregor}"
"$VENV_PY" -m pytest compat/ -v --timeout=300 "$@"
