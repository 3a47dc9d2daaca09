"""The fault suite's checker: pure functions from a run's recorded history and final logs to
violation counts. Every count must be 0 for a run to pass.

A history is plain JSON-able data (see `history.History` for how the workloads fill it):

    produces   [{"producer", "seq", "value", "partition", "offset", "ok", "error", "t"}]
               one entry per produce attempt, written when its delivery report arrived; "ok"
               false means the client gave up (the record may or may not be in the log).
    reads      [{"reader", "partition", "offset", "value", "t"}]   records consumers saw
    hws        [{"reader", "partition", "hw", "t"}]  high watermarks as each consumer saw them,
               in the order it saw them (one entry per change)
    commits    [{"group", "partition", "offset", "source", "t"}]  offsets a group member
               committed ("commit", acknowledged) or read back ("fetch"), in order
    txns       [{"txn", "values", "outcome", "t"}]  one per transaction of the read-process-write
               workload: outcome "committed" / "aborted" (acknowledged by the coordinator) or
               "unknown" (the client lost track)
    txn_reads  [{"reader", "partition", "offset", "value"}]  read_committed reads of the output

Final state (after every fault is healed and the cluster is quiet):

    final_read      {partition: {offset: value}}  one consumer's read of every partition of the
                    produced topic up to its high watermark, through the leaders
    replicas        {"<topic>/<partition>": {node: {offset: value} | None}}  each assigned
                    replica's log as parsed from its data directory (None: no directory)
    replica_hw      {"<topic>/<partition>": hw}  the final high watermarks they are compared below
    txn_final_read  {partition: {offset: value}}  read_committed read of the output topic

Values are strings. Each check returns (count, examples) with at most a few examples, so a
failing run says what went wrong without reading the JSON.
"""

from __future__ import annotations

from collections import defaultdict

MAX_EXAMPLES = 5

Check = "tuple[int, list]"


def _ex(lst: list, item) -> None:
    if len(lst) < MAX_EXAMPLES:
        lst.append(item)


def _positions(final_read: "dict[int, dict[int, str]]") -> "dict[str, list[tuple[int, int]]]":
    """value -> [(partition, offset)] over a final read."""
    out: "dict[str, list[tuple[int, int]]]" = defaultdict(list)
    for p, recs in final_read.items():
        for o, v in recs.items():
            out[v].append((int(p), int(o)))
    return out


def lost_acknowledged(produces: list, final_read: dict) -> Check:
    """Acknowledged records (delivery report without error) missing from the final log."""
    present = _positions(final_read)
    n, ex = 0, []
    for r in produces:
        if r["ok"] and r["value"] not in present:
            n += 1
            _ex(ex, {"value": r["value"], "acked_at": (r["partition"], r["offset"])})
    return n, ex


def duplicates(produces: list, reads: list, final_read: dict) -> Check:
    """Values found at more than one (partition, offset): in the final log, or between the
    final log, the acknowledgements and what consumers read. Producers never send a value
    twice, so any second position is a duplicate (a retry written twice, or a record re-appended
    at a new offset after truncation)."""
    where: "dict[str, set[tuple[int, int]]]" = defaultdict(set)
    for v, poss in _positions(final_read).items():
        where[v].update(poss)
    for r in produces:
        if r["ok"]:
            where[r["value"]].add((r["partition"], r["offset"]))
    for r in reads:
        where[r["value"]].add((r["partition"], r["offset"]))
    n, ex = 0, []
    for v, poss in where.items():
        if len(poss) > 1:
            n += 1
            _ex(ex, {"value": v, "positions": sorted(poss)})
    return n, ex


def offset_conflicts(produces: list, reads: list, final_read: dict) -> Check:
    """(partition, offset) pairs that held two different values: an acknowledgement, a
    consumer's read and the final log must agree on what each offset holds."""
    seen: "dict[tuple[int, int], set[str]]" = defaultdict(set)
    for p, recs in final_read.items():
        for o, v in recs.items():
            seen[(int(p), int(o))].add(v)
    for r in produces:
        if r["ok"]:
            seen[(r["partition"], r["offset"])].add(r["value"])
    for r in reads:
        seen[(r["partition"], r["offset"])].add(r["value"])
    n, ex = 0, []
    for pos, vals in sorted(seen.items()):
        if len(vals) > 1:
            n += 1
            _ex(ex, {"position": pos, "values": sorted(vals)})
    return n, ex


def producer_order(produces: list) -> Check:
    """For one producer and partition, acknowledged offsets must grow with the producer's
    sequence (idempotence keeps per-partition order across retries): each inversion counts."""
    by: "dict[tuple[str, int], list[tuple[int, int]]]" = defaultdict(list)
    for r in produces:
        if r["ok"]:
            by[(r["producer"], r["partition"])].append((r["seq"], r["offset"]))
    n, ex = 0, []
    for key, pairs in sorted(by.items()):
        pairs.sort()
        for (s0, o0), (s1, o1) in zip(pairs, pairs[1:]):
            if o1 <= o0:
                n += 1
                _ex(ex, {"producer": key[0], "partition": key[1],
                         "seq_offset": [(s0, o0), (s1, o1)]})
    return n, ex


