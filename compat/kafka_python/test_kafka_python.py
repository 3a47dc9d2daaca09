"""kafka-python (2.x, pure Python) against gregor.

kafka-python infers a broker version from ApiVersions and then uses the
request versions it knows for that broker version (old ones such as Metadata
v0/v1, Fetch v4, ListOffsets v1 for old inferred versions).  api_version is
never pinned here: it must negotiate.
"""

from __future__ import annotations

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError

import clients

COMMON = {"api_version_auto_timeout_ms": 30000}
CODECS = [None, "gzip", "snappy", "lz4", "zstd"]


def now_ms() -> int:
    return int(time.time() * 1000)


def kp_producer(broker, **conf) -> KafkaProducer:
    c = {"bootstrap_servers": broker.bootstrap, "acks": "all", "linger_ms": 10,
         "request_timeout_ms": 30000, "max_block_ms": 30000, **COMMON}
    c.update(conf)
    return KafkaProducer(**c)


def kp_consumer(broker, **conf) -> KafkaConsumer:
    c = {"bootstrap_servers": broker.bootstrap, "group_id": None, "enable_auto_commit": False,
         "auto_offset_reset": "earliest", "request_timeout_ms": 30000, **COMMON}
    c.update(conf)
    return KafkaConsumer(**c)


def create_topics(broker, topics: "dict[str, int]", timeout: float = 30.0) -> None:
    """Create {name: partitions} with kafka-python's admin client and wait until a
    kafka-python consumer sees every partition (no librdkafka involved)."""
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000, **COMMON)
    try:
        a.create_topics([NewTopic(t, num_partitions=n, replication_factor=1)
                         for t, n in topics.items()], timeout_ms=int(timeout * 1000))
    finally:
        a.close()
    deadline = time.monotonic() + timeout
    c = kp_consumer(broker)
    try:
        while time.monotonic() < deadline:
            seen = {t: c.partitions_for_topic(t) for t in topics}
            if all(seen[t] == set(range(n)) for t, n in topics.items()):
                return
            time.sleep(0.2)
    finally:
        c.close()
    raise AssertionError(f"topics {topics} not visible to kafka-python within {timeout}s: {seen}")


def read_all(broker, topic: str, partitions, timeout: float = 60.0, **conf) -> dict:
    """assign() + seek_to_beginning(), poll until each partition reaches its end offset."""
    c = kp_consumer(broker, **conf)
    try:
        tps = [TopicPartition(topic, p) for p in partitions]
        c.assign(tps)
        c.seek_to_beginning()
        end = c.end_offsets(tps)
        out = {p: [] for p in partitions}
        pending = {tp for tp in tps if end[tp] > 0}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=500, max_records=1000).items():
                for m in msgs:
                    out[tp.partition].append(m)
                    if m.offset + 1 >= end[tp]:
                        pending.discard(tp)
        assert not pending, (f"kafka-python consumer: {sorted(tp.partition for tp in pending)} did not "
                             f"reach end offsets {end} in {timeout}s; got "
                             f"{ {p: len(v) for p, v in out.items()} }")
        return out
    finally:
        c.close()


def test_negotiates_modern_broker_version(broker):
    p = kp_producer(broker)
    try:
        # zstd needs >= (2, 1), idempotence >= (0, 11): the broker must advertise enough.
        assert p.config["api_version"] >= (2, 1), p.config["api_version"]
    finally:
        p.close(timeout=10)


def test_metadata(broker):
    create_topics(broker, {"kp-meta": 3, "kp-meta-2": 1})
    c = kp_consumer(broker)
    try:
        assert {"kp-meta", "kp-meta-2"} <= c.topics()
        assert c.partitions_for_topic("kp-meta") == {0, 1, 2}
        assert c.partitions_for_topic("kp-meta-2") == {0}
    finally:
        c.close()


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
def test_round_trip(broker, codec, idempotent):
    _round_trip(broker, codec, idempotent)


