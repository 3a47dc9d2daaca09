#!/usr/bin/env bash
# Start-up time over a 10 GB log (issue 3): after a clean stop, and after SIGKILL under an
# acks=1 load. Needs the release build: `cargo build --release --examples` (bench.sh does it).
# About 11 GB of disk and 1-2 minutes; listens on 127.0.0.1:19210; removes its data at the end.
set -euo pipefail
TARGET=${CARGO_TARGET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/target}
BIN=$TARGET/release/gregor
LG=$TARGET/release/examples/loadgen
D=${BENCH_DIR:-$(mktemp -d)}/big10g
rm -rf "$D"; mkdir -p "$D"
PORT=19210
ADDR=127.0.0.1:$PORT
"$BIN" --listeners PLAINTEXT://$ADDR --log-dirs "$D/data" > "$D/broker1.log" 2>&1 &
PID=$!
"$LG" wait-ready --addr $ADDR
"$LG" create --addr $ADDR --topic big --partitions 8
echo "== ingest 10 GB (1 KiB records, 8 partitions, acks=1)"
"$LG" produce --addr $ADDR --topic big --partitions 8 --record-size 1024 --acks 1 --secs 280 --max-bytes 10000000000 --pid $PID | tail -1
du -sh "$D/data"
kill -TERM $PID; wait $PID || true
echo "== restart after a clean stop"
"$LG" startup --bin "$BIN" --dir "$D/data" --port $PORT --log "$D/startup-clean.log" | tail -1
echo "== SIGKILL under acks=1 load, then restart"
"$BIN" --listeners PLAINTEXT://$ADDR --log-dirs "$D/data" > "$D/broker2.log" 2>&1 &
PID=$!
"$LG" wait-ready --addr $ADDR
"$LG" produce --addr $ADDR --topic big --partitions 8 --record-size 1024 --acks 1 --secs 6 --max-bytes 2000000000 > /dev/null 2>&1 &
LOAD=$!
sleep 4
kill -KILL $PID; wait $PID 2>/dev/null || true
wait $LOAD 2>/dev/null || true
"$LG" startup --bin "$BIN" --dir "$D/data" --port $PORT --log "$D/startup-kill.log" | tail -1
grep -h "gregor is ready" "$D"/startup-*.log | sed 's/.*elapsed_ms=/broker-reported elapsed_ms=/'
rm -rf "$D"
