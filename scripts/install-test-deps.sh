#!/usr/bin/env bash
# Installs every tool the test suite drives, on a fresh Debian machine (as root) or an
# existing one: kcat (apt), a Python venv with the Python clients (pip), kafkajs (npm, inside
# compat/kafkajs), the Go clients (Go module proxy, with the machine's own Go), the Java client,
# Kafka's tools, Streams, Connect and Flink (Maven Central, with the machine's JDK 17 and Maven),
# and the Rust client crates (cargo, built once). Idempotent and quick when everything is
# already there; scripts/test.sh runs it first.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
step() { echo; echo "==> $*"; }

apt_missing=()
for pkg in kcat; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || apt_missing+=("$pkg")
done
if ((${#apt_missing[@]})); then
  step "apt-get install ${apt_missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
fi

step "Python venv (.venv) with the Python clients"
if [[ ! -x .venv/bin/python ]]; then
  if ! python3 -m venv .venv; then
    # Debian's own python3 needs python3-venv for `-m venv`.
    rm -rf .venv
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv .venv
  fi
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r compat/requirements.txt
bash compat/aiokafka/install.sh
bash compat/kafka_python_202/install.sh

step "kafkajs (npm)"
bash compat/kafkajs/install.sh

step "Go: franz-go, sarama, kafka-go (Go module proxy)"
bash compat/go/install.sh

for suite in java kafka_tools streams connect flink; do
  if [[ -f compat/$suite/install.sh ]]; then
    step "Java: compat/$suite (Maven Central)"
    bash compat/$suite/install.sh
  fi
done

step "Rust clients: rskafka and rust-rdkafka"
bash compat/rust/install.sh

if command -v rustup >/dev/null 2>&1; then
  installed="$(rustup component list --installed 2>/dev/null || true)"
  for comp in clippy rustfmt; do
    grep -q "^${comp}" <<<"$installed" || rustup component add "$comp"
  done
fi