def hw_backwards(hws: list) -> Check:
    """High watermark decreases as observed by one consumer on one partition, in the order it
    observed them. (A newly elected leader may briefly report a lower one; it still counts.)"""
    last: "dict[tuple[str, int], int]" = {}
    n, ex = 0, []
    for h in hws:
        key = (h["reader"], h["partition"])
        if h["hw"] < 0:  # librdkafka's "not known yet"
            continue
        prev = last.get(key)
        if prev is not None and h["hw"] < prev:
            n += 1
            _ex(ex, {"reader": key[0], "partition": key[1], "from": prev, "to": h["hw"],
                     "t": h.get("t")})
        last[key] = h["hw"]
    return n, ex


def commits_backwards(commits: list) -> Check:
    """A group's committed offset for a partition lower than one committed (acknowledged) or
    read back before. A read-back with no offset (-1) after a commit counts: the commit is
    gone."""
    high: "dict[tuple[str, int], int]" = {}
    n, ex = 0, []
    for c in commits:
        key = (c["group"], c["partition"])
        off = c["offset"] if c["offset"] >= 0 else -1
        prev = high.get(key)
        if prev is not None and off < prev:
            n += 1
            _ex(ex, {"group": key[0], "partition": key[1], "from": prev, "to": off,
                     "source": c.get("source"), "t": c.get("t")})
        high[key] = max(off, prev if prev is not None else off)
    return n, ex


def aborted_read(txns: list, txn_reads: list, txn_final_read: dict) -> Check:
    """Records of aborted transactions seen by a read_committed reader."""
    aborted = {v: t["txn"] for t in txns if t["outcome"] == "aborted" for v in t["values"]}
    n, ex = 0, []
    seen = [(r["partition"], r["offset"], r["value"]) for r in txn_reads]
    seen += [(int(p), int(o), v) for p, recs in txn_final_read.items() for o, v in recs.items()]
    for p, o, v in seen:
        if v in aborted:
            n += 1
            _ex(ex, {"txn": aborted[v], "value": v, "at": (p, o)})
    return n, ex


def txn_partial(txns: list, txn_final_read: dict) -> Check:
    """Transactions whose records are only partly visible to a read_committed read of the
    whole output: a committed one must be visible whole, an aborted one not at all, and one of
    unknown outcome either way but never in part. A committed transaction with none of its
    records visible counts too (it was lost)."""
    visible = set(_positions(txn_final_read))
    n, ex = 0, []
    for t in txns:
        vals = t["values"]
        k = sum(1 for v in vals if v in visible)
        bad = (0 < k < len(vals)) or (t["outcome"] == "committed" and vals and k == 0)
        if bad:
            n += 1
            _ex(ex, {"txn": t["txn"], "outcome": t["outcome"], "visible": k, "of": len(vals)})
    return n, ex


def processed_twice(txn_final_read: dict) -> Check:
    """Input records whose output ("<txn>:<input>") is visible twice to read_committed: the
    read-process-write loop must turn each input into output exactly once."""
    outs: "dict[str, list[str]]" = defaultdict(list)
    for recs in txn_final_read.values():
        for v in recs.values():
            outs[v.split(":", 1)[-1]].append(v)
    n, ex = 0, []
    for inp, vs in outs.items():
        if len(vs) > 1:
            n += 1
            _ex(ex, {"input": inp, "outputs": vs})
    return n, ex


def replicas_disagree(replicas: dict, replica_hw: dict) -> Check:
    """Offsets below the final high watermark where the assigned replicas' on-disk logs do not
    all hold the same value (a replica missing the offset, or missing the partition directory,
    disagrees). Both maps are keyed by "<topic>/<partition>"."""
    n, ex = 0, []
    for key, per_node in sorted(replicas.items(), key=lambda kv: str(kv[0])):
        hw = int(replica_hw.get(key, 0))
        logs = {node: (recs or {}) for node, recs in per_node.items()}
        for o in range(hw):
            vals = {node: recs.get(o, recs.get(str(o), "<missing>")) for node, recs in logs.items()}
            if len(set(vals.values())) > 1:
                n += 1
                _ex(ex, {"partition": key, "offset": o, "values": vals})
    return n, ex


def _plus(a: Check, b: Check) -> Check:
    return a[0] + b[0], (a[1] + b[1])[:MAX_EXAMPLES]


def check(h: dict) -> "dict[str, dict]":
    """Every count of one run: {name: {"count": n, "examples": [...]}}. `h` holds the history
    and final-state keys named in the module docstring (missing ones count as empty)."""
    g = h.get
    produces, reads = g("produces", []), g("reads", [])
    final_read = g("final_read", {})
    results = {
        "lost_acknowledged": lost_acknowledged(produces, final_read),
        "duplicates": _plus(duplicates(produces, reads, final_read),
                            processed_twice(g("txn_final_read", {}))),
        "offset_conflicts": offset_conflicts(produces, reads, final_read),
        "producer_order": producer_order(produces),
        "hw_backwards": hw_backwards(g("hws", [])),
        "commits_backwards": commits_backwards(g("commits", [])),
        "aborted_read": aborted_read(g("txns", []), g("txn_reads", []), g("txn_final_read", {})),
        "txn_partial": txn_partial(g("txns", []), g("txn_final_read", {})),
        "replicas_disagree": replicas_disagree(g("replicas", {}), g("replica_hw", {})),
    }
    return {k: {"count": c, "examples": e} for k, (c, e) in results.items()}


def counts(results: "dict[str, dict]") -> "dict[str, int]":
    return {k: v["count"] for k, v in results.items()}


def passed(results: "dict[str, dict]") -> bool:
    return all(v["count"] == 0 for v in results.values())
