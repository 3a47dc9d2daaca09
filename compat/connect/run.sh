#!/usr/bin/env bash
# Runs the Kafka Connect and MirrorMaker 2 suites (compat/connect) against target/debug/gregor
# (set GREGOR_BIN for another binary). Needs compat/connect/install.sh first (offline afterwards).
# Writes compat/results/connect.json and compat/results/mirrormaker2.json.
#   bash compat/connect/run.sh [extra pytest args, e.g. -k mirror]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export GREGOR_BIN="${GREGOR_BIN:-$(cd .. && pwd)/target/debug/gregor}"
if [[ ! -s connect/target/classpath.txt ]]; then
  echo "compat/connect: no classpath; run bash compat/connect/install.sh" >&2
  exit 1
fi
exec ../.venv/bin/python -m pytest connect -v --timeout=300 -p no:cacheprovider "$@"
