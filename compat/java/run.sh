#!/usr/bin/env bash
# Runs the Java client suite (JUnit 5 + Surefire) against target/debug/gregor (or $GREGOR_BIN),
# twice: with kafka-clients 4.4.0 (writes compat/results/java.json) and with kafka-clients 3.9.x
# (-Pkafka-3.9, writes compat/results/java-3.9.json). Each test class starts its own broker.
#   bash compat/java/run.sh [extra mvn args, e.g. -Dtest=ProducerTest]
# Exits non-zero if either run had a failing test.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
repo="$(cd ../.. && pwd)"
export GREGOR_BIN="${GREGOR_BIN:-$repo/target/debug/gregor}"
mkdir -p "$repo/compat/results"
rm -rf target/brokers target-3.9/brokers

status=0
for profile in "" "-Pkafka-3.9"; do
  echo
  echo "==> compat/java: kafka-clients ${profile:+3.9 }(${profile:-default profile, 4.4.0})"
  # -o: everything was fetched by install.sh; no network needed here.
  if ! mvn -B -ntp -o $profile test -Dgregor.bin="$GREGOR_BIN" -Dresults.dir="$repo/compat/results" "$@"; then
    status=1
  fi
done
exit $status
