"""MirrorMaker 2 (the dedicated org.apache.kafka.connect.mirror.MirrorMaker driver) copying a topic
between two gregor brokers, "A" and "B".

The tests of this module share two brokers and one MM2 process and run in order as one story:

  1. records with keys, headers and explicit timestamps are produced to `orders` (3 partitions,
     retention.ms set) on A, and a consumer group commits offsets for it on A;
  2. MM2 (A->B) starts: `A.orders` on B gets every record with key, value, headers and timestamp
     intact, in order per partition, in the same partition, and the topic's partition count and
     retention.ms;
  3. records produced while MM2 runs (a tombstone and a null key among them) follow;
  4. heartbeats reach B; offset syncs are written to A;
  5. the group consumes everything on A and commits: checkpoints for it are emitted to
     `A.checkpoints.internal` on B, its offsets are translated and committed on B
     (sync.group.offsets.enabled), and the group, failed over to B, resumes right after them.
"""

from __future__ import annotations

import struct
import time

import pytest
from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import NewTopic

from broker import Broker
from connect import jvm
from connect.kafkautil import (admin, end_offsets, group_offsets, partitions, read_topic, topic_config,
                               topic_names, wait_for)

M = "mirrormaker2"
TOPIC = "orders"
REMOTE = f"A.{TOPIC}"
PARTS = 3
N_BEFORE = 90    # 30 per partition, produced before MM2 starts
N_AFTER = 30     # produced while MM2 runs
GROUP = "mm2-app"
COMMITTED = 20   # the group's first committed offset on each partition of `orders` on A
RETENTION_MS = "3600000"
BASE_TS = 1_700_000_000_000


class Story:
    def __init__(self, a: Broker, b: Broker, mm: jvm.MirrorMaker):
        self.a, self.b, self.mm = a, b, mm
        self.sent: "list[tuple]" = []  # (partition, key, value, headers, timestamp)
        self.failed: "set[str]" = set()
        self.translated: "dict[int, int]" = {}


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    jvm.forget_touched()
    work = tmp_path_factory.mktemp("mm2")
    a = Broker(work / "broker-A", name="gregor-A")
    b = Broker(work / "broker-B", name="gregor-B")
    a.start()
    b.start()
    props = {
        "clusters": "A, B",
        "A.bootstrap.servers": a.bootstrap,
        "B.bootstrap.servers": b.bootstrap,
        "A->B.enabled": "true",
        "B->A.enabled": "false",
        "A->B.topics": TOPIC,
        "A->B.groups": GROUP,
        "A->B.emit.heartbeats.enabled": "true",
        "A->B.emit.checkpoints.enabled": "true",
        "A->B.sync.group.offsets.enabled": "true",
        # single brokers: every topic MM2 and its Connect workers create has one replica
        "replication.factor": 1,
        "checkpoints.topic.replication.factor": 1,
        "heartbeats.topic.replication.factor": 1,
        "offset-syncs.topic.replication.factor": 1,
        "offset.storage.replication.factor": 1,
        "status.storage.replication.factor": 1,
        "config.storage.replication.factor": 1,
        "offset-syncs.topic.location": "source",
        # sync.topic.acls.enabled stays at its default (true): see test_acl_sync_finds_no_authorizer
        # MM2's defaults are minutes
        "refresh.topics.interval.seconds": 2,
        "refresh.groups.interval.seconds": 2,
        "emit.heartbeats.interval.seconds": 1,
        "emit.checkpoints.interval.seconds": 1,
        "sync.group.offsets.interval.seconds": 1,
        "sync.topic.configs.interval.seconds": 5,
        "offset.lag.max": 0,
        "tasks.max": 1,
        # worker settings of the A->B herder go with the target cluster's prefix; the offset
        # flush (MirrorSourceTask.commit) is also what sends the delayed offset syncs at the end
        # of a topic, which exact offset translation needs (default: every 60 s)
        "B.offset.flush.interval.ms": 1000,
        "B.scheduled.rebalance.max.delay.ms": 2000,
        "B.plugin.discovery": "service_load",
        "plugin.discovery": "service_load",
    }
    # offset translation and checkpoints say what they do at DEBUG
    mm = jvm.MirrorMaker(work / "mm2", props, clusters=["B"], log_levels={
        "org.apache.kafka.connect.mirror.OffsetSyncStore": "debug",
        "org.apache.kafka.connect.mirror.MirrorCheckpointTask": "debug"})
    s = Story(a, b, mm)
    try:
        yield s
    finally:
        mm.stop(timeout=20)
        a.close()
        b.close()


