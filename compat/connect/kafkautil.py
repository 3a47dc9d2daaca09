"""confluent-kafka helpers shared by the Connect and MirrorMaker 2 tests: read a topic back
(bounded), describe topics and configs, read consumer-group offsets."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

STEP_TIMEOUT_S = 60.0


@dataclass
class Rec:
    partition: int
    offset: int
    key: "bytes | None"
    value: "bytes | None"
    headers: "list[tuple[str, bytes]]"
    timestamp: int


def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def partitions(bootstrap: str, topic: str, timeout: float = 10.0) -> int:
    # all topics, not list_topics(topic=...): librdkafka would ask with allow_auto_topic_creation
    # and create the topic (with the broker's defaults) before Connect or MM2 gets to create it
    md = admin(bootstrap).list_topics(timeout=timeout)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return 0
    return len(t.partitions)


def topic_names(bootstrap: str) -> "set[str]":
    return set(admin(bootstrap).list_topics(timeout=10).topics)


def topic_config(bootstrap: str, topic: str) -> "dict[str, str]":
    res = ConfigResource(ResourceType.TOPIC, topic)
    a = admin(bootstrap)  # keep the handle alive until the future resolves
    fut = a.describe_configs([res], request_timeout=15)[res]
    return {k: v.value for k, v in fut.result(timeout=20).items()}


def cluster_id(bootstrap: str) -> str:
    a = admin(bootstrap)
    return a.describe_cluster(request_timeout=15).result(timeout=20).cluster_id


def group_offsets(bootstrap: str, group: str) -> "dict[tuple[str, int], int]":
    a = admin(bootstrap)
    fut = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)], request_timeout=15)[group]
    out = {}
    for tp in fut.result(timeout=20).topic_partitions:
        if tp.error is None and tp.offset >= 0:
            out[(tp.topic, tp.partition)] = tp.offset
    return out


def end_offsets(bootstrap: str, topic: str) -> "list[int]":
    """High watermark of every partition of `topic` ([] if it does not exist)."""
    n = partitions(bootstrap, topic)
    if n == 0:
        return []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-connect-reader"})
    try:
        return [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(n)]
    except KafkaException:  # a topic created a moment ago: not known everywhere yet
        return []
    finally:
        c.close()


def read_topic(bootstrap: str, topic: str, *, expect: "int | None" = None,
               isolation: str = "read_committed", timeout: float = STEP_TIMEOUT_S,
               linger: float = 1.5) -> "list[Rec]":
    """Every record of `topic` from the beginning (all partitions, assign(), no group).

    Reads until `expect` records arrived (then `linger` seconds more, so extras show up) or,
    without `expect`, until every partition reached its end offset as seen at the start; bounded
    by `timeout` in any case."""
    n = partitions(bootstrap, topic)
    if n == 0:
        return []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "compat-connect-reader",
                  "enable.auto.commit": False, "isolation.level": isolation,
                  "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        c.assign([TopicPartition(topic, p, 0) for p in range(n)])
        out: "list[Rec]" = []
        eof: "set[int]" = set()
        deadline = time.monotonic() + timeout
        done_at = None
        while time.monotonic() < deadline:
            if done_at is not None and time.monotonic() >= done_at:
                break
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == -191:  # _PARTITION_EOF
                    eof.add(msg.partition())
                    if expect is None and len(eof) == n:
                        break
                    continue
                raise KafkaException(msg.error())
            eof.discard(msg.partition())
            out.append(Rec(msg.partition(), msg.offset(), msg.key(), msg.value(),
                           list(msg.headers() or []), msg.timestamp()[1]))
            if expect is not None and len(out) >= expect and done_at is None:
                done_at = time.monotonic() + linger
        return out
    finally:
        c.close()


def wait_for(pred, what: str, timeout: float = STEP_TIMEOUT_S, interval: float = 0.5, on_fail=None):
    """Poll `pred()` until truthy (returns its value) or fail with `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    extra = on_fail() if on_fail else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}){extra}")
