#!/usr/bin/env bash
# Installs the Go toolchain and sarama from Debian's packages (idempotent, needs root + apt).
# The suite builds offline in GOPATH mode against /usr/share/gocode (see run.sh).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
pkgs=(golang-go golang-github-shopify-sarama-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
go version
dpkg-query -W -f='sarama ${Version}\n' golang-github-shopify-sarama-dev
