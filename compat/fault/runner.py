"""One fault-injection run, start to verdict: a 3-node cluster, the topics, the workloads, the
seeded nemesis for the given number of seconds, the heal and quiet period, a final read through
the leaders, the on-disk log of every replica, the checker, the liveness figures, and what is
kept.

    result = run_once(workdir, seed=7, seconds=60, mode="data")   # or mode="txn"
    result["counts"]   # {check: n}, all 0 for a pass
    result["kept"]     # directory with summary.json (and, when it failed, everything else)

Kept: every run writes `summary.json` (seed, counts, examples, liveness, nemesis timeline) to
its directory under GREGOR_FAULT_KEEP (default compat/results/fault/). A failing run also keeps
history.json, each node's stderr log and data directory there, and its path is printed.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import time
import traceback
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from cluster import Cluster

from . import checker, kafkalog
from . import netlab
from .nemesis import FAULTS, NET_FAULTS, Nemesis
from .workloads import AssignReader, GroupCommitter, History, IdempotentProducer, TxnProcessor

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_TOPIC = "fault-data"
TXN_IN, TXN_OUT = "fault-txn-in", "fault-txn-out"
PARTITIONS = 3
MIN_INSYNC = 2
# The lead's replication work reads this; older brokers accept it as a known Kafka setting.
EXTRA_ARGS = ["--set", "replica.lag.time.max.ms=3000"]
FINAL_READ_TIMEOUT_S = 60.0
QUIET_S = 3.0
FINAL_ISR_BOUND_S = 30.0


def keep_root() -> Path:
    return Path(os.environ.get("GREGOR_FAULT_KEEP", REPO_ROOT / "compat" / "results" / "fault"))


def create_topics(bootstrap: str, names: "list[str]", min_insync: int = MIN_INSYNC) -> None:
    a = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    config = {"min.insync.replicas": str(min_insync)}
    futs = a.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=3,
                                     config=config) for n in names],
                           operation_timeout=15, request_timeout=15)
    for f in futs.values():
        f.result(timeout=20)


def final_read(bootstrap: str, topic: str, read_committed: bool) -> "tuple[dict, dict]":
    """({p: {offset: value}}, {p: end}) reading every partition from the beginning to the end the
    leader reports now (high watermark; the last stable offset for read_committed)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "fault-final-read",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "isolation.level": "read_committed" if read_committed else "read_uncommitted",
                  "socket.timeout.ms": 10000, "log_level": 0})
    out: "dict[int, dict[int, str]]" = {p: {} for p in range(PARTITIONS)}
    try:
        ends = {}
        deadline = time.monotonic() + FINAL_READ_TIMEOUT_S
        for p in range(PARTITIONS):
            while True:
                try:
                    ends[p] = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                    break
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        pending = {p for p, e in ends.items() if e > 0}
        while pending and time.monotonic() < deadline:
            for m in c.consume(num_messages=1000, timeout=0.5):
                if m.error() is None:
                    out[m.partition()][m.offset()] = m.value().decode()
            for p in list(pending):
                # Position, not the last offset read: read_committed skips markers and aborts.
                pos = c.position([TopicPartition(topic, p)])[0].offset
                if pos >= ends[p]:
                    pending.discard(p)
        if pending:
            raise AssertionError(f"final read of {topic}: partitions {sorted(pending)} not read "
                                 f"to {ends} within {FINAL_READ_TIMEOUT_S}s")
        return out, ends
    finally:
        c.close()


def replica_logs(cluster: Cluster, topic: str, assignment: "dict[int, list[int]]"
                 ) -> "tuple[dict, list[str]]":
    """{p: {node: {offset: value} | None}} from each assigned replica's data directory, and the
    parse problems found (torn tails, CRC mismatches)."""
    out: "dict[int, dict[int, dict | None]]" = {}
    problems: "list[str]" = []
    for p, nodes in assignment.items():
        out[p] = {}
        for n in nodes:
            d = kafkalog.partition_dir(cluster.node(n).data_dir, topic, p)
            if not d.is_dir():
                out[p][n] = None
                continue
            log = kafkalog.read_partition_dir(d)
            out[p][n] = {o: (v.decode(errors="replace") if v is not None else None)
                         for o, v in log.data_records().items()}
            problems += [f"node {n} {topic}-{p}: {x}" for x in log.problems]
    return out, problems


