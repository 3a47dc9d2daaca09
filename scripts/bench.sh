#!/usr/bin/env bash
# Gregor's benchmark suite (issue #6): baselines, produce, fetch, end-to-end latency and
# footprint in one bounded run, reported as bench-results/latest.{md,json} with every figure
# divided by the baseline it should be compared with. See scripts/BENCH.md.
#
#   bash scripts/bench.sh [--full] [--secs N] [--quick] [--no-build] [--no-confluent]
#                         [--no-cluster] [--data-dir DIR] [--out DIR]
#
# Defaults finish in well under 10 minutes on a 2-core box; --full ingests 10 GB for the
# footprint rows instead of 2 GB. Every load step is bounded by bytes and seconds and wrapped
# in `timeout`, and all traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
ARGS="$*"

FULL=0
SECS=3            # seconds per produce scenario (each is also capped at SCEN_BYTES)
QUICK=0
BUILD=1
CONFLUENT=1
CLUSTER=1
DATA_ROOT=${BENCH_DATA_DIR:-/tmp/gregor-bench}
OUT=$ROOT/bench-results
while [[ $# -gt 0 ]]; do
  case $1 in
    --full) FULL=1 ;;
    --secs) SECS=$2; shift ;;
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --no-confluent) CONFLUENT=0 ;;
    --no-cluster) CLUSTER=0 ;;
    --data-dir) DATA_ROOT=$2; shift ;;
    --out) OUT=$2; shift ;;
    -h|--help) sed -n 2,11p "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
GREGOR=$TARGET_DIR/release/gregor
LOADGEN=$TARGET_DIR/release/examples/loadgen
SCEN_BYTES=$((1 << 30))                       # per produce scenario
INGEST_BYTES=$((2 * 1000 * 1000 * 1000))      # footprint ingest: 2 GB, 10 GB with --full
FETCH_BYTES=$((1 << 30))                      # the log the fetch rows read back
E2E_SECS=5
E2E_RATES="1000 10000 50000"
if [[ $FULL == 1 ]]; then INGEST_BYTES=$((10 * 1000 * 1000 * 1000)); fi
if [[ $QUICK == 1 ]]; then
  # Smoke-test mode for developing this script: every section, tiny budgets.
  SECS=1; SCEN_BYTES=$((64 << 20)); INGEST_BYTES=$((256 << 20)); FETCH_BYTES=$((128 << 20))
  E2E_SECS=2
fi
# anyhow prints backtraces when RUST_BACKTRACE is set; keep error lines short.
export RUST_LIB_BACKTRACE=0 RUST_BACKTRACE=0
# The broker logs at info; a chattier filter inherited from the shell would cost it CPU.
export RUST_LOG=${BENCH_RUST_LOG:-info}

START_TS=$(date +%s)
mkdir -p "$DATA_ROOT" "$OUT"
WORK=$(mktemp -d "$DATA_ROOT/run.XXXXXX")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
BROKER_PID=
ADDR=

log() { printf '[bench %4ds] %s\n' $(($(date +%s) - START_TS)) "$*" >&2; }

cleanup() {
  stop_broker || true
  stop_cluster || true
  rm -rf "$WORK/data" "$WORK/startup" "$WORK/fetchlog"
}
trap cleanup EXIT

if [[ $BUILD == 1 ]]; then
  log "building release broker and loadgen into $TARGET_DIR"
  cargo build --release --bin gregor --example loadgen >&2
