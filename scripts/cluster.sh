#!/usr/bin/env bash
# Starts a 3-node Gregor cluster on this machine: three combined (broker + controller) nodes on
# one Raft metadata quorum. Clients: 127.0.0.1:9092,9093,9094; quorum: 127.0.0.1:9192,9193,9194;
# data in ./data-cluster/node-N, each node's stderr in ./data-cluster/node-N.log. Ctrl-C stops all three (clean shutdown).
#   bash scripts/cluster.sh [--set name=value ...]    # extra settings go to every node
# Uses $GREGOR_BIN if set, else target/release/gregor (built with cargo if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${GREGOR_BIN:-target/release/gregor}"
if [[ ! -x "$bin" ]]; then
  cargo build --release --bin gregor
fi
# gregor reads every GREGOR_* variable as a setting; GREGOR_BIN is this script's own.
unset GREGOR_BIN

voters="1@127.0.0.1:9192,2@127.0.0.1:9193,3@127.0.0.1:9194"
pids=()
skip=()
cleanup() {
  trap - EXIT
  ((${#pids[@]})) || return 0
  echo "stopping the cluster..."
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 0' INT TERM

# All three at once: a node serves only once a majority of the voters is up.
for n in 1 2 3; do
  dir="data-cluster/node-$n"
  mkdir -p "$dir"
  # The log is appended across runs: only lines after this count as this run's.
  touch "$dir.log"
  skip[n]=$(($(wc -l <"$dir.log") + 1))
  "$bin" --set node.id=$n \
    --set listeners=PLAINTEXT://127.0.0.1:909$((n + 1)),CONTROLLER://127.0.0.1:919$((n + 1)) \
    --set controller.quorum.voters=$voters \
    --set log.dirs="$dir" "$@" 2>>"$dir.log" &
  pids+=($!)
done

ready() { tail -n "+${skip[n]}" "data-cluster/node-$n.log" | grep -q "gregor is ready"; }
for n in 1 2 3; do
  log="data-cluster/node-$n.log"
  for _ in $(seq 300); do  # up to 30 s
    ready && break
    kill -0 "${pids[n - 1]}" 2>/dev/null || { echo "node $n exited; see $log" >&2; exit 1; }
    sleep 0.1
  done
  ready || { echo "node $n not ready after 30 s; see $log" >&2; exit 1; }
done

echo "3-node cluster ready. Logs: data-cluster/node-{1,2,3}.log"
echo "bootstrap.servers=127.0.0.1:9092,127.0.0.1:9093,127.0.0.1:9094"
echo "Ctrl-C stops all three."
# Until Ctrl-C, or until any node exits (then the others are stopped too).
wait -n "${pids[@]}" || true
echo "a node exited; see data-cluster/node-*.log" >&2
exit 1
