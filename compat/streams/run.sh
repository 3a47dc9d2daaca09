#!/usr/bin/env bash
# Runs the Kafka Streams compat suite against target/debug/gregor (set GREGOR_BIN for another binary).
#   bash compat/streams/run.sh
# One Java driver (gregor.streams.Driver) starts the broker, runs the topology (gregor.streams.OrdersApp)
# as separate JVMs, SIGKILLs/SIGSTOPs them, checks the output, prints "N passed, N failed" and writes
# compat/results/streams.json. Exit status 1 if any check failed. Logs: compat/streams/target/work/<time>/.
# Knobs (environment): STREAMS_ORDERS (4000), STREAMS_PRODUCE_S (20), STREAMS_THROTTLE_MICROS (1500),
# STREAMS_CUSTOMERS (25), STREAMS_DEADLINE_S (270), STREAMS_SEGMENT_BYTES (16384), STREAMS_APP_LOG_LEVEL (info),
# STREAMS_APP_COMPRESSION (lz4), STREAMS_INPUT_COMPRESSION (zstd), STREAMS_GUARANTEE (exactly_once_v2; see README).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export GREGOR_BIN="${GREGOR_BIN:-$repo/target/debug/gregor}"
cd "$here"
# Dependencies are in ~/.m2 after install.sh; fall back to online if something is missing.
mvn -q -B -o -Dstyle.color=never compile 2>/dev/null || mvn -q -B -Dstyle.color=never compile
mkdir -p "$repo/compat/results" target/work
# keep the logs and data of the last 3 runs only (about 40 MB each)
# (find, not a glob: a fresh clone has no runs yet, and a failed ls would stop the script)
find target/work -mindepth 1 -maxdepth 1 -type d -printf '%T@ %p\n' | sort -rn | tail -n +4 | cut -d' ' -f2- | xargs -r rm -rf
exec java -Xmx512m -XX:+UseSerialGC -Dorg.slf4j.simpleLogger.defaultLogLevel=warn \
  -cp "target/classes:$(cat target/classpath.txt)" gregor.streams.Driver "$repo/compat/results/streams.json"
