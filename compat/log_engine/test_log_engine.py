"""The log engine seen through a real client (confluent-kafka / librdkafka): DeleteRecords and
retention move the earliest offset, compaction leaves exactly the latest value per key, and a
full disk (a real, small tmpfs) fails produces with KAFKA_STORAGE_ERROR without losing what was
acknowledged, then accepts writes again once space is freed."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

# Retention and the cleaner run on this period in these tests (Kafka's defaults are 5 minutes
# and 15 seconds).
FAST_CHECKS = ("--set", "log.retention.check.interval.ms=200", "--set", "log.cleaner.backoff.ms=200")


def admin(broker) -> AdminClient:
    return AdminClient({"bootstrap.servers": broker.bootstrap})


def create(broker, name: str, partitions: int = 1, config: "dict | None" = None) -> None:
    client = admin(broker)  # kept alive until the future resolves
    futures = client.create_topics([NewTopic(name, partitions, 1, config=config or {})])
    futures[name].result(timeout=15)


def produce(broker, topic: str, records, **conf) -> list:
    """Produces (key, value, headers, timestamp) tuples with acks=all; returns delivery errors."""
    p = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "linger.ms": 5, **conf})
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(err)

    for key, value, headers, ts in records:
        p.produce(topic, key=key, value=value, headers=headers, timestamp=ts, on_delivery=report)
        p.poll(0)
    assert p.flush(30) == 0, "every delivery reported"
    return errors


def consume_all(broker, topic: str, partition: int = 0, timeout: float = 15.0) -> list:
    """Reads a partition from its earliest offset to the high watermark."""
    c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "log-engine-reader",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        low, high = c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
        c.assign([TopicPartition(topic, partition, low)])
        out, deadline = [], time.time() + timeout
        while time.time() < deadline:
            if out and out[-1].offset() >= high - 1:
                break
            m = c.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            out.append(m)
        return out
    finally:
        c.close()


def earliest(broker, topic: str) -> int:
    tp = TopicPartition(topic, 0)
    client = admin(broker)
    return client.list_offsets({tp: OffsetSpec.earliest()})[tp].result(timeout=10).offset


def wait_for(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def test_delete_records_moves_the_earliest_offset(broker):
    create(broker, "dr")
    now = int(time.time() * 1000)
    assert produce(broker, "dr", [(b"k%d" % i, b"v%d" % i, [], now) for i in range(100)]) == []
    assert earliest(broker, "dr") == 0
    tp = TopicPartition("dr", 0, 40)
    client = admin(broker)
    result = client.delete_records([tp])[tp].result(timeout=10)
    assert result.low_watermark == 40, "low watermark after deletion"
    assert earliest(broker, "dr") == 40
    records = consume_all(broker, "dr")
    assert [m.offset() for m in records] == list(range(40, 100))
    assert [m.value() for m in records] == [b"v%d" % i for i in range(40, 100)]


@pytest.mark.broker_args(*FAST_CHECKS)
def test_retention_ms_deletes_old_segments_and_keeps_the_rest(broker):
    create(broker, "ret", config={"retention.ms": "60000", "segment.bytes": "2048"})
    hour_ago = int(time.time() * 1000) - 3_600_000
    now = int(time.time() * 1000)
    old = [(b"old", b"x" * 200, [], hour_ago) for _ in range(40)]
    new = [(b"new", b"y" * 200, [("h", b"1")], now) for _ in range(5)]
    assert produce(broker, "ret", old, **{"batch.num.messages": 1}) == []
    assert produce(broker, "ret", new, **{"batch.num.messages": 1}) == []
    moved = wait_for(lambda: earliest(broker, "ret") > 0, 20, "retention to move the log start")
    assert moved
    records = consume_all(broker, "ret")
    assert [m.value() for m in records][-5:] == [b"y" * 200] * 5, "recent records kept"
    assert all(m.timestamp()[1] == now for m in records[-5:])
    assert all(m.headers() == [("h", b"1")] for m in records[-5:])
    assert records[0].offset() == earliest(broker, "ret")


@pytest.mark.broker_args(*FAST_CHECKS)
def test_compaction_leaves_exactly_the_latest_value_per_key(broker):
    # min.cleanable.dirty.ratio 0.01: the cleaner may run while records still arrive, and each
    # later pass must not wait for half the log to be dirty (what Kafka users' tests set too).
    create(broker, "cmp", config={"cleanup.policy": "compact", "segment.bytes": "4096",
                                 "delete.retention.ms": "0", "min.cleanable.dirty.ratio": "0.01"})
    base = int(time.time() * 1000)
    history = []
    for version in range(8):
        for k in range(20):
            history.append((b"key-%02d" % k, b"key-%02d=v%d" % (k, version),
                            [("version", str(version).encode())], base + version))
    deleted = [b"key-%02d" % k for k in range(15, 20)]
    tombstones = [(k, None, [], base + 100) for k in deleted]
    # Filler under one key pushes every real key's last record out of the active segment, which
    # the cleaner never touches.
    filler = [(b"filler", b"f" * 300, [], base + 200) for _ in range(40)]
    # Small batches, so segments roll (a segment always holds at least one whole batch).
    small = {"batch.num.messages": 20}
    assert produce(broker, "cmp", history + tombstones + filler, **small) == []

    def compacted():
        seen: dict = {}
        for m in consume_all(broker, "cmp"):
            if m.key() != b"filler":
                seen.setdefault(m.key(), []).append(m)
        live = {k: v for k, v in seen.items() if k not in deleted}
        done = (len(live) == 15 and all(len(v) == 1 for v in live.values())
                and not any(k in seen for k in deleted))
        return seen if done else None

    seen = wait_for(compacted, 30, "the cleaner to keep only the latest value per key")
    for k in range(15):
        (m,) = seen[b"key-%02d" % k]
        assert m.value() == b"key-%02d=v7" % k
        assert m.headers() == [("version", b"7")], "headers preserved"
        assert m.timestamp()[1] == base + 7, "timestamps preserved"
    offsets = [m.offset() for v in seen.values() for m in v]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), "original offsets kept"


@pytest.fixture
def small_disk(broker_factory):
    """A broker whose log directory is a real 8 MiB tmpfs (needs root, as in CI)."""
    b = broker_factory(start=False)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(b.data_dir)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield b
    finally:
        b.close()
        subprocess.run(["umount", "-l", str(b.data_dir)], capture_output=True)


def test_full_disk_fails_writes_keeps_reads_and_recovers(small_disk):
    b = small_disk
    ballast = b.data_dir / "ballast"
    ballast.write_bytes(b"\0" * (2 * 1024 * 1024))
    b.start()
    create(b, "full", config={"segment.bytes": "1048576"})
    value = b"z" * 10_000
    acked, failures = [], []
    p = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "retries": 0,
                  "linger.ms": 0, "message.timeout.ms": 10000})

    def report(err, msg):
        (failures if err is not None else acked).append(err if err is not None else msg.offset())

    for i in range(1200):  # ~12 MB: more than the disk holds
        p.produce("full", key=b"%d" % i, value=value, on_delivery=report)
        p.flush(10)
        if failures:
            break
    assert failures, "the disk filled up"
    assert failures[0].code() == KafkaError.KAFKA_STORAGE_ERROR, failures[0]
    assert len(acked) > 100
    # Reads keep working and every acknowledged record is there.
    records = consume_all(b, "full")
    assert [m.offset() for m in records] == acked
    assert all(m.value() == value for m in records)
    # Free space: writes are accepted again.
    ballast.unlink()
    ok = []
    for _ in range(20):
        errs = produce(b, "full", [(b"after", b"space", [], int(time.time() * 1000))],
                       **{"retries": 0})
        if not errs:
            ok.append(True)
            break
        time.sleep(0.5)
    assert ok, "writes accepted once space was freed"
    records = consume_all(b, "full")
    assert records[-1].value() == b"space"
    assert [m.offset() for m in records][: len(acked)] == acked, "nothing acknowledged lost"
