#!/usr/bin/env bash
# Fetches and builds the Rust compat suites' dependencies (idempotent; needs crates.io).
# rust-rdkafka compiles its bundled librdkafka with ./configure + make (gcc, make; no cmake):
# about 2.5 minutes on 2 cores the first time. COMPAT_RUST_RDKAFKA=0 skips it.
# Debug profile only, in its own target dir (target/compat-rust in the repo unless
# COMPAT_RUST_TARGET_DIR says otherwise).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export CARGO_TARGET_DIR="${COMPAT_RUST_TARGET_DIR:-$(cd ../.. && pwd)/target/compat-rust}"
features=()
[[ "${COMPAT_RUST_RDKAFKA:-1}" == 1 ]] && features=(--features rdkafka)
cargo fetch
cargo test "${features[@]}" --tests --no-run
