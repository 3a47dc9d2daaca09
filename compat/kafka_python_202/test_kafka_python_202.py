"""kafka-python 2.0.2, which pins the oldest versions a Kafka 4.x broker serves (ApiVersions v0,
Metadata v0/v1, Produce v7, Fetch v4, ListOffsets v1), end to end: produce keyed records with
headers and timestamps, read them back by assign, find offsets by time, and see the old
versions really were the ones used."""

from __future__ import annotations

import time

import kafka
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition


@pytest.fixture(autouse=True)
def log_request_versions(monkeypatch):
    """The broker logs each request's API and version at debug level; the test reads them."""
    monkeypatch.setenv("RUST_LOG", "info,gregor::protocol=debug")


def test_it_really_is_the_pinned_client():
    assert kafka.__version__ == "2.0.2"


def test_round_trip_with_pinned_versions(broker):
    base = int(time.time() * 1000) - 10_000
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all",
                             api_version_auto_timeout_ms=10_000)
    sent = []
    for i in range(50):
        key, value = b"k%d" % i, b"v%d" % i
        headers = [("h", b"%d" % i), ("h", b"dup")]
        producer.send("old", key=key, value=value, headers=headers,
                      timestamp_ms=base + i).get(timeout=20)
        sent.append((key, value, headers, base + i))
    producer.close(timeout=10)

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             consumer_timeout_ms=5000, api_version_auto_timeout_ms=10_000)
    tp = TopicPartition("old", 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = [(m.key, m.value, m.headers, m.timestamp) for m in consumer]
    assert got == sent, "every record back, in order, keys/headers/timestamps intact"

    assert consumer.beginning_offsets([tp]) == {tp: 0}
    assert consumer.end_offsets([tp]) == {tp: 50}
    found = consumer.offsets_for_times({tp: base + 20})[tp]
    assert (found.offset, found.timestamp) == (20, base + 20)
    consumer.close()

    # The versions 2.0.2 chose against Gregor's ApiVersions are the old pinned ones.
    log = broker.stderr_tail(100_000)
    for api, version in [("ApiVersions", 0), ("Metadata", 1), ("Produce", 7), ("Fetch", 4),
                         ("ListOffsets", 1)]:
        assert f"api={api} version={version} " in log, f"{api} v{version} was used"
    assert "ERROR" not in log


def test_acks_zero(broker):
    """acks=0: no response at all; the records still land, in order."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=0,
                             api_version_auto_timeout_ms=10_000)
    for i in range(20):
        producer.send("zero", key=b"k%d" % i, value=b"v%d" % i)
    producer.flush(timeout=20)
    producer.close(timeout=10)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None,
                             api_version_auto_timeout_ms=10_000)
    tp = TopicPartition("zero", 0)
    deadline = time.monotonic() + 15
    while consumer.end_offsets([tp])[tp] < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    while len(got) < 20 and time.monotonic() < deadline + 10:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend((m.key, m.value) for m in records)
    consumer.close()
    assert got == [(b"k%d" % i, b"v%d" % i) for i in range(20)]
