"""Unit tests of the fault suite's own code, no broker needed: each checker count is shown to be
0 on a clean synthetic history and to count exactly the violation planted in it, and the on-disk
log parser reads record batches (built here byte by byte from the v2 format) including
transactional control batches, headers, a torn tail and a bad CRC.
"""

from __future__ import annotations

import struct

import crc32c
import pytest

from fault import checker, kafkalog
from fault.nemesis import full_isr


# --------------------------------------------------------------------------- synthetic histories

def ack(producer, seq, partition, offset, value=None, ok=True):
    return {"producer": producer, "seq": seq, "value": value or f"{producer}-{seq}",
            "partition": partition, "offset": offset if ok else None, "ok": ok,
            "error": None if ok else "timed out", "t": float(seq)}


def clean() -> dict:
    """Two producers on two partitions, a reader, a group, transactions, three replicas: every
    count 0."""
    produces = [ack("a", 0, 0, 0), ack("a", 1, 1, 0), ack("a", 2, 0, 1), ack("b", 0, 0, 2),
                ack("b", 1, 1, 1), ack("b", 2, 1, 2, ok=False)]
    final = {0: {0: "a-0", 1: "a-2", 2: "b-0"}, 1: {0: "a-1", 1: "b-1"}}
    return {
        "produces": produces,
        "reads": [{"reader": "r", "partition": p, "offset": o, "value": v}
                  for p, recs in final.items() for o, v in recs.items()],
        "hws": [{"reader": "r", "partition": 0, "hw": h} for h in (1, 2, 2, 3)],
        "commits": [{"group": "g", "partition": 0, "offset": o, "source": s}
                    for o, s in ((1, "commit"), (1, "fetch"), (3, "commit"))],
        "txns": [{"txn": 1, "values": ["t1:x", "t1:y"], "outcome": "committed"},
                 {"txn": 2, "values": ["t2:z"], "outcome": "aborted"},
                 {"txn": 3, "values": ["t3:w"], "outcome": "unknown"}],
        "txn_reads": [{"reader": "rc", "partition": 0, "offset": 0, "value": "t1:x"}],
        "txn_final_read": {0: {0: "t1:x", 1: "t1:y"}},
        "final_read": final,
        "replica_hw": {"t/0": 3, "t/1": 2},
        "replicas": {f"t/{p}": {n: dict(recs) for n in (1, 2, 3)} for p, recs in final.items()},
    }


def test_clean_history_counts_nothing():
    res = checker.check(clean())
    assert checker.counts(res) == {k: 0 for k in res}, res
    assert checker.passed(res)


def only(res: dict, name: str, n: int) -> None:
    """`name` counts n and every other count is 0 (a check must not fire on another's fault)."""
    got = checker.counts(res)
    assert got[name] == n, res[name]
    assert {k: v for k, v in got.items() if k != name} == {k: 0 for k in got if k != name}, got
    assert res[name]["examples"], "a violation comes with an example"


def test_lost_acknowledged():
    h = clean()
    del h["final_read"][0][1]  # a-2 acknowledged at (0, 1), gone from the final log
    for n in (1, 2, 3):
        del h["replicas"]["t/0"][n][1]
    h["reads"] = [r for r in h["reads"] if r["value"] != "a-2"]
    res = checker.check(h)
    assert res["lost_acknowledged"]["count"] == 1
    assert res["lost_acknowledged"]["examples"][0]["value"] == "a-2"


def test_failed_produce_missing_is_not_lost():
    h = clean()  # b-2 failed and is nowhere: allowed
    assert checker.check(h)["lost_acknowledged"]["count"] == 0


def test_duplicate_in_final_log():
    h = clean()
    h["final_read"][1][2] = "a-1"  # a-1 written a second time
    res = checker.check(h)
    assert res["duplicates"]["count"] == 1
    assert res["duplicates"]["examples"][0]["positions"] == [(1, 0), (1, 2)]


def test_offset_holding_two_values():
    h = clean()
    h["reads"].append({"reader": "r2", "partition": 0, "offset": 1, "value": "zzz"})
    res = checker.check(h)
    assert res["offset_conflicts"]["count"] == 1
    assert res["offset_conflicts"]["examples"][0] == {"position": (0, 1), "values": ["a-2", "zzz"]}