@pytest.fixture(autouse=True)
def _skip_after_failed_step(story):
    if story.failed:
        pytest.skip(f"an earlier step failed: {', '.join(sorted(story.failed))}")


class step:
    """with step(story, name): marks the story failed if the block raises (later steps skip)."""

    def __init__(self, story: Story, name: str):
        self.story, self.name = story, name

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is not None and not issubclass(et, pytest.skip.Exception):
            self.story.failed.add(self.name)
        return False


def produce(story: Story, first: int, count: int) -> None:
    p = Producer({"bootstrap.servers": story.a.bootstrap, "enable.idempotence": True,
                  "linger.ms": 5})
    errors = []
    for i in range(first, first + count):
        part = i % PARTS
        key = None if i % 29 == 7 else f"key-{i:04d}".encode()
        value = None if i % 31 == 11 else f"value-{i:04d}-".encode() + bytes([i % 256]) * (i % 17)
        headers = [("seq", str(i).encode()), ("src", b"A"), ("dup", b"1"), ("dup", b"2")]
        if i % 5 == 0:
            headers.append(("empty", b""))
        ts = BASE_TS + i * 1000
        p.produce(TOPIC, value=value, key=key, partition=part, headers=headers, timestamp=ts,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
        story.sent.append((part, key, value, headers, ts))
    assert p.flush(30) == 0, "produce did not finish"
    assert not errors, errors


def decode_string(buf: bytes, pos: int) -> "tuple[str, int]":
    (n,) = struct.unpack_from(">h", buf, pos)
    return buf[pos + 2:pos + 2 + n].decode(), pos + 2 + n


def decode_checkpoint(key: bytes, value: bytes) -> dict:
    """MM2's Checkpoint: key (group, topic STRING, partition INT32), value version INT16 +
    (upstreamOffset INT64, offset INT64, metadata STRING)."""
    group, pos = decode_string(key, 0)
    topic, pos = decode_string(key, pos)
    (partition,) = struct.unpack_from(">i", key, pos)
    version, upstream, downstream = struct.unpack_from(">hqq", value, 0)
    metadata, _ = decode_string(value, 18)
    return {"group": group, "topic": topic, "partition": partition, "version": version,
            "upstream": upstream, "downstream": downstream, "metadata": metadata}


def decode_offset_sync(key: bytes, value: bytes) -> dict:
    """MM2's OffsetSync: key (topic STRING, partition INT32), value (upstreamOffset INT64,
    offset INT64), no version header."""
    topic, pos = decode_string(key, 0)
    (partition,) = struct.unpack_from(">i", key, pos)
    assert len(value) == 16, value
    upstream, downstream = struct.unpack(">qq", value)
    return {"topic": topic, "partition": partition, "upstream": upstream, "downstream": downstream}


def check_mirrored(story: Story, expect: int) -> "list":
    # no transactions here: the end offsets count the records
    wait_for(lambda: sum(end_offsets(story.b.bootstrap, REMOTE)) >= expect,
             f"{expect} records in {REMOTE} on B", timeout=120, interval=0.5,
             on_fail=lambda: "\n" + story.mm.log_tail(40))
    recs = read_topic(story.b.bootstrap, REMOTE, expect=expect, timeout=30, linger=2.0)
    assert len(recs) == expect, f"{len(recs)} records in {REMOTE}, expected {expect}"
    for p in range(PARTS):
        want = [(k, v, h, ts) for (pp, k, v, h, ts) in story.sent if pp == p]
        got = [(r.key, r.value, r.headers, r.timestamp) for r in recs if r.partition == p]
        assert len(got) == len(want), f"partition {p}: {len(got)} records, expected {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            assert g == w, f"partition {p} record {i}: got {g!r}, expected {w!r}"
        offs = [r.offset for r in recs if r.partition == p]
        assert offs == sorted(offs)
    return recs


# ------------------------------------------------------------------ 1. source data on A

@pytest.mark.check(M, "source_setup", "records with keys/headers/timestamps on A; consumer group offsets committed on A")
def test_produce_on_a_and_commit_group(story):
    with step(story, "setup"):
        a = admin(story.a.bootstrap)
        fs = a.create_topics([NewTopic(TOPIC, PARTS, 1, config={"retention.ms": RETENTION_MS})],
                             request_timeout=15)
        fs[TOPIC].result(timeout=20)
        produce(story, 0, N_BEFORE)
        # the group's committed position on A (what a consumer app would have consumed)
        req = ConsumerGroupTopicPartitions(GROUP, [TopicPartition(TOPIC, p, COMMITTED) for p in range(PARTS)])
        res = a.alter_consumer_group_offsets([req], request_timeout=15)[GROUP].result(timeout=20)
        assert all(tp.error is None for tp in res.topic_partitions), res
        assert group_offsets(story.a.bootstrap, GROUP) == {(TOPIC, p): COMMITTED for p in range(PARTS)}


# ------------------------------------------------------------------ 2. MM2 copies the topic

@pytest.mark.check(M, "mirror_records",
                   "A.orders on B: every record with key, value, headers, timestamp, same partition, in order")
def test_mm2_mirrors_every_record(story, note):
    with step(story, "mirror"):
        started = time.monotonic()
        story.mm.start()
        check_mirrored(story, N_BEFORE)
        note(f"{N_BEFORE} records mirrored {time.monotonic() - started:.1f}s after MM2 started")


@pytest.mark.check(M, "remote_topic", "remote topic created on B with the source's partition count and topic configs (retention.ms)")
def test_remote_topic_partitions_and_configs(story):
    assert partitions(story.b.bootstrap, REMOTE) == PARTS
    wait_for(lambda: topic_config(story.b.bootstrap, REMOTE).get("retention.ms") == RETENTION_MS,
             f"retention.ms={RETENTION_MS} on {REMOTE}", timeout=30)


@pytest.mark.check(M, "mirror_records")
def test_records_produced_while_running_follow(story):
    produce(story, N_BEFORE, N_AFTER)
    check_mirrored(story, N_BEFORE + N_AFTER)


# ------------------------------------------------------------------ 4. heartbeats and offset syncs

@pytest.mark.check(M, "heartbeats_offset_syncs",
                   "heartbeats (A->B) arrive on B; offset syncs written to mm2-offset-syncs.B.internal on A")
def test_heartbeats_and_offset_syncs(story, note):
    def heartbeats():
        out = []
        for r in read_topic(story.b.bootstrap, "heartbeats", timeout=10):
            src, pos = decode_string(r.key, 0)
            tgt, _ = decode_string(r.key, pos)
            assert len(r.value) == 10, r.value  # version INT16 + timestamp INT64
            _version, ts = struct.unpack(">hq", r.value)
            out.append((src, tgt, ts))
        return [h for h in out if h[:2] == ("A", "B")]
    hb = wait_for(heartbeats, "A->B heartbeats on B", timeout=30, interval=1.0)
    now_ms = time.time() * 1000
    assert all(abs(ts - now_ms) < 600_000 for _, _, ts in hb), hb[:3]

    syncs_topic = "mm2-offset-syncs.B.internal"
    assert syncs_topic in topic_names(story.a.bootstrap)
    syncs = [decode_offset_sync(r.key, r.value) for r in read_topic(story.a.bootstrap, syncs_topic, timeout=15)]
    mine = [s for s in syncs if s["topic"] == TOPIC]
    assert {s["partition"] for s in mine} == set(range(PARTS)), syncs[:5]
    # offsets on B are the offsets on A here (no gaps, no transactions): a sync maps u -> u
    assert all(s["upstream"] == s["downstream"] for s in mine), [s for s in mine if s["upstream"] != s["downstream"]][:5]
    note(f"{len(hb)} heartbeats, {len(mine)} offset syncs")


@pytest.mark.check(M, "acl_sync_no_authorizer",
                   "topic ACL sync (default sync.topic.acls.enabled=true): DescribeAcls answers SECURITY_DISABLED, as Kafka without an authorizer")
def test_acl_sync_finds_no_authorizer(story):
    """MM2 syncs topic ACLs at start-up; a broker without an authorizer answers DescribeAcls with
    SECURITY_DISABLED, which MM2 takes as "no ACLs to sync" (one INFO line)."""
    ok = "No ACL authorizer is configured on the source Kafka cluster"
    bad = "DESCRIBE_ACLS"

    def outcome():
        text = story.mm.log_text()
        return ("ok" if ok in text else None) or ("unsupported" if bad in text else None)
    got = wait_for(outcome, "MM2's first topic ACL sync", timeout=30)
    if got != "ok":
        line = next((ln for ln in story.mm.log_text().splitlines() if bad in ln), "")
        pytest.fail(f"MM2's ACL sync failed: {line.strip()[:200]}")


# ------------------------------------------------------------------ 5. checkpoints and group offsets

def group_consume(bootstrap: str, topic: str, expect: int, timeout: float = 60.0) -> list:
    """Consume `expect` records of `topic` as group GROUP (subscribe), commit them, leave."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": GROUP, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "session.timeout.ms": 10000})
    got = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < expect and time.monotonic() < deadline:
            msg = c.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
        # anything beyond `expect` would show up now
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            msg = c.poll(0.3)
            if msg is not None and msg.error() is None:
                got.append(msg)
        if got:
            c.commit(asynchronous=False)
    finally:
        c.close()
    return got


@pytest.mark.check(M, "checkpoints",
                   "a group consumes the topic on A and commits; checkpoints (upstream -> downstream offsets) emitted to A.checkpoints.internal on B")
def test_checkpoints_emitted(story, note):
    with step(story, "checkpoints"):
        end = {p: sum(1 for s in story.sent if s[0] == p) for p in range(PARTS)}
        # the group resumes from its committed offsets (COMMITTED on each partition)
        rest = sum(end.values()) - PARTS * COMMITTED
        msgs = group_consume(story.a.bootstrap, TOPIC, rest)
        assert len(msgs) == rest, f"group read {len(msgs)} of {rest} records on A"
        assert sorted((m.partition(), m.offset()) for m in msgs) == sorted(
            (p, o) for p in range(PARTS) for o in range(COMMITTED, end[p]))
        assert group_offsets(story.a.bootstrap, GROUP) == {(TOPIC, p): end[p] for p in range(PARTS)}

        def checkpoints():
            out = {}
            for r in read_topic(story.b.bootstrap, "A.checkpoints.internal", timeout=10):
                c = decode_checkpoint(r.key, r.value)
                if c["group"] == GROUP:
                    out[(c["topic"], c["partition"])] = c  # the latest per partition
            # no gaps, no transactions: offsets on B equal those on A, and a group at the end of
            # the topic translates exactly (the last offset sync + 1) once that sync has arrived;
            # until then MM2 checkpoints conservatively (an earlier sync + 1)
            done = len(out) == PARTS and all(
                c["topic"] == REMOTE and c["upstream"] == end[c["partition"]] == c["downstream"]
                for c in out.values())
            return done and out
        last = {}

        def show():
            return " last: " + ", ".join(f"{c['topic']}-{c['partition']} {c['upstream']}->{c['downstream']}"
                                         for c in last.values()) + "\n" + story.mm.log_tail(20)
        cps = wait_for(lambda: last.update(checkpoints() or {}) or checkpoints(),
                       f"checkpoints of {GROUP} at the end offsets {end}", timeout=60, interval=1.0,
                       on_fail=show)
        story.translated = {p: c["downstream"] for (_, p), c in cps.items()}
        note("checkpoints " + ", ".join(f"p{p}: {c['upstream']}->{c['downstream']}"
                                        for (_, p), c in sorted(cps.items())))


@pytest.mark.check(M, "group_offsets_synced",
                   "group offsets translated and committed on B (sync.group.offsets.enabled); the group resumes on B after them")
def test_group_offsets_synced_to_b_and_resume(story, note):
    want = {(REMOTE, p): off for p, off in story.translated.items()}
    wait_for(lambda: group_offsets(story.b.bootstrap, GROUP) == want, f"{GROUP} offsets {want} on B",
             timeout=60, interval=1.0, on_fail=lambda: f" got {group_offsets(story.b.bootstrap, GROUP)}")
    # fail over: new records on A reach B, and the group, now consuming on B, gets exactly those
    before = len(story.sent)
    produce(story, before, 6)
    check_mirrored(story, before + 6)
    msgs = group_consume(story.b.bootstrap, REMOTE, 6, timeout=60)
    def nk(x):  # sortable with None keys/values
        return tuple((v is None, v or b"") if not isinstance(v, int) else v for v in x)
    got = sorted(((m.partition(), m.key(), m.value()) for m in msgs), key=nk)
    new = sorted(((p, k, v) for (p, k, v, _h, _ts) in story.sent[before:]), key=nk)
    assert got == new, f"group on B read {len(got)} records: {got[:8]}"
    note("offsets on B: " + ", ".join(f"p{p}={off}" for (_, p), off in sorted(want.items())))
