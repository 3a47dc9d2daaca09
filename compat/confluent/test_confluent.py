"""confluent-kafka (librdkafka) against gregor: admin, idempotent produce in every
codec, assign()-consumers, ListOffsets by timestamp, size limits, auto-creation.

No consumer groups exist in this broker stage: consumers use assign() with
explicit offsets and never commit (a group.id is set only because the client
wants one; coordinator complaints from librdkafka are expected noise).
"""

from __future__ import annotations

import functools
import time

import pytest
from confluent_kafka import (OFFSET_END, TIMESTAMP_CREATE_TIME, KafkaError, KafkaException,
                             TopicCollection, TopicPartition)
from confluent_kafka.admin import NewTopic, OffsetSpec

from clients import (Rec, admin, consume_all, consumer, create_topics, error_code, flush,
                     describe_topic, list_topics, producer, topic_exists, topic_ids, uuid_str,
                     wait_for_topics, watermarks)

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def now_ms() -> int:
    return int(time.time() * 1000)


def entries_named(data_dir, topic: str) -> list:
    """Paths anywhere under the log dir whose name mentions the topic."""
    return [p for p in data_dir.rglob("*") if topic in p.name]


def produce_indexed(p, topic: str, records: list, flush_timeout: float = 120.0) -> dict:
    """Produce [(key, value, headers, ts, partition|None)], return {index: (err, partition, offset)}."""
    results: dict = {}

    def dr(i, err, msg):
        results[i] = (err, msg.partition(), msg.offset())

    for i, (k, v, h, ts, part) in enumerate(records):
        kwargs = {"key": k, "value": v, "on_delivery": functools.partial(dr, i)}
        if h is not None:
            kwargs["headers"] = h
        if ts is not None:
            kwargs["timestamp"] = ts
        if part is not None:
            kwargs["partition"] = part
        while True:
            try:
                p.produce(topic, **kwargs)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    flush(p, flush_timeout)
    return results


# ------------------------------------------------------------------- admin

