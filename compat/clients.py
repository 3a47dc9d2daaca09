"""Client-side helpers shared by the suites (confluent-kafka / librdkafka based).

All waits are bounded; helpers raise AssertionError with context when a
deadline passes so a hung broker turns into a readable failure.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException,
                             Producer, TopicPartition)
from confluent_kafka.admin import AdminClient, NewTopic

ADMIN_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Rec:
    """A record as read back (or as expected), comparable field by field."""
    partition: int
    offset: int
    key: "bytes | None"
    value: "bytes | None"
    headers: tuple = ()
    timestamp: "int | None" = None
    timestamp_type: "int | None" = None


def _hdrs(h) -> tuple:
    if not h:
        return ()
    return tuple((k, None if v is None else bytes(v)) for k, v in h)


def admin(bootstrap: str, **conf) -> AdminClient:
    c = {"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000}
    c.update(conf)
    return AdminClient(c)


def create_topics(bootstrap: str, topics: "dict[str, int]", timeout: float = ADMIN_TIMEOUT_S,
                  **kwargs) -> None:
    """Create topics {name: partitions} with replication factor 1; raise on any error."""
    a = admin(bootstrap)
    futs = a.create_topics([NewTopic(t, num_partitions=n, replication_factor=1)
                            for t, n in topics.items()],
                           operation_timeout=timeout, request_timeout=timeout, **kwargs)
    for t, f in futs.items():
        f.result(timeout=timeout + 5)
    if not kwargs.get("validate_only"):
        wait_for_topics(bootstrap, topics, timeout=timeout)


def list_topics(bootstrap: str, timeout: float = 15.0):
    return admin(bootstrap).list_topics(timeout=timeout)


def describe_topic(bootstrap: str, topic: str, timeout: float = 10.0):
    """TopicMetadata for one topic via a Metadata request naming it (sent from a consumer
    handle, so it never auto-creates). tm.error is set when the topic does not exist."""
    c = consumer(bootstrap)
    try:
        return c.list_topics(topic=topic, timeout=timeout).topics.get(topic)
    finally:
        c.close()


def topic_exists(bootstrap: str, topic: str) -> bool:
    tm = describe_topic(bootstrap, topic)
    return tm is not None and tm.error is None and len(tm.partitions) > 0


def wait_for_topics(bootstrap: str, topics: "dict[str, int]", timeout: float = 20.0):
    """Wait until Metadata shows each topic with the expected partition count and leaders.
    Returns {topic: TopicMetadata}."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = {t: describe_topic(bootstrap, t, timeout=5) for t in topics}
            ok = True
            for t, n in topics.items():
                tm = got[t]
                if tm is None or tm.error is not None or len(tm.partitions) != n or any(
                        p.leader < 0 for p in tm.partitions.values()):
                    ok = False
                    last = (t, tm and tm.error, tm and len(tm.partitions))
            if ok:
                return got
        except KafkaException as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"topics {topics} not visible in Metadata within {timeout}s (last: {last})")


class DeliveryLog:
    """Delivery-report collector for a confluent Producer."""

    def __init__(self):
        self.ok: "list[tuple]" = []  # (partition, offset, key, value, headers, ts)
        self.failed: "list[tuple]" = []  # (KafkaError, key, value)

    def __call__(self, err, msg):
        if err is not None:
            self.failed.append((err, msg.key(), msg.value()))
        else:
            ts_type, ts = msg.timestamp()
            self.ok.append((msg.partition(), msg.offset(), msg.key(), msg.value(),
                            _hdrs(msg.headers()), ts))


def producer(bootstrap: str, **conf) -> Producer:
    c = {"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
         "linger.ms": 5, "message.timeout.ms": 30000, "socket.timeout.ms": 10000}
    c.update(conf)
    return Producer(c)


def flush(p: Producer, timeout: float = 60.0) -> None:
    left = p.flush(timeout)
    assert left == 0, f"{left} messages still undelivered after flush({timeout})"


def consumer(bootstrap: str, **conf) -> Consumer:
    # No consumer groups in this broker stage: a group.id is set because the
    # client wants one, but we only assign() explicit offsets and never commit.
    c = {"bootstrap.servers": bootstrap, "group.id": "gregor-compat-assign",
         "enable.auto.commit": False, "enable.auto.offset.store": False,
         "auto.offset.reset": "earliest", "enable.partition.eof": False,
         "socket.timeout.ms": 10000, "topic.metadata.refresh.interval.ms": 2000,
         "log_level": 3}
    c.update(conf)
    return Consumer(c)


def watermarks(bootstrap: str, topic: str, partitions, timeout: float = 10.0) -> "dict[int, tuple]":
    c = consumer(bootstrap)
    try:
        return {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout, cached=False)
                for p in partitions}
    finally:
        c.close()


def consume_all(bootstrap: str, topic: str, partitions, timeout: float = 60.0,
                start: "dict[int, int] | None" = None, **conf) -> "dict[int, list[Rec]]":
    """Read every record of `partitions` from `start` (default: beginning) up to the
    high watermark observed before reading. Returns {partition: [Rec, ...]}."""
    partitions = list(partitions)
    wm = watermarks(bootstrap, topic, partitions)
    out: "dict[int, list[Rec]]" = {p: [] for p in partitions}
    start = start or {}
    want = {p: wm[p][1] for p in partitions}
    pending = {p for p in partitions if want[p] > (start.get(p, wm[p][0]))}
    if not pending:
        return out
    c = consumer(bootstrap, **conf)
    errors = []
    try:
        c.assign([TopicPartition(topic, p, start.get(p, OFFSET_BEGINNING)) for p in partitions])
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        errors.append(m.error())
                    continue
                p = m.partition()
                ts_type, ts = m.timestamp()
                out[p].append(Rec(p, m.offset(), m.key(), m.value(), _hdrs(m.headers()), ts,
                                  ts_type))
                if m.offset() + 1 >= want[p]:
                    pending.discard(p)
        if pending:
            raise AssertionError(
                f"consume {topic}: partitions {sorted(pending)} did not reach high watermark "
                f"{ {p: want[p] for p in pending} } within {timeout}s; got "
                f"{ {p: len(out[p]) for p in partitions} } records; errors: {errors[:5]}")
    finally:
        c.close()
    return out


def topic_ids(bootstrap: str, topics, timeout: float = 20.0) -> "dict[str, str]":
    """Topic IDs via AdminClient.describe_topics (Metadata with topic IDs)."""
    from confluent_kafka import TopicCollection
    a = admin(bootstrap)
    futs = a.describe_topics(TopicCollection(list(topics)), request_timeout=timeout)
    return {t: uuid_str(f.result(timeout=timeout + 5).topic_id) for t, f in futs.items()}


def uuid_str(u) -> str:
    """confluent_kafka.Uuid -> canonical 8-4-4-4-12 string."""
    m = 2 ** 64 - 1
    return str(uuid.UUID(int=((u.get_most_significant_bits() & m) << 64)
                         | (u.get_least_significant_bits() & m)))


def error_code(exc: BaseException) -> "int | None":
    """KafkaError code carried by a KafkaException (or None)."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].code()
    return None


@dataclass
class Collected:
    errors: list = field(default_factory=list)

    def __call__(self, err):
        self.errors.append(err)