def test_producer_order():
    h = clean()
    # a's seq 0 and 2 on partition 0 acknowledged at offsets 1 and 0: reordered. The final log
    # and reads say the same, so only the order check fires.
    h["produces"][0]["offset"], h["produces"][2]["offset"] = 1, 0
    h["final_read"][0] = {0: "a-2", 1: "a-0", 2: "b-0"}
    h["reads"] = [{"reader": "r", "partition": p, "offset": o, "value": v}
                  for p, recs in h["final_read"].items() for o, v in recs.items()]
    h["replicas"]["t/0"] = {n: dict(h["final_read"][0]) for n in (1, 2, 3)}
    only(checker.check(h), "producer_order", 1)


def test_hw_backwards_per_reader():
    h = clean()
    h["hws"] += [{"reader": "r", "partition": 0, "hw": 2},  # back from 3
                 {"reader": "s", "partition": 0, "hw": 1},  # another reader: its own order
                 {"reader": "r", "partition": 1, "hw": -1001}]  # unknown: ignored
    only(checker.check(h), "hw_backwards", 1)


def test_commits_backwards_and_lost_commit():
    h = clean()
    h["commits"] += [{"group": "g", "partition": 0, "offset": 2, "source": "fetch"},
                     {"group": "g", "partition": 0, "offset": -1001, "source": "fetch"},
                     {"group": "g", "partition": 1, "offset": 5, "source": "commit"}]
    only(checker.check(h), "commits_backwards", 2)


def test_aborted_read():
    h = clean()
    h["txn_reads"].append({"reader": "rc", "partition": 0, "offset": 7, "value": "t2:z"})
    only(checker.check(h), "aborted_read", 1)


def test_txn_partly_visible_and_committed_lost():
    h = clean()
    del h["txn_final_read"][0][1]  # committed t1 half visible
    h["txns"].append({"txn": 4, "values": ["t4:q"], "outcome": "committed"})  # none visible
    only(checker.check(h), "txn_partial", 2)


def test_input_processed_twice():
    h = clean()
    h["txns"].append({"txn": 5, "values": ["t5:x"], "outcome": "committed"})
    h["txn_final_read"][1] = {0: "t5:x"}  # input x already went out in t1
    only(checker.check(h), "duplicates", 1)


def test_unknown_outcome_all_or_nothing_is_fine():
    h = clean()
    h["txn_final_read"][0][5] = "t3:w"  # the unknown one turned out committed: fine
    assert checker.check(h)["txn_partial"]["count"] == 0


def test_replicas_disagree_below_hw_only():
    h = clean()
    h["replicas"]["t/0"][2][2] = "other"  # differs below hw 3
    h["replicas"]["t/1"][3] = None  # replica without a directory: both offsets below hw 2
    h["replicas"]["t/0"][1][9] = "beyond"  # above the hw: not compared
    only(checker.check(h), "replicas_disagree", 3)


def test_json_round_trip_keys():
    """A kept history.json has string keys; the checks read it the same."""
    import json
    h = json.loads(json.dumps(clean()))
    assert checker.passed(checker.check(h))
    h["replicas"]["t/0"]["2"]["2"] = "other"
    assert checker.counts(checker.check(h))["replicas_disagree"] == 1


def test_full_isr():
    md = {"topics": {"t": {"error": 0, "partitions": {
        0: {"leader": 1, "replicas": [1, 2, 3], "isr": [3, 1, 2]}}}}}
    assert full_isr(md, ["t"])
    md["topics"]["t"]["partitions"][0]["isr"] = [1, 2]
    assert not full_isr(md, ["t"])
    assert not full_isr(md, ["missing"])


# --------------------------------------------------------------------------- on-disk batches

def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _bytes(b) -> bytes:
    return _varint(-1) if b is None else _varint(len(b)) + b


def record(offset_delta: int, key, value, headers=()) -> bytes:
    body = (b"\x00" + _varint(0) + _varint(offset_delta) + _bytes(key) + _bytes(value)
            + _varint(len(headers)) + b"".join(_bytes(k.encode()) + _bytes(v) for k, v in headers))
    return _varint(len(body)) + body