def _round_trip(broker, codec, idempotent):
    """Produce 300 keyed records with headers and timestamps over 3 partitions with
    kafka-python, read them back with kafka-python; return (topic, expected)."""
    topic = f"kp-rt-{codec or 'none'}-{int(idempotent)}"
    create_topics(broker, {topic: 3})
    base = now_ms() - 120_000
    n = 300
    sent = []
    p = kp_producer(broker, compression_type=codec, enable_idempotence=idempotent)
    try:
        futs = []
        for i in range(n):
            key = None if i % 40 == 39 else f"key-{i % 13}".encode()
            value = b"" if i % 50 == 7 else (f"{codec}-{i}-".encode() + bytes(range(i % 256)))
            headers = [("dup", b"one-%d" % i), ("dup", b"two"), ("seq", str(i).encode())]
            futs.append(p.send(topic, key=key, value=value, headers=headers, timestamp_ms=base + i))
            sent.append((key, value, headers, base + i))
        p.flush(timeout=60)
        metas = [f.get(timeout=30) for f in futs]
    finally:
        p.close(timeout=10)

    expected = {0: [], 1: [], 2: []}
    for (key, value, headers, ts), md in zip(sent, metas):
        assert md.topic == topic
        expected[md.partition].append((md.offset, key, value, headers, ts))
    for part, recs in expected.items():
        recs.sort()
        assert [r[0] for r in recs] == list(range(len(recs))), f"partition {part} offsets"

    got = read_all(broker, topic, range(3))
    for part in range(3):
        g = [(m.offset, m.key, m.value, list(m.headers), m.timestamp) for m in got[part]]
        assert g == expected[part], f"partition {part} differs"
        assert all(m.timestamp_type == 0 for m in got[part]), "expected CreateTime"
    return topic, expected


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_kafka_python_batches_read_by_librdkafka(broker, codec):
    """What kafka-python wrote (any codec) reads back identically through librdkafka."""
    topic, expected = _round_trip(broker, codec, idempotent=True)
    other = clients.consume_all(broker.bootstrap, topic, range(3))
    for part in range(3):
        g = [(r.offset, r.key, r.value, list(r.headers), r.timestamp) for r in other[part]]
        assert g == expected[part], f"partition {part} differs when read by confluent-kafka"


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_reads_librdkafka_batches(broker, codec):
    """Idempotent librdkafka batches (any codec) read by kafka-python."""
    topic = f"kp-from-rd-{codec}"
    create_topics(broker, {topic: 1})
    pr = clients.producer(broker.bootstrap, **{"compression.type": codec, "linger.ms": 20})
    base = now_ms() - 60_000
    for i in range(500):
        pr.produce(topic, key=b"k%d" % i, value=b"v%d" % i * (i % 20 + 1), partition=0,
                   headers=[("a", b"1"), ("a", b"2")], timestamp=base + i)
        pr.poll(0)
    clients.flush(pr)
    got = read_all(broker, topic, [0])[0]
    assert [(m.offset, m.key, m.value, list(m.headers), m.timestamp) for m in got] == [
        (i, b"k%d" % i, b"v%d" % i * (i % 20 + 1), [("a", b"1"), ("a", b"2")], base + i)
        for i in range(500)]


def test_offsets_api(broker):
    create_topics(broker, {"kp-offsets": 2})
    base = now_ms() - 300_000
    p = kp_producer(broker)
    try:
        futs = [p.send("kp-offsets", value=b"a%d" % i, partition=0, timestamp_ms=base + 1000 * i)
                for i in range(8)]
        futs += [p.send("kp-offsets", value=b"b%d" % i, partition=1, timestamp_ms=base + 10 * i)
                 for i in range(3)]
        p.flush(timeout=30)
        for f in futs:
            f.get(timeout=30)
    finally:
        p.close(timeout=10)

    tp0, tp1 = TopicPartition("kp-offsets", 0), TopicPartition("kp-offsets", 1)
    c = kp_consumer(broker)
    try:
        assert c.beginning_offsets([tp0, tp1]) == {tp0: 0, tp1: 0}
        assert c.end_offsets([tp0, tp1]) == {tp0: 8, tp1: 3}
        r = c.offsets_for_times({tp0: base + 2500, tp1: base})
        assert (r[tp0].offset, r[tp0].timestamp) == (3, base + 3000)
        assert (r[tp1].offset, r[tp1].timestamp) == (0, base)
        r = c.offsets_for_times({tp0: base + 7000, tp1: base + 21})
        assert (r[tp0].offset, r[tp0].timestamp) == (7, base + 7000)
        assert r[tp1] is None  # no record at or after that timestamp
        # seek to an offset found by timestamp, read from there
        c.assign([tp0])
        c.seek(tp0, 5)
        got = []
        deadline = time.monotonic() + 30
        while len(got) < 3 and time.monotonic() < deadline:
            for msgs in c.poll(timeout_ms=500).values():
                got.extend(msgs)
        assert [(m.offset, m.value) for m in got] == [(5, b"a5"), (6, b"a6"), (7, b"a7")]
    finally:
        c.close()


