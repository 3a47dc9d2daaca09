#!/usr/bin/env bash
# Runs the Java client suite (JUnit 5 + Surefire) against target/debug/gregor (or $GREGOR_BIN),
# twice: with kafka-clients 4.4.0 (writes compat/results/java.json) and with kafka-clients 3.9.x
# (-Pkafka-3.9, writes compat/results/java-3.9.json). Each test class starts its own broker.
#   bash compat/java/run.sh [extra mvn args, e.g. -Dtest=ProducerTest]
# Exits non-zero if either run had a failing test.
set -uo pipefail
if [[ -n "${GREGOR_BIN:-}" && "$GREGOR_BIN" != /* ]]; then
  GREGOR_BIN="$PWD/$GREGOR_BIN"  # relative to where run.sh was started
fi
cd "$(dirname "${BASH_SOURCE[0]}")"
repo="$(cd ../.. && pwd)"
export GREGOR_BIN="${GREGOR_BIN:-$repo/target/debug/gregor}"
mkdir -p "$repo/compat/results"
rm -f "$repo/compat/results/java.json" "$repo/compat/results/java-3.9.json"
rm -rf target/brokers target-3.9/brokers

# Offline when install.sh has fetched everything (the usual case); online otherwise.
m2="${HOME}/.m2/repository"
offline=-o
for d in org/apache/kafka/kafka-clients/4.4.0 org/apache/kafka/kafka-clients/3.9.2 \
         org/apache/maven/surefire/surefire-junit-platform; do
  [[ -d "$m2/$d" ]] || offline=
done

status=0
for profile in "" "-Pkafka-3.9"; do
  echo
  if [[ -z "$profile" ]]; then
    echo "==> compat/java: kafka-clients 4.4.0"
  else
    echo "==> compat/java: kafka-clients 3.9.2 ($profile)"
  fi
  if ! mvn -B -ntp $offline $profile test -Dgregor.bin="$GREGOR_BIN" -Dresults.dir="$repo/compat/results" "$@"; then
    status=1
  fi
done
exit $status