def test_create_list_describe_delete_topic(broker):
    a = admin(broker.bootstrap)
    futs = a.create_topics([NewTopic("cf-admin", num_partitions=3, replication_factor=1)],
                           operation_timeout=20, request_timeout=20)
    futs["cf-admin"].result(timeout=30)

    tm = wait_for_topics(broker.bootstrap, {"cf-admin": 3})["cf-admin"]
    assert sorted(tm.partitions) == [0, 1, 2]
    for pm in tm.partitions.values():
        assert pm.leader == broker.node_id
        assert list(pm.replicas) == [broker.node_id]
        assert list(pm.isrs) == [broker.node_id]

    desc = a.describe_topics(TopicCollection(["cf-admin"]), request_timeout=20)[
        "cf-admin"].result(timeout=30)
    assert desc.name == "cf-admin"
    assert uuid_str(desc.topic_id) != "00000000-0000-0000-0000-000000000000", \
        "topic id must not be the zero UUID"
    assert len(desc.partitions) == 3
    assert not desc.is_internal

    # some data, so the partitions exist on disk
    pr = producer(broker.bootstrap)
    res = produce_indexed(pr, "cf-admin", [(b"k", b"v%d" % i, None, None, i % 3) for i in range(6)])
    assert all(err is None for err, _, _ in res.values()), res
    assert entries_named(broker.data_dir, "cf-admin"), \
        f"no file or dir for cf-admin under {broker.data_dir}: {list(broker.data_dir.rglob('*'))[:20]}"

    dfuts = a.delete_topics(["cf-admin"], operation_timeout=20, request_timeout=20)
    dfuts["cf-admin"].result(timeout=30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if not topic_exists(broker.bootstrap, "cf-admin") and not entries_named(
                broker.data_dir, "cf-admin"):
            break
        time.sleep(0.25)
    assert not topic_exists(broker.bootstrap, "cf-admin")
    assert entries_named(broker.data_dir, "cf-admin") == [], \
        "deleted topic's data still on disk after 20 s"


def test_create_topic_validate_only(broker):
    a = admin(broker.bootstrap)
    a.create_topics([NewTopic("cf-validate", num_partitions=2, replication_factor=1)],
                    validate_only=True, request_timeout=20)["cf-validate"].result(timeout=30)
    time.sleep(0.5)
    assert not topic_exists(broker.bootstrap, "cf-validate")
    assert entries_named(broker.data_dir, "cf-validate") == []


def test_list_topics_all(broker):
    """AdminClient.list_topics() with no topic: Metadata for every topic, plus brokers."""
    create_topics(broker.bootstrap, {"cf-list-a": 3, "cf-list-b": 1})
    md = list_topics(broker.bootstrap)
    assert {"cf-list-a", "cf-list-b"} <= set(md.topics), sorted(md.topics)
    assert len(md.topics["cf-list-a"].partitions) == 3
    assert len(md.topics["cf-list-b"].partitions) == 1
    assert [b.id for b in md.brokers.values()] == [broker.node_id]
    b = md.brokers[broker.node_id]
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
    assert md.controller_id == broker.node_id
    assert md.cluster_id


def test_create_topic_errors(broker):
    a = admin(broker.bootstrap)
    create_topics(broker.bootstrap, {"cf-exists": 3})

    def create_err(nt: NewTopic):
        f = a.create_topics([nt], request_timeout=20)[nt.topic]
        with pytest.raises(KafkaException) as ei:
            f.result(timeout=30)
        return error_code(ei.value)

    assert create_err(NewTopic("cf-exists", num_partitions=3, replication_factor=1)) == \
        KafkaError.TOPIC_ALREADY_EXISTS
    # the existing topic is untouched
    assert len(describe_topic(broker.bootstrap, "cf-exists").partitions) == 3

    assert create_err(NewTopic("cf-rf2", num_partitions=1, replication_factor=2)) == \
        KafkaError.INVALID_REPLICATION_FACTOR
    assert create_err(NewTopic("cf bad name!", num_partitions=1, replication_factor=1)) == \
        KafkaError.TOPIC_EXCEPTION
    assert not topic_exists(broker.bootstrap, "cf-rf2")

    f = a.delete_topics(["cf-never-existed"], request_timeout=20)["cf-never-existed"]
    with pytest.raises(KafkaException) as ei:
        f.result(timeout=30)
    assert error_code(ei.value) == KafkaError.UNKNOWN_TOPIC_OR_PART


@pytest.mark.broker_args("--num-partitions", "4")
def test_create_topic_with_broker_defaults(broker):
    """NewTopic without partitions/RF (-1): the broker's defaults apply (CreateTopics v4+)."""
    a = admin(broker.bootstrap)
    a.create_topics([NewTopic("cf-defaults")], request_timeout=20)["cf-defaults"].result(timeout=30)
    md = wait_for_topics(broker.bootstrap, {"cf-defaults": 4})
    assert len(md["cf-defaults"].partitions) == 4


def test_describe_cluster(broker):
    a = admin(broker.bootstrap)
    d = a.describe_cluster(request_timeout=20).result(timeout=30)
    assert d.cluster_id, d
    assert [(n.id, n.host, n.port) for n in d.nodes] == [(broker.node_id, "127.0.0.1", broker.port)]
    assert d.controller is not None and d.controller.id == broker.node_id


# --------------------------------------------------------- produce/consume

def codec_records(codec: str, n: int, base_ts: int) -> list:
    recs = []
    for i in range(n):
        key = None if i % 50 == 49 else f"key-{i % 37}".encode()
        if i % 100 == 99:
            value = None  # tombstone
        else:
            value = f"{codec}:{i}:".encode() + bytes((i * 7 + j) % 256 for j in range(i % 300))
        headers = [("dup", f"first-{i}".encode()), ("dup", f"second-{i}".encode())]
        if i % 10 == 0:
            headers.append(("null-valued", None))
        recs.append((key, value, headers, base_ts + i, None))
    return recs


@pytest.mark.parametrize("codec", CODECS)
def test_idempotent_produce_consume_codec(broker, codec):
    topic = f"cf-codec-{codec}"
    create_topics(broker.bootstrap, {topic: 3})
    n = 1000
    base_ts = now_ms() - 3_600_000
    recs = codec_records(codec, n, base_ts)
    p = producer(broker.bootstrap, **{"compression.type": codec, "enable.idempotence": True,
                                      "acks": "all", "linger.ms": 20})
    res = produce_indexed(p, topic, recs)
    assert len(res) == n
    failed = {i: r for i, r in res.items() if r[0] is not None}
    assert not failed, f"{len(failed)} failed deliveries, e.g. {list(failed.items())[:3]}"

    expected: "dict[int, list[Rec]]" = {0: [], 1: [], 2: []}
    for i in range(n):
        _, part, off = res[i]
        k, v, h, ts, _ = recs[i]
        expected[part].append(Rec(part, off, k, v, tuple(h), ts, TIMESTAMP_CREATE_TIME))
    for part in expected:
        expected[part].sort(key=lambda r: r.offset)
        # acked offsets are exactly 0..n_p-1 and follow production order
        assert [r.offset for r in expected[part]] == list(range(len(expected[part])))
    assert sum(1 for part in expected if expected[part]) == 3, \
        f"keys did not spread over 3 partitions: {[len(v) for v in expected.values()]}"

    wm = watermarks(broker.bootstrap, topic, range(3))
    assert wm == {part: (0, len(expected[part])) for part in range(3)}

    got = consume_all(broker.bootstrap, topic, range(3))
    for part in range(3):
        assert len(got[part]) == len(expected[part]), f"partition {part}"
        for g, e in zip(got[part], expected[part]):
            assert g == e, f"partition {part} offset {e.offset}: got {g}, expected {e}"


def test_non_idempotent_acks1_and_acks0(broker):
    create_topics(broker.bootstrap, {"cf-acks": 1})
    for acks in ("1", "0"):
        p = producer(broker.bootstrap, **{"enable.idempotence": False, "acks": acks})
        res = produce_indexed(p, "cf-acks", [(b"a" + acks.encode(), b"%s-%d" % (acks.encode(), i),
                                              None, None, 0) for i in range(100)])
        assert all(r[0] is None for r in res.values())
    got = consume_all(broker.bootstrap, "cf-acks", [0])[0]
    assert [r.value for r in got] == [b"1-%d" % i for i in range(100)] + [b"0-%d" % i for i in range(100)]
    assert [r.offset for r in got] == list(range(200))


# ----------------------------------------------------------------- offsets

def test_offsets_for_times_and_watermarks(broker):
    create_topics(broker.bootstrap, {"cf-times": 2})
    base = now_ms() - 600_000
    recs = [(b"k", b"p0-%d" % i, None, base + i * 1000, 0) for i in range(10)]
    recs += [(b"k", b"p1-%d" % i, None, base + 500 + i * 2000, 1) for i in range(5)]
    res = produce_indexed(producer(broker.bootstrap), "cf-times", recs)
    assert all(r[0] is None for r in res.values()), res

    c = consumer(broker.bootstrap)
    try:
        assert c.get_watermark_offsets(TopicPartition("cf-times", 0), timeout=10,
                                       cached=False) == (0, 10)
        assert c.get_watermark_offsets(TopicPartition("cf-times", 1), timeout=10,
                                       cached=False) == (0, 5)

        def oft(pairs):
            out = c.offsets_for_times([TopicPartition("cf-times", p, ts) for p, ts in pairs],
                                      timeout=10)
            for tp in out:
                assert tp.error is None, tp
            return [tp.offset for tp in out]

        assert oft([(0, base - 5)]) == [0]
        assert oft([(0, base)]) == [0]
        assert oft([(0, base + 3000)]) == [3]
        assert oft([(0, base + 3500)]) == [4]
        assert oft([(0, base + 9000)]) == [9]
        assert oft([(0, base + 9001)]) == [OFFSET_END]  # no such record: -1
        assert oft([(0, base + 4200), (1, base + 4200)]) == [5, 2]
    finally:
        c.close()

    a = admin(broker.bootstrap)
    tp0 = TopicPartition("cf-times", 0)

    def lo(spec):
        return a.list_offsets({tp0: spec}, request_timeout=20)[tp0].result(timeout=30)

    assert lo(OffsetSpec.earliest()).offset == 0
    assert lo(OffsetSpec.latest()).offset == 10
    r = lo(OffsetSpec.for_timestamp(base + 2500))
    assert (r.offset, r.timestamp) == (3, base + 3000)
    r = lo(OffsetSpec.max_timestamp())
    assert (r.offset, r.timestamp) == (9, base + 9000)

    # consuming from the offset found by timestamp yields the right records
    got = consume_all(broker.bootstrap, "cf-times", [0], start={0: 4})[0]
    assert [(r.offset, r.value, r.timestamp) for r in got] == [
        (i, b"p0-%d" % i, base + i * 1000) for i in range(4, 10)]


# ------------------------------------------------------------------ limits

def test_message_too_large_rejected_topic_keeps_working(broker):
    create_topics(broker.bootstrap, {"cf-large": 1})
    # Raise the client's own limit so the broker is the one that says no.
    p = producer(broker.bootstrap, **{"enable.idempotence": False, "acks": "all",
                                      "message.max.bytes": 5_000_000, "linger.ms": 0,
                                      "message.send.max.retries": 0})
    big_ok = bytes(i % 251 for i in range(1_000_000))
    too_big = b"x" * 1_100_000  # > broker default max.message.bytes 1048588
    res = produce_indexed(p, "cf-large", [(b"before", b"small-1", None, None, 0)])
    assert res[0][0] is None, res
    res = produce_indexed(p, "cf-large", [(b"big", too_big, None, None, 0)])
    err = res[0][0]
    assert err is not None, "1.1 MB record was accepted; broker must enforce max.message.bytes"
    assert err.code() == KafkaError.MSG_SIZE_TOO_LARGE, err
    res = produce_indexed(p, "cf-large", [(b"after", b"small-2", None, None, 0),
                                          (b"near-limit", big_ok, None, None, 0)])
    assert all(r[0] is None for r in res.values()), res

    # a fresh idempotent producer works too
    res = produce_indexed(producer(broker.bootstrap), "cf-large",
                          [(b"fresh", b"small-3", None, None, 0)])
    assert res[0][0] is None, res

    got = consume_all(broker.bootstrap, "cf-large", [0])[0]
    assert [(r.offset, r.key, r.value) for r in got] == [
        (0, b"before", b"small-1"), (1, b"after", b"small-2"), (2, b"near-limit", big_ok),
        (3, b"fresh", b"small-3")]


# -------------------------------------------------------------- auto-create

@pytest.mark.broker_args("--auto-create-topics-enable", "true", "--num-partitions", "2")
def test_auto_create_on_produce(broker):
    assert not topic_exists(broker.bootstrap, "cf-auto")
    res = produce_indexed(producer(broker.bootstrap), "cf-auto",
                          [(b"k%d" % i, b"v%d" % i, [("h", b"1")], None, None) for i in range(20)])
    assert all(r[0] is None for r in res.values()), res
    md = wait_for_topics(broker.bootstrap, {"cf-auto": 2})
    assert len(md["cf-auto"].partitions) == 2
    got = consume_all(broker.bootstrap, "cf-auto", range(2))
    values = sorted(r.value for part in got.values() for r in part)
    assert values == sorted(b"v%d" % i for i in range(20))
    for part in got.values():
        for r in part:
            assert r.key == b"k" + r.value[1:] and r.headers == (("h", b"1"),)


@pytest.mark.broker_args("--auto-create-topics-enable", "false")
def test_no_auto_create_when_disabled(broker):
    p = producer(broker.bootstrap, **{"message.timeout.ms": 6000, "enable.idempotence": False})
    results = {}

    def dr(err, msg):
        results["r"] = err

    p.produce("cf-not-there", key=b"k", value=b"v", on_delivery=dr)
    p.flush(20)
    err = results.get("r")
    assert err is not None, "produce to an unknown topic succeeded with auto-create disabled"
    assert err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC,
                          KafkaError._MSG_TIMED_OUT), err
    assert not topic_exists(broker.bootstrap, "cf-not-there")
    assert entries_named(broker.data_dir, "cf-not-there") == []

    # explicit creation still works on this broker
    create_topics(broker.bootstrap, {"cf-explicit": 1})
    res = produce_indexed(producer(broker.bootstrap), "cf-explicit", [(b"k", b"v", None, None, 0)])
    assert res[0][0] is None
    assert [r.value for r in consume_all(broker.bootstrap, "cf-explicit", [0])[0]] == [b"v"]