fi
[[ -x $GREGOR && -x $LOADGEN ]] || { echo "bench.sh: build $GREGOR and $LOADGEN first" >&2; exit 2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# record KIND NAME JSON-PARAMS CMD...: runs CMD (which prints one JSON object) under a time
# limit and appends {"kind","name","params","data"} to the results; failures become "error".
record() {
  local kind=$1 name=$2 params=$3
  shift 3
  local out err rc=0
  err=$WORK/step.err
  out=$(timeout 300 "$@" 2>"$err") || rc=$?
  if [[ $rc == 0 && $out == \{* ]]; then
    printf '{"kind":"%s","name":"%s","params":%s,"data":%s}\n' "$kind" "$name" "$params" "$out" >>"$RESULTS"
  else
    local msg
    msg=$(tail -c 400 "$err" | tr '\n"\\' '   ')
    log "FAILED $kind/$name (rc=$rc): $msg"
    printf '{"kind":"%s","name":"%s","params":%s,"error":"rc=%s %s"}\n' "$kind" "$name" "$params" "$rc" "$msg" >>"$RESULTS"
  fi
}

note() {
  python3 -c 'import json,sys; print(json.dumps({"kind": "note", "name": sys.argv[1], "text": sys.argv[2]}))' \
    "$1" "$2" >>"$RESULTS"
}

# start_broker [--set k=v ...]: a fresh data directory and port for every scenario, so no
# scenario inherits another's segments, page cache or open files.
start_broker() {
  stop_broker
  rm -rf "$WORK/data"
  mkdir -p "$WORK/data"
  local port
  port=$(free_port)
  ADDR=127.0.0.1:$port
  "$GREGOR" --listeners "PLAINTEXT://$ADDR" --log-dirs "$WORK/data" "$@" 2>>"$WORK/broker.log" &
  BROKER_PID=$!
  "$LOADGEN" wait-ready --addr "$ADDR" --timeout 30 >/dev/null
}

# stop_broker: SIGTERM (a clean shutdown, as in production), SIGKILL only after 30 s.
stop_broker() {
  [[ -n $BROKER_PID ]] || return 0
  kill -TERM "$BROKER_PID" 2>/dev/null || true
  for _ in $(seq 1 300); do
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$BROKER_PID" 2>/dev/null; then
    log "broker $BROKER_PID ignored SIGTERM for 30 s; killing it"
    kill -KILL "$BROKER_PID" 2>/dev/null || true
    note "broker-kill" "broker did not exit within 30 s of SIGTERM"
  fi
  wait "$BROKER_PID" 2>/dev/null || true
  BROKER_PID=
}

# start_cluster N: N brokers, each also a voter of the metadata quorum (combined mode, as a
# bare `gregor` runs), on 127.0.0.1 with fresh data directories; CLUSTER_ADDRS[i] is node
# i+1's client address. All N share this machine's cores with the load generator.
CLUSTER_PIDS=()
CLUSTER_ADDRS=()
start_cluster() {
  stop_cluster
  local n=$1 i voters="" ports=() cports=()
  for ((i = 1; i <= n; i++)); do
    ports+=("$(free_port)"); cports+=("$(free_port)")
    voters+="${voters:+,}$i@127.0.0.1:${cports[i - 1]}"
  done
  for ((i = 1; i <= n; i++)); do
    rm -rf "$WORK/cluster/$i"; mkdir -p "$WORK/cluster/$i"
    "$GREGOR" --set "node.id=$i" \
      --set "listeners=PLAINTEXT://127.0.0.1:${ports[i - 1]},CONTROLLER://127.0.0.1:${cports[i - 1]}" \
      --set "controller.quorum.voters=$voters" --set "log.dirs=$WORK/cluster/$i" \
      2>>"$WORK/cluster-$i.log" &
    CLUSTER_PIDS+=($!)
    CLUSTER_ADDRS+=("127.0.0.1:${ports[i - 1]}")
  done
  for addr in "${CLUSTER_ADDRS[@]}"; do
    "$LOADGEN" wait-ready --addr "$addr" --timeout 60 >/dev/null
  done
}

stop_cluster() {
  ((${#CLUSTER_PIDS[@]})) || return 0
  kill -TERM "${CLUSTER_PIDS[@]}" 2>/dev/null || true
  for pid in "${CLUSTER_PIDS[@]}"; do
    for _ in $(seq 1 300); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  CLUSTER_PIDS=()
  CLUSTER_ADDRS=()
  rm -rf "$WORK/cluster"
}

# ---------------------------------------------------------------- confluent-kafka venv
PY=
if [[ $CONFLUENT == 1 ]]; then
  for cand in "$ROOT/.venv/bin/python" /tmp/benchvenv/bin/python; do
    if [[ -x $cand ]] && "$cand" -c 'import confluent_kafka' 2>/dev/null; then PY=$cand; break; fi
  done
  if [[ -z $PY ]]; then
    log "creating /tmp/benchvenv with confluent-kafka"
    if python3 -m venv /tmp/benchvenv >&2 && /tmp/benchvenv/bin/pip install -q confluent-kafka >&2; then
      PY=/tmp/benchvenv/bin/python
    else
      note "confluent" "confluent-kafka could not be installed; librdkafka rows skipped"
    fi
  fi
fi

# The librdkafka client, generated here so the suite stays two files. Bounded by --secs and
# --max-bytes; prints one JSON object.
cat >"$WORK/cfk.py" <<'PYEOF'
"""confluent-kafka (librdkafka) producer/consumer for scripts/bench.sh."""
import argparse, json, random, sys, time
from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING

WORDS = ("user order id status ok error timestamp region eu-west us-east amount currency EUR "
         "USD item quantity price session click view page /checkout /cart /home true false "
         "null level info warn latency_ms request").split()

def values(size, n=1024):
    # Text-like values (same shape as loadgen's) so lz4/zstd see realistic input.
    rnd = random.Random(1)
    out = []
    for _ in range(n):
        s = ""
        while len(s) < size:
            s += "%s=%04d " % (rnd.choice(WORDS), rnd.randrange(10000))
        out.append(s[:size].encode())
    return out

def produce(a):
    stats = {"delivered": 0, "errors": 0, "first_error": None}
    def on_delivery(err, msg):
        if err is None:
            stats["delivered"] += 1
        else:
            stats["errors"] += 1
            stats["first_error"] = stats["first_error"] or str(err)
    p = Producer({"bootstrap.servers": a.bootstrap, "linger.ms": 5, "acks": a.acks,
                  "compression.type": a.codec, "enable.idempotence": False,
                  "on_delivery": on_delivery})
    vals = values(a.record_size)
    limit = a.max_bytes // a.record_size
    t0 = time.monotonic(); end = t0 + a.secs; n = 0
    while n < limit:
        if (n & 1023) == 0:
            if time.monotonic() >= end:
                break
            p.poll(0)
        try:
            p.produce(a.topic, vals[n & 1023])
            n += 1
        except BufferError:
            p.poll(0.001)
    left = p.flush(30)
    secs = time.monotonic() - t0
    b = stats["delivered"] * a.record_size
    return {"records": stats["delivered"], "attempted": n, "undelivered": left,
            "errors": stats["errors"], "first_error": stats["first_error"], "secs": secs,
            "mb_s": b / 1e6 / secs, "logical_mb_s": b / 1e6 / secs, "records_s": stats["delivered"] / secs,
            "acks": a.acks, "codec": a.codec, "record_size": a.record_size}

def consume(a):
    c = Consumer({"bootstrap.servers": a.bootstrap, "group.id": "bench-%d" % time.time_ns(),
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    parts = [TopicPartition(a.topic, p, OFFSET_BEGINNING) for p in range(a.partitions)]
    want = sum(c.get_watermark_offsets(TopicPartition(a.topic, p), timeout=10)[1]
               for p in range(a.partitions))
    c.assign(parts)
    t0 = time.monotonic(); end = t0 + a.secs; n = 0; b = 0; errors = 0
    while n < want and time.monotonic() < end:
        for m in c.consume(num_messages=10000, timeout=1.0):
            if m.error():
                errors += 1
                continue
            n += 1
            b += len(m.value())
    secs = time.monotonic() - t0
    c.close()
    return {"records": n, "expected": want, "bytes": b, "secs": secs, "mb_s": b / 1e6 / secs,
            "errors": errors, "reached_end": n >= want}

ap = argparse.ArgumentParser()
ap.add_argument("mode", choices=["produce", "consume"])
ap.add_argument("--bootstrap", required=True)
ap.add_argument("--topic", required=True)
ap.add_argument("--partitions", type=int, default=1)
ap.add_argument("--record-size", type=int, default=1024)
ap.add_argument("--acks", default="1")
ap.add_argument("--codec", default="none")
ap.add_argument("--secs", type=float, default=3.0)
ap.add_argument("--max-bytes", type=int, default=1 << 30)
a = ap.parse_args()
print(json.dumps(produce(a) if a.mode == "produce" else consume(a)))
PYEOF

# ---------------------------------------------------------------- baselines
log "baselines: loopback TCP, synced sequential writes, fdatasync latency (disk of $DATA_ROOT)"
record baseline loopback '{}' "$LOADGEN" loopback --conns 4 --secs "$SECS"
record baseline sync_write_1m '{"block":1048576}' "$LOADGEN" sync-write --dir "$WORK" --block $((1 << 20)) --secs "$SECS"
# 64 KiB: the batch size loadgen sends per partition, i.e. what one append hands the log.
record baseline sync_write_64k '{"block":65536}' "$LOADGEN" sync-write --dir "$WORK" --block 65536 --secs "$SECS"
# The page-cache write alone (no sync): with loopback's CPU cost it is the kernel's floor for
# an acks=1 produce, which must both receive the bytes and write them to a file.
record baseline buffered_write_64k '{"block":65536}' "$LOADGEN" sync-write --dir "$WORK" --block 65536 --secs "$SECS" --max-bytes $((512 << 20)) --no-sync
record baseline fsync_latency '{}' "$LOADGEN" fsync-latency --dir "$WORK" --count 3000 --secs 5

# ---------------------------------------------------------------- produce
for size in 100 1024; do
  for parts in 1 8; do
    for acks in 1 -1; do
      for codec in none lz4 zstd; do
        start_broker
        name="loadgen-${size}B-${parts}p-acks${acks/-1/all}-$codec"
        log "produce $name"
        params=$(printf '{"client":"loadgen","record_size":%s,"partitions":%s,"acks":"%s","codec":"%s"}' \
          "$size" "$parts" "${acks/-1/all}" "$codec")
        record produce "$name" "$params" "$LOADGEN" produce --addr "$ADDR" --topic "p$parts" \
          --partitions "$parts" --record-size "$size" --acks "$acks" --codec "$codec" \
          --secs "$SECS" --max-bytes "$SCEN_BYTES" --pid "$BROKER_PID"
        if [[ -n $PY ]]; then
          start_broker
          "$LOADGEN" create --addr "$ADDR" --topic "p$parts" --partitions "$parts" >/dev/null
          name="rdkafka-${size}B-${parts}p-acks${acks/-1/all}-$codec"
          log "produce $name"
          params=${params/loadgen/rdkafka}
          record produce "$name" "$params" "$PY" "$WORK/cfk.py" produce --bootstrap "$ADDR" \
            --topic "p$parts" --record-size "$size" --acks "${acks/-1/all}" --codec "$codec" \
            --secs "$SECS" --max-bytes "$SCEN_BYTES"
        fi
      done
    done
  done
done

# ---------------------------------------------------------------- replication
# Three brokers on this machine; every partition led by node 1 (so loadgen's one target serves
# the whole topic), with its replicas on 1 only or on 1, 2 and 3. acks=all on RF=3 is answered
# once the two followers have fetched and fsynced the data too; the RF=1 row, in the same
# cluster and run, is its baseline.
if [[ $CLUSTER == 1 ]]; then
  stop_broker
  log "replication: starting a 3-broker cluster"
  start_cluster 3
  for scen in "1 -1" "3 -1" "3 1"; do
    read -r rf acks <<<"$scen"
    replicas=1; [[ $rf == 3 ]] && replicas=1,2,3
    topic="rf$rf-acks${acks/-1/all}"
    "$LOADGEN" create --addr "${CLUSTER_ADDRS[0]}" --topic "$topic" --partitions 8 --replicas "$replicas" >/dev/null
    name="cluster-1024B-8p-rf$rf-acks${acks/-1/all}"
    log "produce $name"
    record replication "$name" "{\"client\":\"loadgen\",\"record_size\":1024,\"partitions\":8,\"rf\":$rf,\"acks\":\"${acks/-1/all}\"}" \
      "$LOADGEN" produce --addr "${CLUSTER_ADDRS[0]}" --topic "$topic" --partitions 8 \
      --record-size 1024 --acks "$acks" --codec none --secs "$SECS" --max-bytes "$SCEN_BYTES" \
      --pid "${CLUSTER_PIDS[0]}"
  done
  stop_cluster
fi

# ---------------------------------------------------------------- fetch
log "fetch: writing a $((FETCH_BYTES >> 20)) MiB log (4 partitions, 1 KiB records)"
start_broker
record setup fetch_source '{}' "$LOADGEN" produce --addr "$ADDR" --topic fetchsrc --partitions 4 \
  --record-size 1024 --acks 1 --secs 120 --max-bytes "$FETCH_BYTES"
# cold_read: evict the broker's files from the page cache, falling back to drop_caches only
# when fadvise left more than 5% resident (it is global: other users lose their cache too).
cold_read() {
  local res after
  res=$("$LOADGEN" evict --dir "$WORK/data")
  after=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["cached_after_pct"])' "$res")
  local method=fadvise
  if python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > 5 else 1)' "$after"; then
    if sync && (echo 1 >/proc/sys/vm/drop_caches) 2>/dev/null; then
      method=drop_caches
    else
      method="none (fadvise left ${after}% cached and drop_caches is not permitted)"
    fi
    after=$("$LOADGEN" cached --dir "$WORK/data")
  fi
  note "cold-$1" "page cache eviction via $method; $res; after: $after"
}
for pass in hot cold; do
  [[ $pass == cold ]] && cold_read loadgen
  record fetch "loadgen-$pass" "{\"client\":\"loadgen\",\"cache\":\"$pass\",\"cached_pct\":$("$LOADGEN" cached --dir "$WORK/data" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cached_pct"])')}" \
    "$LOADGEN" fetch --addr "$ADDR" --topic fetchsrc --partitions 4 --conns 2 --secs 60 --pid "$BROKER_PID"
done
if [[ -n $PY ]]; then
  for pass in hot cold; do
    [[ $pass == cold ]] && cold_read rdkafka
    record fetch "rdkafka-$pass" "{\"client\":\"rdkafka\",\"cache\":\"$pass\",\"cached_pct\":$("$LOADGEN" cached --dir "$WORK/data" | python3 -c 'import json,sys; print(json.load(sys.stdin)["cached_pct"])')}" \
      "$PY" "$WORK/cfk.py" consume --bootstrap "$ADDR" --topic fetchsrc --partitions 4 --secs 60
  done
fi

# ---------------------------------------------------------------- end-to-end latency
for rate in $E2E_RATES; do
  start_broker
  log "e2e latency at $rate records/s, acks=all (fsync)"
  record e2e "e2e-$rate" "{\"rate\":$rate,\"acks\":\"all\"}" \
    "$LOADGEN" --threads 2 e2e --addr "$ADDR" --topic lat --rate "$rate" --secs "$E2E_SECS" --acks -1 --pid "$BROKER_PID"
done

# ---------------------------------------------------------------- footprint
stop_broker
log "footprint: start-up (empty), idle RSS"
rm -rf "$WORK/startup"; mkdir -p "$WORK/startup"
record footprint startup_empty '{}' "$LOADGEN" startup --bin "$GREGOR" --dir "$WORK/startup" \
  --port "$(free_port)" --log "$WORK/startup-empty.log"
log "footprint: 1,000 partitions, then time the restart"
rm -rf "$WORK/data"; mkdir -p "$WORK/data"
start_broker
record footprint create_1000_partitions '{}' "$LOADGEN" create --addr "$ADDR" --topic many --partitions 1000
stop_broker
record footprint startup_1000_partitions '{}' "$LOADGEN" startup --bin "$GREGOR" --dir "$WORK/data" \
  --port "$(free_port)" --log "$WORK/startup-1000.log"
log "footprint: ingest $((INGEST_BYTES / 1000000)) MB (1 KiB records, 8 partitions, acks=1)"
start_broker
record footprint ingest "{\"bytes\":$INGEST_BYTES}" "$LOADGEN" produce --addr "$ADDR" --topic ingest \
  --partitions 8 --record-size 1024 --acks 1 --secs 280 --max-bytes "$INGEST_BYTES" --pid "$BROKER_PID"
stop_broker
# Start-up after a clean shutdown should not depend on how much data is on disk; this row
# shows whether it does.
log "footprint: restart over the ingested data"
record footprint startup_with_data "{\"bytes\":$INGEST_BYTES}" "$LOADGEN" startup --bin "$GREGOR" \
  --dir "$WORK/data" --port "$(free_port)" --log "$WORK/startup-data.log"

# ---------------------------------------------------------------- report
cat >"$WORK/report.py" <<'PYEOF'
"""Turns results.jsonl into latest.md / latest.json with ratios and pass/miss per target."""
import json, sys, time, subprocess

results_path, out_dir, command, total_secs = sys.argv[1:5]
rows = [json.loads(l) for l in open(results_path) if l.strip()]
by = {(r["kind"], r["name"]): r for r in rows}

def data(kind, name):
    r = by.get((kind, name))
    return r.get("data") if r else None

def g(d, *path):
    for p in path:
        if d is None:
            return None
        d = d.get(p)
    return d

loop = g(data("baseline", "loopback"), "mb_s")
sw1m = g(data("baseline", "sync_write_1m"), "mb_s")
sw64k = g(data("baseline", "sync_write_64k"), "mb_s")
fsync_p99 = g(data("baseline", "fsync_latency"), "latency_us", "p99")

def ratio(v, base):
    return None if v is None or not base else v / base

table = []  # dicts: section, name, value, unit, baseline, ratio, target, status, notes

def add(section, name, value, unit, base_name=None, base=None, target=None, ok=None, notes=""):
    table.append({"section": section, "name": name, "value": value, "unit": unit,
                  "baseline": base_name, "ratio": ratio(value, base) if base_name else None,
                  "target": target, "status": None if ok is None else ("pass" if ok else "miss"),
                  "notes": notes})

def contended(d):
    # Broker threads that were runnable but got no CPU: other processes had the cores.
    w = d.get("broker_runq_wait_s")
    if w is None or not d.get("secs"):
        return ""
    return ", broker waited %.2f s for a CPU%s" % (w, " (CONTENDED)" if w > 0.25 * d["secs"] else "")

def check(v, pred):
    return None if v is None else bool(pred(v))

def cpu_note(name):
    c = g(data("baseline", name), "cpu_s_per_gb")
    return "" if c is None else "%.2f CPU-s/GB" % c

add("baseline", "loopback TCP (4 conns, 1 MiB writes)", loop, "MB/s", notes=cpu_note("loopback") + " (sender + sink)")
add("baseline", "sequential write + fdatasync, 1 MiB", sw1m, "MB/s", notes=cpu_note("sync_write_1m"))
add("baseline", "sequential write + fdatasync, 64 KiB (loadgen batch)", sw64k, "MB/s", notes=cpu_note("sync_write_64k"))
bw = data("baseline", "buffered_write_64k")
add("baseline", "sequential write, 64 KiB, no sync (page cache)", g(bw, "mb_s"), "MB/s", notes=cpu_note("buffered_write_64k"))
lc, bc = g(data("baseline", "loopback"), "cpu_s_per_gb"), g(bw, "cpu_s_per_gb")
if lc is not None and bc is not None:
    add("baseline", "kernel CPU floor of an acks=1 produce (receive half of loopback + page-cache write)",
        lc / 2 + bc, "CPU-s/GB", notes="compare with the broker CPU-s/GB of the produce rows")
fl = g(data("baseline", "fsync_latency"), "latency_us")
if fl:
    add("baseline", "4 KiB write + fdatasync p50", fl["p50"] / 1000, "ms")
    add("baseline", "4 KiB write + fdatasync p99", fl["p99"] / 1000, "ms")

def produced(kind, label_of):
    """Each produce-shaped row of `kind`: (params, label, data, record MB/s, notes so far).
    A failed step becomes an ERROR row here and is not yielded."""
    for r in rows:
        if r["kind"] != kind:
            continue
        p = r["params"]
        label = label_of(p)
        if "error" in r:
            add(kind, label, None, "MB/s", notes="ERROR " + r["error"][:120])
            continue
        d = r["data"]
        yield p, label, d, d.get("logical_mb_s", d.get("mb_s")), "%.0f rec/s" % d.get("records_s", 0)

for p, label, d, v, notes in produced("produce", lambda p: "%s %sB %sp acks=%s %s" % (
        p["client"], p["record_size"], p["partitions"], p["acks"], p["codec"])):
    if p["codec"] != "none" and "mb_s" in d and p["client"] == "loadgen":
        notes += ", wire %.0f MB/s" % d["mb_s"]
    if d.get("broker_cpu_s_per_gb") is not None:
        notes += ", broker %.2f CPU-s/GB (%.0f%% sys)" % (
            d["broker_cpu_s_per_gb"], 100 * d.get("broker_sys_s", 0) / max(d.get("broker_cpu_s", 0), 1e-9))
    if d.get("errors"):
        notes += ", %s ERRORS (first %s)" % (d["errors"], d.get("first_error"))
    notes += contended(d)
    target = ok = None
    loadgen_plain = p["client"] == "loadgen" and p["codec"] == "none"
    if p["acks"] == "1":
        if loadgen_plain and p["record_size"] == 1024:
            target = ">= 0.5 x loopback"
            ok = check(ratio(v, loop), lambda x: x >= 0.5)
        add("produce", label, v, "MB/s", "loopback", loop, target, ok, notes)
    else:
        if loadgen_plain:
            target = ">= 0.8 x synced write"
            ok = check(ratio(v, sw1m), lambda x: x >= 0.8)
        notes += ", %.2f x 64 KiB synced write" % (ratio(v, sw64k) or 0)
        add("produce", label, v, "MB/s", "synced write 1 MiB", sw1m, target, ok, notes)

rf1_all = g(data("replication", "cluster-1024B-8p-rf1-acksall"), "logical_mb_s")
single_all = g(data("produce", "loadgen-1024B-8p-acksall-none"), "logical_mb_s")
for p, label, d, v, notes in produced("replication", lambda p: "3 brokers, %sB %sp RF=%s acks=%s" % (
        p["record_size"], p["partitions"], p["rf"], p["acks"])):
    if d.get("broker_cpu_s_per_gb") is not None:
        notes += ", leader %.2f CPU-s/GB" % d["broker_cpu_s_per_gb"]
    if p["rf"] == 1 and single_all:
        notes += ", %.2f x the single-broker acks=all row" % (v / single_all)
    notes += contended(d)
    if p["rf"] == 1:
        add("replication", label, v, "MB/s", "synced write 1 MiB", sw1m, notes=notes)
    else:
        add("replication", label, v, "MB/s", "RF=1 acks=all, same cluster", rf1_all, notes=notes)

for r in rows:
    if r["kind"] != "fetch":
        continue
    p = r["params"]
    label = "%s fetch, %s (%.0f%% cached before)" % (p["client"], "page cache" if p["cache"] == "hot" else "cold file", p.get("cached_pct", -1))
    if "error" in r:
        add("fetch", label, None, "MB/s", notes="ERROR " + r["error"][:120])
        continue
    d = r["data"]
    target = ok = None
    if p["client"] == "loadgen" and p["cache"] == "hot":
        target = ">= 0.7 x loopback"
        ok = check(ratio(d["mb_s"], loop), lambda x: x >= 0.7)
    notes = "%d records%s" % (d.get("records", 0), "" if d.get("reached_end") else ", did NOT reach the end")
    if d.get("broker_cpu_s_per_gb") is not None:
        notes += ", broker %.2f CPU-s/GB (%.0f%% sys)" % (
            d["broker_cpu_s_per_gb"], 100 * d["broker_sys_s"] / max(d["broker_user_s"] + d["broker_sys_s"], 1e-9))
    notes += contended(d)
    add("fetch", label, d["mb_s"], "MB/s", "loopback", loop, target, ok, notes)

for r in rows:
    if r["kind"] != "e2e":
        continue
    rate = r["params"]["rate"]
    if "error" in r:
        add("e2e", "e2e latency at %d rec/s" % rate, None, "ms", notes="ERROR " + r["error"][:120])
        continue
    d = r["data"]; l = d.get("latency_us") or {}
    notes = "achieved %.0f rec/s, %d/%d received" % (d["achieved_rate"], d["received"], d["sent"])
    notes += contended(d)
    if d.get("errors"):
        notes += ", %d produce errors" % d["errors"]
    for q in ("p50", "p99", "p999"):
        v = l.get(q)
        v = None if v is None else v / 1000
        target = ok = None
        if q == "p99" and rate == 10000:
            target = "<= 5 ms"
            ok = check(v, lambda x: x <= 5)
        base = fsync_p99 / 1000 if (q == "p99" and fsync_p99) else None
        add("e2e", "e2e %s at %d rec/s, acks=all" % (q.replace("p999", "p99.9"), rate), v, "ms",
            "fdatasync p99" if base else None, base, target, ok, notes if q == "p50" else "")

su = data("footprint", "startup_empty")
if su:
    add("footprint", "idle RSS (1 s after ready)", su["idle"]["rss_kb"] / 1024, "MB", target="<= 20 MB",
        ok=check(su["idle"]["rss_kb"] / 1024, lambda x: x <= 20))
    add("footprint", "start-up to ApiVersions answer, empty", su["ready_ms"], "ms", target="<= 50 ms",
        ok=check(su["ready_ms"], lambda x: x <= 50), notes="broker logged %s ms" % su.get("logged_ready_ms"))
cr = data("footprint", "create_1000_partitions")
if cr:
    add("footprint", "CreateTopics with 1,000 partitions", cr["ms"], "ms")
s1k = data("footprint", "startup_1000_partitions")
if s1k:
    add("footprint", "restart to ApiVersions answer, 1,000 partitions", s1k["ready_ms"], "ms", target="<= 1000 ms",
        ok=check(s1k["ready_ms"], lambda x: x <= 1000),
        notes="broker logged %s ms; idle RSS %.1f MB" % (s1k.get("logged_ready_ms"), s1k["idle"]["rss_kb"] / 1024))
sd = data("footprint", "startup_with_data")
if sd:
    gb = by[("footprint", "startup_with_data")]["params"]["bytes"] / 1e9
    add("footprint", "restart to ApiVersions answer, %.1f GB in 8 partitions" % gb, sd["ready_ms"], "ms",
        notes="broker logged %s ms (no target; clean shutdown before)" % sd.get("logged_ready_ms"))
ing = data("footprint", "ingest")
if ing:
    b = ing.get("broker", {})
    add("footprint", "peak RSS (VmHWM) after ingesting %.1f GB" % (ing["logical_bytes"] / 1e9),
        b.get("hwm_kb", 0) / 1024, "MB", target="<= 200 MB", ok=check(b.get("hwm_kb", 0) / 1024, lambda x: x <= 200),
        notes="%.0f MB/s, %d threads, broker user %.1f s + sys %.1f s" % (
            ing["logical_mb_s"], b.get("threads", 0), ing.get("broker_user_s", 0), ing.get("broker_sys_s", 0)))
    add("footprint", "broker CPU-seconds per GB ingested", ing.get("broker_cpu_s_per_gb"), "CPU-s/GB",
        notes="1 KiB records, 8 partitions, acks=1")
for r in rows:
    if "error" in r and r["kind"] in ("baseline", "footprint", "setup"):
        add(r["kind"], r["name"], None, "", notes="ERROR " + r["error"][:160])

notes = [r for r in rows if r["kind"] == "note"]
try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip())
except OSError:
    commit, dirty = "?", False
meta = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
        "commit": commit + ("+dirty" if dirty else ""), "duration_s": float(total_secs),
        "nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip(),
        "loadavg": open("/proc/loadavg").read().split()[:3]}

def fmt(v, unit):
    if v is None:
        return "—"
    return ("%.0f" % v) if abs(v) >= 100 else ("%.2f" % v if abs(v) < 10 else "%.1f" % v)

lines = ["# Gregor benchmark results", "",
         "`%s` — %s, commit %s, %s cores, load average %s, took %.0f s" % (
             meta["command"], meta["when"], meta["commit"], meta["nproc"], " ".join(meta["loadavg"]), meta["duration_s"]), "",
         "| section | figure | value | unit | ratio | ratio to | target | result | notes |",
         "|---|---|---:|---|---:|---|---|---|---|"]
for t in table:
    lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
        t["section"], t["name"], fmt(t["value"], t["unit"]), t["unit"],
        "" if t["ratio"] is None else "%.2f" % t["ratio"], t["baseline"] or "",
        t["target"] or "", (t["status"] or "").upper(), t["notes"]))
if notes:
    lines += ["", "Notes:"] + ["- %s: %s" % (n["name"], n["text"]) for n in notes]
targets = [t for t in table if t["status"]]
lines += ["", "Targets: %d pass, %d miss." % (sum(t["status"] == "pass" for t in targets),
                                              sum(t["status"] == "miss" for t in targets))]
md = "\n".join(lines) + "\n"
open(out_dir + "/latest.md", "w").write(md)
json.dump({"meta": meta, "baselines": {"loopback_mb_s": loop, "sync_write_1m_mb_s": sw1m,
           "sync_write_64k_mb_s": sw64k, "fsync_p99_us": fsync_p99},
           "table": table, "raw": rows}, open(out_dir + "/latest.json", "w"), indent=1)
print(md)
PYEOF
python3 "$WORK/report.py" "$RESULTS" "$OUT" "bash scripts/bench.sh${ARGS:+ $ARGS}" "$(($(date +%s) - START_TS))"
cp "$RESULTS" "$OUT/latest.results.jsonl"
log "done: $OUT/latest.md, $OUT/latest.json (raw lines: $OUT/latest.results.jsonl)"