def kp_admin(broker) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000, **COMMON)


def test_admin_create_delete_topics(broker):
    a = kp_admin(broker)

    def names():  # via a consumer's Metadata: the admin's list_topics has its own test
        c = kp_consumer(broker)
        try:
            return c.topics()
        finally:
            c.close()

    try:
        a.create_topics([NewTopic("kp-admin", num_partitions=3, replication_factor=1)],
                        timeout_ms=20000)
        c = kp_consumer(broker)
        try:
            assert c.partitions_for_topic("kp-admin") == {0, 1, 2}
        finally:
            c.close()

        with pytest.raises(TopicAlreadyExistsError):
            a.create_topics([NewTopic("kp-admin", num_partitions=3, replication_factor=1)],
                            timeout_ms=20000)

        a.create_topics([NewTopic("kp-admin-v", num_partitions=1, replication_factor=1)],
                        timeout_ms=20000, validate_only=True)
        time.sleep(0.5)
        assert "kp-admin-v" not in names()

        a.delete_topics(["kp-admin"], timeout_ms=20000)
        deadline = time.monotonic() + 20
        while "kp-admin" in names() and time.monotonic() < deadline:
            time.sleep(0.25)
        assert "kp-admin" not in names()
        with pytest.raises(UnknownTopicOrPartitionError):
            a.delete_topics(["kp-admin"], timeout_ms=20000)
    finally:
        a.close()


def test_admin_describe_topics_and_cluster(broker):
    """KafkaAdminClient asks Metadata v8 with include_*_authorized_operations=true and
    decodes the returned bit sets."""
    create_topics(broker, {"kp-describe": 3})
    a = kp_admin(broker)
    try:
        desc = {d["topic"]: d for d in a.describe_topics(["kp-describe"])}
        assert desc["kp-describe"]["error_code"] == 0
        assert sorted(pt["partition"] for pt in desc["kp-describe"]["partitions"]) == [0, 1, 2]
        for pt in desc["kp-describe"]["partitions"]:
            assert pt["leader"] == broker.node_id
        assert "kp-describe" in a.list_topics()
        cluster = a.describe_cluster()
        assert [b["node_id"] for b in cluster["brokers"]] == [broker.node_id]
        assert cluster["controller_id"] == broker.node_id
        assert cluster["cluster_id"]
    finally:
        a.close()


def test_fetch_paging_and_oversized_record(broker):
    """Small fetch limits: the broker pages, and a record larger than the per-partition
    limit still comes back whole."""
    create_topics(broker, {"kp-paging": 1})
    recs = [(b"k%d" % i, bytes([97 + i % 26]) * 1500) for i in range(200)]
    recs.append((b"big", b"Z" * 150_000))
    recs += [(b"t%d" % i, b"tail-%d" % i) for i in range(3)]
    p = kp_producer(broker, max_request_size=1_000_000)
    try:
        futs = [p.send("kp-paging", key=k, value=v, partition=0) for k, v in recs]
        p.flush(timeout=60)
        offsets = [f.get(timeout=30).offset for f in futs]
    finally:
        p.close(timeout=10)
    assert offsets == list(range(len(recs)))
    got = read_all(broker, "kp-paging", [0], timeout=90, max_partition_fetch_bytes=10_000,
                   fetch_max_bytes=30_000)[0]
    assert [(m.offset, m.key, m.value) for m in got] == [
        (i, k, v) for i, (k, v) in enumerate(recs)]