def test_topic_ids_are_stable_and_distinct(broker):
    create_topics(broker.bootstrap, {"cf-id-a": 1, "cf-id-b": 2})
    ids = topic_ids(broker.bootstrap, ["cf-id-a", "cf-id-b"])
    assert ids["cf-id-a"] != ids["cf-id-b"]
    assert ids == topic_ids(broker.bootstrap, ["cf-id-a", "cf-id-b"])
    # delete + re-create gives a new id
    a = admin(broker.bootstrap)  # keep the handle alive while waiting on its future
    a.delete_topics(["cf-id-a"], request_timeout=20)["cf-id-a"].result(30)
    deadline = time.monotonic() + 20
    while topic_exists(broker.bootstrap, "cf-id-a") and time.monotonic() < deadline:
        time.sleep(0.2)
    create_topics(broker.bootstrap, {"cf-id-a": 1})
    assert topic_ids(broker.bootstrap, ["cf-id-a"])["cf-id-a"] != ids["cf-id-a"]


# ------------------------------------------------------------------- fetch

def test_fetch_out_of_range_resets_by_policy(broker):
    create_topics(broker.bootstrap, {"cf-oor": 1})
    res = produce_indexed(producer(broker.bootstrap), "cf-oor",
                          [(None, b"r%d" % i, None, None, 0) for i in range(10)])
    assert all(r[0] is None for r in res.values())
    # offset 50 does not exist: auto.offset.reset=earliest restarts at 0
    c = consumer(broker.bootstrap, **{"auto.offset.reset": "earliest"})
    got = []
    try:
        c.assign([TopicPartition("cf-oor", 0, 50)])
        deadline = time.monotonic() + 30
        while len(got) < 10 and time.monotonic() < deadline:
            for m in c.consume(num_messages=100, timeout=0.5):
                if m.error() is None:
                    got.append((m.offset(), m.value()))
    finally:
        c.close()
    assert got == [(i, b"r%d" % i) for i in range(10)]

    # ... and auto.offset.reset=error surfaces the broker's OFFSET_OUT_OF_RANGE
    c = consumer(broker.bootstrap, **{"auto.offset.reset": "error"})
    try:
        c.assign([TopicPartition("cf-oor", 0, 50)])
        err = None
        deadline = time.monotonic() + 30
        while err is None and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is not None and m.error().code() in (
                    KafkaError._AUTO_OFFSET_RESET, KafkaError.OFFSET_OUT_OF_RANGE):
                err = m.error()
            elif m is not None and m.error() is None:
                raise AssertionError(f"read a record at {m.offset()} from an out-of-range position")
        assert err is not None, "no offset-out-of-range error within 30 s"
    finally:
        c.close()


def test_fetch_respects_size_limits_and_returns_oversized_batch(broker):
    """Small fetch limits make the broker page; a batch bigger than the limit still comes
    back whole (KIP-74), so a consumer never stalls on it."""
    create_topics(broker.bootstrap, {"cf-paging": 1})
    recs = [(b"k%d" % i, bytes([65 + i % 26]) * 1000, None, None, 0) for i in range(300)]
    recs.append((b"big", b"B" * 200_000, None, None, 0))
    recs += [(b"t%d" % i, b"tail-%d" % i, None, None, 0) for i in range(5)]
    res = produce_indexed(producer(broker.bootstrap, **{"linger.ms": 50}), "cf-paging", recs)
    assert all(r[0] is None for r in res.values())
    got = consume_all(broker.bootstrap, "cf-paging", [0], timeout=90,
                      **{"fetch.max.bytes": 20_000, "max.partition.fetch.bytes": 8_000,
                         "message.max.bytes": 10_000,
                         "fetch.wait.max.ms": 100})[0]
    assert [(r.offset, r.key, r.value) for r in got] == [
        (i, k, v) for i, (k, v, _, _, _) in enumerate(recs)]
