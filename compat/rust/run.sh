#!/usr/bin/env bash
# Runs the Rust compat suites (rskafka; rust-rdkafka too unless COMPAT_RUST_RDKAFKA=0) against
# target/debug/gregor (build that first: cargo build in the repo root).
#   bash compat/rust/run.sh [extra cargo test args, e.g. --test rskafka]
# Debug profile only, in its own target dir so it never holds the main target's lock.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export CARGO_TARGET_DIR="${COMPAT_RUST_TARGET_DIR:-$(cd ../.. && pwd)/target/compat-rust}"
features=()
[[ "${COMPAT_RUST_RDKAFKA:-1}" == 1 ]] && features=(--features rdkafka)
# two tests at a time: each starts its own broker; the machine has 2 cores
exec cargo test "${features[@]}" --no-fail-fast --tests "$@" -- --test-threads=2