def batch(base: int, records: "list[bytes]", attrs: int = 0, pid: int = -1,
          epoch: int = 5, corrupt: bool = False) -> bytes:
    n = len(records)
    after_crc = (struct.pack(">hiqqqhii", attrs, n - 1, 1000, 1000, pid, 0, 0, n)
                 + b"".join(records))
    crc = crc32c.crc32c(after_crc) ^ (1 if corrupt else 0)
    tail = struct.pack(">ibI", epoch, 2, crc) + after_crc
    return struct.pack(">qi", base, len(tail)) + tail


def test_parse_segment_records_headers_and_control():
    seg = (batch(0, [record(0, b"k0", b"v0", [("h", b"x")]), record(1, None, b"v1")])
           + batch(2, [record(0, None, b"t0")], attrs=kafkalog.ATTR_TRANSACTIONAL, pid=7)
           + batch(3, [record(0, struct.pack(">hh", 0, kafkalog.CONTROL_COMMIT), b"\x00\x00")],
                   attrs=kafkalog.ATTR_TRANSACTIONAL | kafkalog.ATTR_CONTROL, pid=7))
    parsed = kafkalog.parse_segment(seg)
    assert parsed.error is None and parsed.trailing_bytes == 0
    b0, b1, b2 = parsed.batches
    assert [(r.offset, r.key, r.value) for r in b0.records] == [(0, b"k0", b"v0"), (1, None, b"v1")]
    assert b0.records[0].headers == [("h", b"x")]
    assert b0.crc_ok and b0.leader_epoch == 5 and (b0.base_offset, b0.last_offset) == (0, 1)
    assert b1.transactional and not b1.control and b1.producer_id == 7
    assert b2.control and b2.control_type == kafkalog.CONTROL_COMMIT


def test_partition_dir_torn_tail_and_bad_crc(tmp_path):
    d = tmp_path / "t-0"
    d.mkdir()
    (d / f"{0:020}.log").write_bytes(batch(0, [record(0, None, b"a")])
                                     + batch(1, [record(0, None, b"b")], corrupt=True))
    whole = batch(2, [record(0, None, b"c")])
    (d / f"{2:020}.log").write_bytes(whole + batch(3, [record(0, None, b"d")])[:-3])
    log = kafkalog.read_partition_dir(d)
    assert log.data_records() == {0: b"a", 1: b"b", 2: b"c"}
    assert log.end_offset == 3
    assert any("CRC mismatch" in p and "[1]" in p for p in log.problems), log.problems
    assert any("claims" in p for p in log.problems), log.problems


@pytest.mark.parametrize("cut", [1, 30, 60])
def test_short_header_is_a_torn_tail(cut):
    b = batch(0, [record(0, None, b"a")])
    parsed = kafkalog.parse_segment(b + b[:cut])
    assert len(parsed.batches) == 1 and parsed.trailing_bytes == cut and parsed.error


def test_liveness_first_produce_while_old_leader_down():
    from fault.runner import liveness
    timeline = [{"fault": "kill_leader", "partition": 1, "nodes": [2], "hold_s": 8.0, "t": 100.0,
                 "healed_t": 108.0, "heal_to_full_isr_s": 1.5},
                {"fault": "kill_leader", "partition": 0, "nodes": [3], "hold_s": 6.0, "t": 200.0,
                 "healed_t": 206.0, "heal_to_full_isr_s": None},
                {"fault": "pause", "nodes": [1], "hold_s": 3.0, "t": 300.0, "healed_t": 303.0,
                 "heal_to_full_isr_s": 0.4}]
    produces = [ack("a", 0, 1, 0), ack("a", 1, 1, 1), ack("a", 2, 0, 0)]
    produces[0]["t"], produces[1]["t"], produces[2]["t"] = 99.0, 103.25, 207.0
    live = liveness(timeline, produces)
    fo = live["leader_kill_to_first_produce"]
    # Partition 1 failed over in 3.25 s; partition 0 produced only after its old leader returned.
    assert [(x["partition"], x["kill_to_first_produce_s"]) for x in fo] == [(1, 3.25), (0, None)]
    assert [x["heal_to_full_isr_s"] for x in live["heal_to_full_isr"]] == [1.5, None, 0.4]
