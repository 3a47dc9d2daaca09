"""Transactions against gregor with confluent-kafka (librdkafka): what a committed transaction
writes is seen by read_committed consumers, in order, with keys, headers and timestamps; what an
aborted one writes never is; an open transaction holds read_committed consumers back until it
ends; consume-transform-produce commits its input offsets atomically with its output; a second
producer with the same transactional.id fences the first; a transaction its producer abandons
is aborted by the coordinator after transaction.timeout.ms; and a broker SIGKILL loses no
committed transaction.
"""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3


def create_topic(bootstrap: str, partitions: int = PARTITIONS) -> str:
    name = f"tx-{uuid.uuid4().hex[:10]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    fs[name].result(timeout=20)
    return name


def txn_producer(bootstrap: str, txn_id: str, **conf) -> Producer:
    p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txn_id,
                  "linger.ms": 5, **conf})
    p.init_transactions(30)
    return p


def consume_all(bootstrap: str, topic: str, isolation: str, expect: int,
                timeout: float = 20.0, idle: float = 2.0) -> list:
    """Every record a fresh consumer with `isolation` reads from the beginning: stops once
    `expect` records arrived and nothing more came for `idle` seconds, or at `timeout`."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False,
                  "isolation.level": isolation})
    c.subscribe([topic])
    out: list = []
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None:
                if len(out) >= expect and time.monotonic() - last > idle:
                    break
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(m.error())
            out.append(m)
            last = time.monotonic()
    finally:
        c.close()
    return out


def values(msgs) -> "list[bytes]":
    return [m.value() for m in msgs]


def by_partition(msgs) -> "dict[int, list]":
    out: "dict[int, list]" = {}
    for m in msgs:
        out.setdefault(m.partition(), []).append(m)
    return out


def test_committed_is_read_aborted_never(broker):
    topic = create_topic(broker.bootstrap)
    p = txn_producer(broker.bootstrap, f"t-{uuid.uuid4().hex[:6]}")
    base = int(time.time() * 1000)

    def write(label: str, n: int):
        for i in range(n):
            p.produce(topic, key=b"k%02d" % i, value=f"{label}-{i}".encode(),
                      partition=i % PARTITIONS, headers=[("label", label.encode()), ("i", b"%d" % i)],
                      timestamp=base + i)

    p.begin_transaction()
    write("first", 12)
    p.commit_transaction(30)
    p.begin_transaction()
    write("aborted", 12)
    p.flush(30)  # in the log before the abort (abort_transaction purges unsent records)
    p.abort_transaction(30)
    p.begin_transaction()
    write("second", 12)
    p.commit_transaction(30)

    committed = consume_all(broker.bootstrap, topic, "read_committed", 24)
    assert sorted(values(committed)) == sorted(
        [f"{label}-{i}".encode() for label in ("first", "second") for i in range(12)])
    for part, msgs in by_partition(committed).items():
        # Per partition, in production order: first's records, then second's.
        got = [m.value().decode() for m in msgs]
        want = [f"{label}-{i}" for label in ("first", "second") for i in range(12)
                if i % PARTITIONS == part]
        assert got == want, (part, got)
        offsets = [m.offset() for m in msgs]
        assert offsets == sorted(offsets)
    for m in committed:
        label, i = m.value().decode().split("-")
        assert m.key() == b"k%02d" % int(i)
        assert m.headers() == [("label", label.encode()), ("i", i.encode())]
        assert m.timestamp()[1] == base + int(i)

    everything = consume_all(broker.bootstrap, topic, "read_uncommitted", 36)
    assert len(everything) == 36, "read_uncommitted sees the aborted records too"
    assert {v.decode().split("-")[0] for v in values(everything)} == {"first", "aborted", "second"}


def test_an_open_transaction_holds_read_committed_back(broker):
    topic = create_topic(broker.bootstrap, partitions=1)
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic, value=b"before", partition=0)
    plain.flush(10)
    p = txn_producer(broker.bootstrap, f"t-{uuid.uuid4().hex[:6]}")
    p.begin_transaction()
    p.produce(topic, value=b"inside", partition=0)
    p.flush(10)
    plain.produce(topic, value=b"after", partition=0)
    plain.flush(10)
    # Only what precedes the open transaction is stable.
    early = consume_all(broker.bootstrap, topic, "read_committed", 1, timeout=6)
    assert values(early) == [b"before"]
    assert values(consume_all(broker.bootstrap, topic, "read_uncommitted", 3)) == [
        b"before", b"inside", b"after"]
    p.commit_transaction(30)
    assert values(consume_all(broker.bootstrap, topic, "read_committed", 3)) == [
        b"before", b"inside", b"after"]


def test_consume_transform_produce_commits_offsets_with_the_output(broker):
    src = create_topic(broker.bootstrap, partitions=1)
    dst = create_topic(broker.bootstrap, partitions=1)
    group = f"ctp-{uuid.uuid4().hex[:6]}"
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(20):
        plain.produce(src, value=b"%d" % i, partition=0)
    plain.flush(10)

    def run(txn_id: str, take: int, commit: bool) -> int:
        c = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False,
                      "isolation.level": "read_committed"})
        c.subscribe([src])
        p = txn_producer(broker.bootstrap, txn_id)
        p.begin_transaction()
        seen = 0
        deadline = time.monotonic() + 20
        while seen < take and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is None or m.error():
                continue
            p.produce(dst, value=b"out-" + m.value(), partition=0)
            seen += 1
        p.send_offsets_to_transaction(c.position(c.assignment()),
                                      c.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        c.close()
        return seen

    assert run("ctp-a", 8, commit=False) == 8  # aborted: neither output nor offsets count
    check = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    (tp,) = check.committed([TopicPartition(src, 0)], timeout=15)
    assert tp.offset < 0, "aborted offsets are not committed"
    assert run("ctp-b", 20, commit=True) == 20  # starts again from the beginning
    (tp,) = check.committed([TopicPartition(src, 0)], timeout=15)
    check.close()
    assert tp.offset == 20
    out = consume_all(broker.bootstrap, dst, "read_committed", 20)
    assert values(out) == [b"out-%d" % i for i in range(20)], "exactly once, in order"


def test_a_second_producer_fences_the_first(broker):
    topic = create_topic(broker.bootstrap, partitions=1)
    txn_id = f"fence-{uuid.uuid4().hex[:6]}"
    old = txn_producer(broker.bootstrap, txn_id)
    old.begin_transaction()
    old.produce(topic, value=b"zombie", partition=0)
    old.flush(10)
    new = txn_producer(broker.bootstrap, txn_id)  # aborts the open transaction, bumps the epoch
    with pytest.raises(KafkaException) as err:
        old.produce(topic, value=b"zombie-2", partition=0)
        old.commit_transaction(30)
    assert err.value.args[0].fatal() or err.value.args[0].code() in (
        KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)
    new.begin_transaction()
    new.produce(topic, value=b"live", partition=0)
    new.commit_transaction(30)
    assert values(consume_all(broker.bootstrap, topic, "read_committed", 1)) == [b"live"]


@pytest.mark.broker_args("--set", "transaction.abort.timed.out.transaction.cleanup.interval.ms=200")
def test_an_abandoned_transaction_is_aborted_after_its_timeout(broker):
    topic = create_topic(broker.bootstrap, partitions=1)
    p = txn_producer(broker.bootstrap, f"t-{uuid.uuid4().hex[:6]}",
                     **{"transaction.timeout.ms": 3000})
    p.begin_transaction()
    p.produce(topic, value=b"abandoned", partition=0)
    p.flush(10)
    del p  # never commits
    plain = Producer({"bootstrap.servers": broker.bootstrap})
    plain.produce(topic, value=b"later", partition=0)
    plain.flush(10)
    started = time.monotonic()
    got = consume_all(broker.bootstrap, topic, "read_committed", 1, timeout=20)
    assert values(got) == [b"later"], "the abandoned records never become visible"
    assert time.monotonic() - started < 20


def test_committed_transactions_survive_a_broker_sigkill(broker):
    topic = create_topic(broker.bootstrap)
    txn_id = f"t-{uuid.uuid4().hex[:6]}"
    p = txn_producer(broker.bootstrap, txn_id)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, value=b"c-%d" % i, partition=i % PARTITIONS)
    p.commit_transaction(30)
    p.begin_transaction()
    for i in range(30):
        p.produce(topic, value=b"open-%d" % i, partition=i % PARTITIONS)
    p.flush(10)
    broker.kill9()
    broker.start()
    # The open transaction cannot commit any more; a new producer with the same id aborts it.
    del p
    q = txn_producer(broker.bootstrap, txn_id)
    q.begin_transaction()
    q.produce(topic, value=b"after-restart", partition=0)
    q.commit_transaction(30)
    got = consume_all(broker.bootstrap, topic, "read_committed", 31)
    assert sorted(values(got)) == sorted([b"c-%d" % i for i in range(30)] + [b"after-restart"])