def liveness(timeline: "list[dict]", produces: list) -> "dict[str, list]":
    """Per leader kill: seconds from the kill to the first acknowledged produce on that
    partition while the old leader was still down (so on a new leader); None when none came
    before the old leader returned. And per fault: heal to full ISR."""
    acks: "dict[int, list[float]]" = {}
    for r in produces:
        if r["ok"]:
            acks.setdefault(r["partition"], []).append(r["t"])
    for ts in acks.values():
        ts.sort()
    failover = []
    for ev in timeline:
        if ev["fault"] != "kill_leader" or "partition" not in ev:
            continue
        p, t_kill, t_back = ev["partition"], ev["t"], ev.get("healed_t", float("inf"))
        first = next((t for t in acks.get(p, []) if t_kill < t < t_back), None)
        failover.append({"partition": p, "node": ev["nodes"][0],
                         "kill_to_first_produce_s": None if first is None else first - t_kill,
                         "old_leader_down_s": ev["hold_s"]})
    heal = [{"fault": ev["fault"], "heal_to_full_isr_s": ev.get("heal_to_full_isr_s")}
            for ev in timeline]
    return {"leader_kill_to_first_produce": failover, "heal_to_full_isr": heal}


def run_once(workdir: Path, seed: int, seconds: float, mode: str = "data",
             faults: "tuple[str, ...]" = FAULTS, name: "str | None" = None,
             min_insync: int = MIN_INSYNC) -> dict:
    """One run; returns the summary (also written to the kept directory). `min_insync` other
    than 2 is for showing the checker at work on a broker that does not replicate (with 2,
    such a broker acknowledges nothing)."""
    workdir = Path(workdir)
    rng = random.Random(seed)
    print(f"fault run: seed={seed} seconds={seconds} mode={mode}", flush=True)
    lab = netlab.NetLab(3) if any(f in NET_FAULTS for f in faults) else None
    if lab is not None:
        cluster = Cluster(workdir / "cluster", size=3, extra_args=list(EXTRA_ARGS),
                          hosts=[lab.addr(i) for i in (1, 2, 3)],
                          netns=[lab.ns(i) for i in (1, 2, 3)])
    else:
        cluster = Cluster(workdir / "cluster", size=3, extra_args=list(EXTRA_ARGS))
    hist = History()
    summary: dict = {"seed": seed, "seconds": seconds, "mode": mode, "faults": list(faults),
                     "min_insync": min_insync}
    final: dict = {}
    notes: "list[str]" = []
    try:
        cluster.start()
        boot = cluster.bootstrap
        topics = [DATA_TOPIC] if mode == "data" else [TXN_IN, TXN_OUT]
        create_topics(boot, topics, min_insync)
        cluster.wait_metadata(lambda v: all(
            all(t in md["topics"] and len(md["topics"][t]["partitions"]) == PARTITIONS
                and all(x["leader"] >= 0 for x in md["topics"][t]["partitions"].values())
                for t in topics) for md in v.values()), what="topics led everywhere")
        if mode == "data":
            loads = [IdempotentProducer("p1", hist, boot, DATA_TOPIC, PARTITIONS),
                     IdempotentProducer("p2", hist, boot, DATA_TOPIC, PARTITIONS),
                     AssignReader("r1", hist, boot, DATA_TOPIC, PARTITIONS),
                     GroupCommitter("g1", hist, boot, DATA_TOPIC, "fault-group")]
            data_topic = DATA_TOPIC
        else:
            loads = [IdempotentProducer("feed", hist, boot, TXN_IN, PARTITIONS, rate_per_s=50),
                     TxnProcessor("tx1", hist, boot, TXN_IN, TXN_OUT, "fault-txn-group"),
                     AssignReader("rc1", hist, boot, TXN_OUT, PARTITIONS, read_committed=True)]
            data_topic = TXN_IN
        for w in loads:
            w.start()
        nem = Nemesis(cluster, rng, topics, data_topic, faults, lab=lab)
        t_start = time.monotonic()
        nem.run(until=t_start + seconds)
        # Final heal (the nemesis heals each fault; this catches a restart that failed).
        nem.heal()
        t_heal = time.monotonic()
        final["final_heal_to_full_isr_s"] = nem.wait_full_isr(FINAL_ISR_BOUND_S)
        time.sleep(QUIET_S)
        for w in loads:
            w.stop()
        for w in loads:
            w.join(timeout=60)
            if w.is_alive():
                # Where it is stuck (a client call that never returns, usually).
                frame = sys._current_frames().get(w.ident)
                where = "".join(traceback.format_stack(frame)[-4:]) if frame else "?"
                notes.append(f"workload {w.name} did not stop within 60 s; stuck in:\n{where}")
            if w.crash:
                notes.append(f"workload {w.name} crashed: {w.crash}")
        summary["nemesis"] = nem.timeline
        summary["heal_failures"] = nem.heal_failures
        summary["quiet_after_heal_s"] = time.monotonic() - t_heal

        md = nem.metadata() or {"topics": {}}
        assignment = {t: {p: v["replicas"] for p, v in md["topics"].get(t, {})
                          .get("partitions", {}).items()} for t in topics}
        summary["final_partitions"] = {t: md["topics"].get(t, {}).get("partitions")
                                       for t in topics}
        # The produced topic (data, or the transactional input) is read to its high watermark
        # for the produce checks; every topic's high watermarks bound the replica comparison.
        final["final_read"], hws = final_read(boot, data_topic, False)
        final["replica_hw"] = {f"{data_topic}/{p}": hw for p, hw in hws.items()}
        if mode == "txn":
            final["txn_final_read"], final["txn_final_lso"] = final_read(boot, TXN_OUT, True)
            _, hws = final_read(boot, TXN_OUT, False)
            final["replica_hw"].update({f"{TXN_OUT}/{p}": hw for p, hw in hws.items()})
        # Stop cleanly so the files are quiet while read (every append was fsynced anyway).
        for i in cluster.live_ids():
            try:
                cluster.stop(i)
            except Exception as e:  # a node that hangs on SIGTERM is a finding, not a crash
                notes.append(f"node {i} did not stop cleanly: {e}")
                cluster.kill(i)
        final["replicas"] = {}
        for t in topics:
            logs, problems = replica_logs(cluster, t, assignment[t])
            final["replicas"].update({f"{t}/{p}": v for p, v in logs.items()})
            notes += problems
        # Which assigned replicas hold a directory at all (a broker that does not replicate
        # creates none on the followers).
        summary["replica_dirs"] = {k: sorted(n for n, v in per.items() if v is not None)
                                   for k, per in final["replicas"].items()}
    except Exception as e:
        notes.append(f"run aborted: {type(e).__name__}: {e}")
    finally:
        cluster.close()
        if lab is not None:
            lab.close()

    history = {**hist.snapshot(), **final}
    results = checker.check(history)
    if "final_read" not in final:
        # Without the final read every acknowledgement would look lost: say "not checked"
        # instead (the aborted run fails through unhealed_or_unconverged).
        for k in ("lost_acknowledged", "duplicates", "offset_conflicts", "replicas_disagree"):
            results.pop(k, None)
        summary["not_checked"] = ["lost_acknowledged", "duplicates", "offset_conflicts",
                                  "replicas_disagree"]
    counts = checker.counts(results)
    # Beyond the checker: a run that could not heal, converge or finish is not a pass either.
    counts["unhealed_or_unconverged"] = (len(summary.get("heal_failures", []))
                                        + (final.get("final_heal_to_full_isr_s") is None)
                                        + sum(1 for n in notes if n.startswith(("run aborted",
                                                                                "workload"))))
    # A run that acknowledged nothing (or committed no transaction) has checked nothing.
    counts["no_progress"] = int(not any(r["ok"] for r in hist.produces)
                                or (mode == "txn"
                                    and not any(t["outcome"] == "committed" for t in hist.txns)))
    summary.update(
        counts=counts,
        examples={k: v["examples"] for k, v in results.items() if v["count"]},
        liveness={**liveness(summary.get("nemesis", []), hist.produces),
                  "final_heal_to_full_isr_s": final.get("final_heal_to_full_isr_s")},
        operations={"produced_ok": sum(1 for r in hist.produces if r["ok"]),
                    "produce_failed": sum(1 for r in hist.produces if not r["ok"]),
                    "reads": len(hist.reads), "commits": len(hist.commits),
                    "txns": {o: sum(1 for t in hist.txns if t["outcome"] == o)
                             for o in ("committed", "aborted", "unknown")},
                    "txn_reads": len(hist.txn_reads), "client_errors": len(hist.errors)},
        # The first distinct client errors, to tell a known broker bug from a new failure.
        client_errors=sorted({e["error"][:300] for e in hist.errors})[:20],
        notes=notes)
    summary["passed"] = all(v == 0 for v in counts.values())
    kept = keep_root() / (name or f"{mode}-seed{seed}-{int(time.time())}")
    if kept.exists():  # a replay of the same seed: no stale history from the last one
        shutil.rmtree(kept)
    kept.mkdir(parents=True)
    (kept / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    if not summary["passed"]:
        (kept / "history.json").write_text(json.dumps(history, default=str))
        for i, n in cluster.nodes.items():
            dst = kept / f"node-{i}"
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(n.workdir, dst)
    summary["kept"] = str(kept)
    print(f"fault run seed={seed}: {'PASS' if summary['passed'] else 'FAIL'} counts={counts} "
          f"liveness={json.dumps(summary['liveness'], default=str)} kept={kept}", flush=True)
    return summary
