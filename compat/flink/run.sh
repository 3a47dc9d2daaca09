#!/usr/bin/env bash
# Runs the Flink Kafka connector suite (JUnit 5 + Surefire, a Flink MiniCluster inside the test JVM)
# against target/debug/gregor (or $GREGOR_BIN). Each test class starts its own broker. Writes
# compat/results/flink.json. Exits non-zero if a test failed.
#   bash compat/flink/run.sh [extra mvn args, e.g. -Dtest=FlinkKafkaTest#test03*]
# Broker logs: compat/flink/target/brokers/<class>-*/broker.stderr.log
set -uo pipefail
if [[ -n "${GREGOR_BIN:-}" && "$GREGOR_BIN" != /* ]]; then
  GREGOR_BIN="$PWD/$GREGOR_BIN"  # relative to where run.sh was started
fi
cd "$(dirname "${BASH_SOURCE[0]}")"
repo="$(cd ../.. && pwd)"
export GREGOR_BIN="${GREGOR_BIN:-$repo/target/debug/gregor}"
mkdir -p "$repo/compat/results"
rm -f "$repo/compat/results/flink.json"
rm -rf target/brokers target/savepoints

# Offline when install.sh has fetched everything (the usual case); online otherwise.
m2="${HOME}/.m2/repository"
offline=-o
for d in org/apache/flink/flink-connector-kafka/5.0.0-2.2 org/apache/flink/flink-clients/2.2.1 \
         org/apache/maven/surefire/surefire-junit-platform; do
  [[ -d "$m2/$d" ]] || offline=
done
exec mvn -B -ntp -Dstyle.color=never $offline test -Dgregor.bin="$GREGOR_BIN" -Dresults.dir="$repo/compat/results" "$@"
