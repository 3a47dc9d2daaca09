"""Durability: clean restarts keep everything; SIGKILL loses no acknowledged
acks=all record, duplicates nothing and keeps order."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import TIMESTAMP_CREATE_TIME

import rawkafka
from clients import (Rec, consume_all, create_topics, describe_topic, flush, producer, topic_ids,
                     watermarks)

HERE = Path(__file__).resolve().parent


def now_ms() -> int:
    return int(time.time() * 1000)


def produce_and_expect(bootstrap: str, topic: str, n: int, codec: str = "none",
                       tag: str = "r") -> "dict[int, list[Rec]]":
    """Produce n keyed records with headers and timestamps (acks=all, idempotent);
    return what the log must contain, {partition: [Rec sorted by offset]}."""
    p = producer(bootstrap, **{"compression.type": codec})
    base = now_ms() - 10_000
    exp: "dict[int, list[Rec]]" = {}
    failures = []

    def dr(rec, err, msg):
        if err is not None:
            failures.append(err)
            return
        key, value, headers, ts = rec
        exp.setdefault(msg.partition(), []).append(
            Rec(msg.partition(), msg.offset(), key, value, headers, ts, TIMESTAMP_CREATE_TIME))

    for i in range(n):
        rec = (b"key-%d" % (i % 17), (b"%s-%d-" % (tag.encode(), i)) * 3,
               (("i", str(i).encode()), ("dup", b"x"), ("dup", b"y")), base + i)
        while True:
            try:
                p.produce(topic, key=rec[0], value=rec[1], headers=list(rec[2]),
                          timestamp=rec[3], on_delivery=functools.partial(dr, rec))
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    flush(p, 60)
    assert not failures, failures[:5]
    for recs in exp.values():
        recs.sort(key=lambda r: r.offset)
    return exp


def assert_log_equals(bootstrap: str, topic: str, partitions: int, exp: "dict[int, list[Rec]]"):
    got = consume_all(bootstrap, topic, range(partitions))
    for part in range(partitions):
        want = exp.get(part, [])
        assert len(got[part]) == len(want), \
            f"{topic}[{part}]: {len(got[part])} records in the log, {len(want)} expected"
        for g, w in zip(got[part], want):
            assert g == w, f"{topic}[{part}] offset {w.offset}: got {g}, expected {w}"


def metadata_snapshot(broker, topics):
    md = {t: describe_topic(broker.bootstrap, t) for t in topics}
    shape = {t: sorted((p, pm.leader, tuple(pm.replicas)) for p, pm in md[t].partitions.items())
             for t in topics}
    ids = topic_ids(broker.bootstrap, topics)
    raw = rawkafka.metadata_v12(broker.host, broker.port)
    raw_ids = {t: raw[t]["topic_id"] for t in topics}
    assert ids == raw_ids, f"describe_topics ids {ids} != Metadata v12 ids {raw_ids}"
    assert "00000000-0000-0000-0000-000000000000" not in ids.values(), ids
    return shape, ids


# ---------------------------------------------------------------- (a) restart

def test_clean_restart_keeps_topics_ids_and_records(broker):
    topics = {"dur-a": 3, "dur-b": 1, "dur-empty": 2}
    create_topics(broker.bootstrap, topics)
    exp_a = produce_and_expect(broker.bootstrap, "dur-a", 900, codec="lz4", tag="a")
    exp_b = produce_and_expect(broker.bootstrap, "dur-b", 300, codec="none", tag="b")
    before = metadata_snapshot(broker, list(topics))
    assert_log_equals(broker.bootstrap, "dur-a", 3, exp_a)
    assert_log_equals(broker.bootstrap, "dur-b", 1, exp_b)

    rc = broker.stop(signal.SIGTERM)
    assert rc == 0, f"SIGTERM: gregor exited {rc}, expected 0"
    broker.start()

    after = metadata_snapshot(broker, list(topics))
    assert after == before, f"metadata changed across restart:\nbefore {before}\nafter  {after}"
    assert_log_equals(broker.bootstrap, "dur-a", 3, exp_a)
    assert_log_equals(broker.bootstrap, "dur-b", 1, exp_b)
    assert watermarks(broker.bootstrap, "dur-empty", range(2)) == {0: (0, 0), 1: (0, 0)}

    # appends continue right after the recovered end
    more = produce_and_expect(broker.bootstrap, "dur-b", 5, tag="b2")
    assert [r.offset for r in more[0]] == [300, 301, 302, 303, 304]

    # and a SIGINT stop is just as clean
    rc = broker.stop(signal.SIGINT)
    assert rc == 0, f"SIGINT: gregor exited {rc}, expected 0"
    broker.start()
    assert metadata_snapshot(broker, list(topics)) == before
    exp_b[0].extend(more[0])
    assert_log_equals(broker.bootstrap, "dur-b", 1, exp_b)


# ------------------------------------------------------ (b) SIGKILL under load

def _read_acks(path: Path) -> "list[tuple[int, int]]":
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:  # a torn last line cannot be an ack we rely on
            out.append((int(parts[0]), int(parts[1])))
    return out


def _wait_lines(path: Path, n: int, timeout: float, proc, err_file: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            raise AssertionError(f"producer process exited early ({proc.returncode}): "
                                 f"{err_file.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"fewer than {n} acks after {timeout}s")


def test_sigkill_under_load_loses_no_acked_record(broker, tmp_path):
    topic = "dur-load"
    create_topics(broker.bootstrap, {topic: 1})
    acked: "dict[int, int]" = {}  # seq -> offset
    rounds = 3
    codecs = ["none", "lz4", "zstd"]  # recovery must also cope with torn compressed batches
    for rnd in range(rounds):
        ack_file = tmp_path / f"acks-{rnd}.txt"
        start_seq = (rnd + 1) * 10_000_000
        err_file = tmp_path / f"producer-{rnd}.stderr"
        with open(err_file, "wb") as err:
            proc = subprocess.Popen(
                [sys.executable, str(HERE / "seq_producer.py"), broker.bootstrap, topic,
                 str(start_seq), str(ack_file), "90", codecs[rnd % len(codecs)]],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            _wait_lines(ack_file, 100, 30, proc, err_file)
            time.sleep(2.5)  # keep sending, then crash the broker mid-stream
            assert broker.running(), "broker died on its own under load"
            broker.kill9()
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
                raise AssertionError("producer process did not stop within 30 s")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
        producer_said = err_file.read_text(errors="replace").strip().splitlines()[-1:]
        round_acks = _read_acks(ack_file)
        assert len(round_acks) >= 100, f"round {rnd}: only {len(round_acks)} acks"
        for seq, off in round_acks:
            assert seq not in acked, f"seq {seq} acknowledged twice"
            acked[seq] = off

        broker.start()
        got = consume_all(broker.bootstrap, topic, [0], timeout=120)[0]
        print(f"round {rnd} ({codecs[rnd % len(codecs)]}): {len(round_acks)} acked this round ({producer_said}), "
              f"{len(acked)} acked in all, {len(got)} records in the log after restart")
        seqs = [int(r.value) for r in got]
        offsets = [r.offset for r in got]
        assert offsets == list(range(len(got))), f"round {rnd}: offsets not contiguous from 0"
        bad = [(a, b) for a, b in zip(seqs, seqs[1:]) if b <= a]
        assert not bad, f"round {rnd}: sequence not strictly increasing (dup/reorder) at {bad[:5]}"
        at = dict(zip(offsets, seqs))
        seqset = set(seqs)
        missing = [s for s in acked if s not in seqset]
        assert not missing, (f"round {rnd}: {len(missing)} acknowledged records lost after SIGKILL, "
                             f"e.g. {sorted(missing)[:10]} (log has {len(seqs)} records)")
        moved = [(s, o, at.get(o)) for s, o in acked.items() if at.get(o) != s]
        assert not moved, f"round {rnd}: acked offsets now hold other records: {moved[:10]}"


# ------------------------------------------------------ (c) SIGKILL after burst

def test_sigkill_right_after_acked_burst(broker):
    create_topics(broker.bootstrap, {"dur-burst": 3})
    exp = produce_and_expect(broker.bootstrap, "dur-burst", 3000, codec="zstd", tag="burst")
    ids = topic_ids(broker.bootstrap, ["dur-burst"])
    # a topic created (no data) right before the crash must survive too
    create_topics(broker.bootstrap, {"dur-late": 2})
    late_ids = topic_ids(broker.bootstrap, ["dur-late"])
    broker.kill9()

    broker.start()
    assert topic_ids(broker.bootstrap, ["dur-burst"]) == ids
    assert topic_ids(broker.bootstrap, ["dur-late"]) == late_ids
    assert len(describe_topic(broker.bootstrap, "dur-burst").partitions) == 3
    assert len(describe_topic(broker.bootstrap, "dur-late").partitions) == 2
    assert_log_equals(broker.bootstrap, "dur-burst", 3, exp)

    # a second crash after a small append: still exact
    more = produce_and_expect(broker.bootstrap, "dur-burst", 30, tag="more")
    for part, recs in more.items():
        exp.setdefault(part, []).extend(recs)
    broker.kill9()
    broker.start()
    assert_log_equals(broker.bootstrap, "dur-burst", 3, exp)
    assert os.path.isdir(broker.data_dir)