@pytest.mark.parametrize("acks", [
    pytest.param(0, marks=pytest.mark.xfail(strict=True, reason=(
        "client bug: kafka-python 2.3.3 completes acks=0 sends without ever writing the Produce "
        "request to the socket (a capturing proxy sees only ApiVersions and Metadata); 2.0.2 "
        "sends them, covered in compat/kafka_python_202"))),
    1,
])
def test_acks_zero_and_one(broker, acks):
    topic = f"kp-acks{acks}"
    create_topics(broker, {topic: 1})
    p = kp_producer(broker, acks=acks)
    for i in range(20):
        p.send(topic, key=b"k%d" % i, value=b"v%d" % i, timestamp_ms=1_700_000_000_000 + i)
    p.flush(timeout=30)
    p.close(timeout=10)
    # acks=0 returns once the bytes are sent: wait (bounded) until the broker has them all.
    c = kp_consumer(broker)
    tp = TopicPartition(topic, 0)
    deadline = time.monotonic() + 15
    while c.end_offsets([tp])[tp] < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    c.close()
    got = read_all(broker, topic, [0])[0]
    assert [(m.key, m.value, m.timestamp) for m in got] == [
        (b"k%d" % i, b"v%d" % i, 1_700_000_000_000 + i) for i in range(20)]


def test_record_above_message_max_bytes_is_refused_by_the_broker(broker):
    from kafka.errors import MessageSizeTooLargeError
    create_topics(broker, {"kp-big": 1})
    # A client-side limit above the record, so the broker (message.max.bytes 1048588) decides.
    p = kp_producer(broker, max_request_size=4 * 1024 * 1024, retries=0)
    with pytest.raises(MessageSizeTooLargeError):
        p.send("kp-big", value=b"x" * (2 * 1024 * 1024)).get(timeout=30)
    p.send("kp-big", value=b"small").get(timeout=30)
    p.close(timeout=10)
    assert [m.value for m in read_all(broker, "kp-big", [0])[0]] == [b"small"]


@pytest.mark.broker_args("--auto-create-topics-enable", "false")
def test_unknown_topic_is_not_created_when_auto_create_is_off(broker):
    from kafka.errors import KafkaTimeoutError
    p = kp_producer(broker, max_block_ms=3000)
    with pytest.raises(KafkaTimeoutError):
        p.send("kp-nope", value=b"x").get(timeout=10)
    p.close(timeout=5)
    c = kp_consumer(broker)
    try:
        assert "kp-nope" not in c.topics()
    finally:
        c.close()


def test_transactions_commit_read_abort_skipped(broker):
    topic = "kp-txn"
    create_topics(broker, {topic: 2})
    p = kp_producer(broker, transactional_id="kp-tx", enable_idempotence=True)
    try:
        p.init_transactions()
        p.begin_transaction()
        for i in range(20):
            p.send(topic, key=b"k%d" % i, value=b"committed-%d" % i, partition=i % 2)
        p.commit_transaction()
        p.begin_transaction()
        for i in range(10):
            p.send(topic, key=b"k%d" % i, value=b"aborted-%d" % i, partition=i % 2)
        p.flush()
        p.abort_transaction()
    finally:
        p.close()
    c = kp_consumer(broker, isolation_level="read_committed")
    try:
        c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        c.seek_to_beginning()
        got: "dict[int, list]" = {0: [], 1: []}
        deadline = time.monotonic() + 30
        idle_since = None
        while time.monotonic() < deadline:
            batch = c.poll(timeout_ms=300)
            for tp, msgs in batch.items():
                got[tp.partition].extend(m.value for m in msgs)
            if batch:
                idle_since = None
            elif sum(len(v) for v in got.values()) >= 20:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > 1.5:
                    break
    finally:
        c.close()
    for part in (0, 1):
        assert got[part] == [b"committed-%d" % i for i in range(20) if i % 2 == part], part
