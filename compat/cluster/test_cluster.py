"""Multi-process cluster suite: three real `gregor` processes (combined broker + controller
nodes, one Raft metadata quorum) driven by real clients — confluent-kafka (librdkafka),
kafka-python (a second read-back, and the second group member), and Kafka's own CLI tools when
compat/kafka_tools is installed.

Owns the cluster-level checks, each asserted on data rather than on "no error":
  - partitions spread over all brokers, and a full produce/consume round trip (keys, headers,
    timestamps, per-partition order) through each broker as the only bootstrap server;
  - a consumer group whose coordinator is not the bootstrap broker commits, and a second
    member resumes from the committed offsets;
  - SIGKILL of one node (a plain broker, or the active controller): admin writes through a
    survivor go on within a bound, the dead node's partitions are fenced, and after its restart
    every node lists identical metadata and the data is intact;
  - SIGKILL of all three and restart: topics, partition counts, topic ids and configs unchanged;
  - kafka-topics.sh --describe, kafka-metadata-quorum.sh describe --status / --replication;
  - timings (start-up, controller failover to the first admin write, partitions led again),
    printed in the "cluster timings" section at the end of the run.

Each node's own view is read with a raw Metadata request to that node (cluster.metadata), since
a client library answers from whichever broker it picked.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import (KafkaError, KafkaException, Consumer, Producer, TopicPartition,
                             OFFSET_BEGINNING)
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                   ConfigSource, NewPartitions, NewTopic, ResourceType)

import rawkafka

ADMIN_TIMEOUT_S = 15.0
# Bound on "the cluster goes on after losing a node": election (election timeout 1 s plus up to
# as much again at random) plus client metadata refresh, with room for a loaded 2-core machine.
FAILOVER_BOUND_S = 30.0
CREATE_TIME = 1  # confluent_kafka.TIMESTAMP_CREATE_TIME


# --------------------------------------------------------------------------- helpers

def admin(bootstrap: str) -> AdminClient:
    # log_level 0: connection-refused noise about killed nodes is expected here; real errors
    # come back through the futures.
    return AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 10000,
                        "log_level": 0})


def create_topic(bootstrap: str, name: str, partitions: int, rf: int = 1,
                 config: "dict[str, str] | None" = None,
                 timeout: float = ADMIN_TIMEOUT_S) -> None:
    """CreateTopics through `bootstrap`; raises on any error."""
    a = admin(bootstrap)  # held until the futures resolve: a freed client fails them
    futs = a.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=rf, config=config or {})],
        operation_timeout=timeout, request_timeout=timeout)
    futs[name].result(timeout=timeout + 5)


def topic_led(md: dict, topic: str, partitions: int) -> bool:
    """The topic is in this node's Metadata with `partitions` partitions, all with a leader."""
    t = md["topics"].get(topic)
    return (t is not None and t["error"] == 0 and len(t["partitions"]) == partitions
            and all(p["leader"] >= 0 for p in t["partitions"].values()))


def all_led(md: dict) -> bool:
    return all(p["leader"] >= 0 for t in md["topics"].values() for p in t["partitions"].values())


def identical(views: "dict[int, dict]") -> bool:
    vals = list(views.values())
    return all(v == vals[0] for v in vals[1:])


def leaders(md: dict, topic: str) -> "dict[int, int]":
    return {p: v["leader"] for p, v in md["topics"][topic]["partitions"].items()}


def retry_until(fn, timeout: float, what: str):
    """Call fn() until it returns without raising; return (result, seconds taken)."""
    t0 = time.monotonic()
    errors = []
    while True:
        try:
            return fn(), time.monotonic() - t0
        except (KafkaException, OSError, AssertionError) as e:
            errors.append(repr(e))
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: no success within {timeout}s; last errors: "
                                 f"{errors[-3:]} ({len(errors)} attempts)")
        time.sleep(0.2)


def producer(bootstrap: str) -> Producer:
    return Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                     "linger.ms": 5, "message.timeout.ms": 30000, "socket.timeout.ms": 10000,
                     "log_level": 0})


def produce(bootstrap: str, topic: str, records: "list[dict]", timeout: float = 40.0) -> list:
    """Produce records ({partition, key, value, headers, timestamp}) in order through one
    bootstrap; return the delivered (partition, offset) of each, in the same order."""
    p = producer(bootstrap)
    out: "list" = [None] * len(records)
    failed = []

    def report(i):
        def cb(err, msg):
            if err is not None:
                failed.append((i, err))
            else:
                out[i] = (msg.partition(), msg.offset())
        return cb

    for i, r in enumerate(records):
        while True:
            try:
                p.produce(topic, value=r["value"], key=r["key"], partition=r["partition"],
                          headers=r.get("headers"), timestamp=r.get("timestamp", 0),
                          on_delivery=report(i))
                break
            except BufferError:  # local queue full: let deliveries drain
                p.poll(0.1)
    left = p.flush(timeout)
    assert left == 0, f"{left} records undelivered after {timeout}s through {bootstrap}"
    assert not failed, f"deliveries failed through {bootstrap}: {failed[:5]}"
    return out


def consume_range(bootstrap: str, topic: str, ends: "dict[int, int]",
                  timeout: float = 40.0) -> "dict[int, list[tuple]]":
    """Read partitions from the beginning up to (excluding) ends[p] with assign() through one
    bootstrap: {p: [(offset, key, value, headers, timestamp_type, timestamp)]}."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cluster-suite-assign",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "socket.timeout.ms": 10000, "log_level": 3})
    got: "dict[int, list[tuple]]" = {p: [] for p in ends}
    pending = {p for p, e in ends.items() if e > 0}
    errors = []
    try:
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for m in c.consume(num_messages=500, timeout=0.5):
                if m.error() is not None:
                    if m.error().code() != KafkaError._PARTITION_EOF:
                        errors.append(m.error())
                    continue
                ts_type, ts = m.timestamp()
                hdrs = tuple((k, bytes(v) if v is not None else None)
                             for k, v in (m.headers() or []))
                got[m.partition()].append((m.offset(), m.key(), m.value(), hdrs, ts_type, ts))
                if m.offset() + 1 >= ends[m.partition()]:
                    pending.discard(m.partition())
    finally:
        c.close()
    assert not pending, (f"through {bootstrap}: partitions {sorted(pending)} of {topic} not read "
                         f"up to {ends} within {timeout}s; got "
                         f"{ {p: len(v) for p, v in got.items()} }; errors {errors[:5]}")
    return got


def first_diff(got: list, want: list):
    """(index, got, wanted) of the first differing record (None past either end)."""
    for i in range(max(len(got), len(want))):
        g = got[i] if i < len(got) else None
        w = want[i] if i < len(want) else None
        if g != w:
            return i, g, w
    return None


def controller_id(bootstrap: str) -> int:
    a = admin(bootstrap)
    d = a.describe_cluster(request_timeout=ADMIN_TIMEOUT_S).result(timeout=ADMIN_TIMEOUT_S + 5)
    assert d.controller is not None, "DescribeCluster named no controller"
    return d.controller.id


def dynamic_topic_configs(bootstrap: str, topics) -> "dict[str, dict[str, str]]":
    """{topic: {name: value}} of the configs set on each topic (source DYNAMIC_TOPIC_CONFIG)."""
    a = admin(bootstrap)
    res = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
    out = {}
    for r, f in a.describe_configs(res, request_timeout=ADMIN_TIMEOUT_S).items():
        entries = f.result(timeout=ADMIN_TIMEOUT_S + 5)
        out[r.name] = {k: e.value for k, e in entries.items()
                       if e.source in (ConfigSource.DYNAMIC_TOPIC_CONFIG,
                                       ConfigSource.DYNAMIC_TOPIC_CONFIG.value)}
    return out


def set_topic_config(bootstrap: str, topic: str, name: str, value: str) -> None:
    res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)])
    a = admin(bootstrap)
    for f in a.incremental_alter_configs([res], request_timeout=ADMIN_TIMEOUT_S).values():
        f.result(timeout=ADMIN_TIMEOUT_S + 5)


def offsets_partition(group: str, partitions: int) -> int:
    """The __consumer_offsets partition of a group, as Kafka places it:
    Utils.abs(groupId.hashCode()) % partitions, with Java's String.hashCode over UTF-16 units
    and Utils.abs(n) = n == Integer.MIN_VALUE ? 0 : Math.abs(n)."""
    b = group.encode("utf-16-be")
    h = 0
    for i in range(0, len(b), 2):
        h = (31 * h + int.from_bytes(b[i:i + 2], "big")) & 0xFFFFFFFF
    if h >= 0x80000000:
        h -= 0x100000000
    return (0 if h == -0x80000000 else abs(h)) % partitions


# --------------------------------------------------------------------------- a. spread + round trip

def test_partitions_spread_and_each_bootstrap_round_trips(cluster):
    topic, nparts, per = "spread", 6, 15
    create_topic(cluster.node(2).bootstrap, topic, nparts)
    views = cluster.wait_metadata(
        lambda v: identical(v) and all(topic_led(md, topic, nparts) for md in v.values()),
        what=f"{topic} with {nparts} led partitions, identical on every node")
    lead = leaders(views[1], topic)
    assert set(lead.values()) == {1, 2, 3}, f"partition leaders {lead} do not cover all 3 brokers"
    assert set(views[1]["brokers"]) == {1, 2, 3}
    for i, n in cluster.nodes.items():
        host, port, _rack = views[1]["brokers"][i]
        assert (host, port) == (n.host, n.port), f"broker {i} advertised as {host}:{port}"

    # The client's own view through a single bootstrap: all three brokers.
    md = admin(cluster.node(3).bootstrap).list_topics(timeout=10)
    assert sorted(md.brokers) == [1, 2, 3], f"client sees brokers {sorted(md.brokers)}"

    # Produce through each broker in turn as the only bootstrap: most partitions are led by
    # other brokers, so the client must route by Metadata.
    expected: "dict[int, list[tuple]]" = {p: [] for p in range(nparts)}
    base_ts = 1_700_000_000_000
    for nid in cluster.ids:
        records = []
        for p in range(nparts):
            for seq in range(per):
                records.append({
                    "partition": p, "key": f"k-{nid}-{p}-{seq}".encode(),
                    "value": f"v-{nid}-{p}-{seq}-".encode() + bytes([seq % 256]) * (seq * 7),
                    # A repeated header key: order and duplicates must survive.
                    "headers": [("via", str(nid).encode()), ("seq", str(seq).encode()),
                                ("via", b"again")],
                    "timestamp": base_ts + nid * 100_000 + p * 1000 + seq})
        delivered = produce(cluster.node(nid).bootstrap, topic, records)
        for r, (p, off) in zip(records, delivered):
            assert p == r["partition"]
            expected[p].append((off, r["key"], r["value"], tuple(r["headers"]), CREATE_TIME,
                                r["timestamp"]))
    for p, recs in expected.items():
        assert [r[0] for r in recs] == list(range(len(recs))), \
            f"partition {p}: delivered offsets {[r[0] for r in recs]} are not 0..{len(recs) - 1}"

    ends = {p: len(recs) for p, recs in expected.items()}
    for nid in cluster.ids:
        got = consume_range(cluster.node(nid).bootstrap, topic, ends)
        for p in range(nparts):
            assert got[p] == expected[p], (
                f"through node {nid}, partition {p} (leader {lead[p]}): {len(got[p])} records "
                f"read, {len(expected[p])} written; first difference {first_diff(got[p], expected[p])}")


    # And a second client library, kafka-python, through node 2 alone.
    got = consume_range_kafka_python(cluster.node(2).bootstrap, topic, ends)
    for p in range(nparts):
        assert got[p] == expected[p], (
            f"kafka-python through node 2, partition {p}: {len(got[p])} records read; first "
            f"difference {first_diff(got[p], expected[p])}")
    cluster.assert_nobody_fenced("while all three ran")


def consume_range_kafka_python(bootstrap: str, topic: str, ends: "dict[int, int]",
                               timeout: float = 40.0) -> "dict[int, list[tuple]]":
    """consume_range with kafka-python (no group): the same tuples, timestamp type mapped to
    librdkafka's numbering (kafka-python: 0 = CreateTime, 1 = LogAppendTime)."""
    from kafka import KafkaConsumer, TopicPartition as KTP
    c = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=None, enable_auto_commit=False,
                      request_timeout_ms=30000)
    got: "dict[int, list[tuple]]" = {p: [] for p in ends}
    try:
        c.assign([KTP(topic, p) for p in ends])
        c.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while any(len(got[p]) < e for p, e in ends.items()) and time.monotonic() < deadline:
            for tp, msgs in c.poll(timeout_ms=500).items():
                got[tp.partition].extend(
                    (m.offset, m.key, m.value, tuple((k, v) for k, v in m.headers),
                     m.timestamp_type + 1, m.timestamp) for m in msgs)
    finally:
        c.close()
    return got


# --------------------------------------------------------------------------- b. group elsewhere

def test_group_coordinated_elsewhere_commits_and_second_member_resumes(cluster):
    from kafka import KafkaConsumer  # kafka-python: the second member is another client

    topic, nparts, batch = "grouped", 3, 10
    boot = cluster.node(1)
    create_topic(boot.bootstrap, topic, nparts)
    cluster.wait_metadata(lambda v: all(topic_led(md, topic, nparts) for md in v.values()),
                          what=f"{topic} led on every node")

    # A group whose coordinator (the leader of its __consumer_offsets partition) is not node 1.
    tried = {}
    gid = coord = None
    for i in range(40):
        g = f"cluster-group-{i}"
        fc = rawkafka.find_coordinator(boot.host, boot.port, g)
        tried[g] = (fc["error"], fc["node_id"])
        if fc["error"] == 0 and fc["node_id"] != 1:
            gid, coord = g, fc["node_id"]
            break
    assert gid is not None, (
        f"FindCoordinator asked of node 1 never named another broker for 40 groups "
        f"(error, node_id): {list(tried.values())[:10]}... — groups are not placed on the "
        f"leaders of their __consumer_offsets partitions")
    # Every node names the same coordinator, and it leads the group's offsets partition.
    for i, n in cluster.nodes.items():
        fc = rawkafka.find_coordinator(n.host, n.port, gid)
        assert (fc["error"], fc["node_id"]) == (0, coord), f"node {i} says {fc} for {gid}"
        assert (fc["host"], fc["port"]) == (cluster.node(coord).host, cluster.node(coord).port)
    offsets_md = cluster.metadata(1)["topics"]["__consumer_offsets"]
    op = offsets_partition(gid, len(offsets_md["partitions"]))
    assert offsets_md["partitions"][op]["leader"] == coord, (
        f"{gid} hashes to __consumer_offsets-{op}, led by "
        f"{offsets_md['partitions'][op]['leader']}, but the coordinator is {coord}")

    def batch_records(tag):
        return [{"partition": p, "key": f"{tag}-{p}-{s}".encode(),
                 "value": f"{tag}-{p}-{s}".encode()}
                for p in range(nparts) for s in range(batch)]

    produce(boot.bootstrap, topic, batch_records("first"))

    # Member 1 (confluent-kafka, bootstrap node 1 only) reads the first batch and commits.
    c1 = Consumer({"bootstrap.servers": boot.bootstrap, "group.id": gid,
                   "enable.auto.commit": False, "auto.offset.reset": "earliest",
                   "session.timeout.ms": 10000, "socket.timeout.ms": 10000, "log_level": 3})
    seen1 = []
    try:
        c1.subscribe([topic])
        deadline = time.monotonic() + 40
        while len(seen1) < nparts * batch and time.monotonic() < deadline:
            for m in c1.consume(num_messages=100, timeout=0.5):
                assert m.error() is None, f"member 1: {m.error()}"
                seen1.append(m.value().decode())
        assert sorted(seen1) == sorted(r["value"].decode() for r in batch_records("first")), \
            f"member 1 read {len(seen1)} of {nparts * batch}: {sorted(seen1)[:5]}..."
        committed = c1.commit(asynchronous=False)
        assert {tp.partition: tp.offset for tp in committed} == {p: batch for p in range(nparts)}
        assert all(tp.error is None for tp in committed), committed
    finally:
        c1.close()

    produce(boot.bootstrap, topic, batch_records("second"))

    # Member 2 (kafka-python, bootstrap node 1 only) resumes from the commit: only the second
    # batch, from offset `batch` on every partition.
    c2 = KafkaConsumer(bootstrap_servers=[boot.bootstrap], group_id=gid,
                       enable_auto_commit=False, auto_offset_reset="earliest",
                       session_timeout_ms=10000, request_timeout_ms=30000)
    seen2 = []
    try:
        c2.subscribe([topic])
        deadline = time.monotonic() + 40
        while len(seen2) < nparts * batch and time.monotonic() < deadline:
            for tp, msgs in c2.poll(timeout_ms=500).items():
                seen2.extend((tp.partition, m.offset, m.value.decode()) for m in msgs)
        assert not [s for s in seen2 if s[2].startswith("first")], \
            f"member 2 re-read committed records: {[s for s in seen2 if s[2].startswith('first')][:5]}"
        assert sorted(s[2] for s in seen2) == sorted(r["value"].decode()
                                                     for r in batch_records("second"))
        assert min(s[1] for s in seen2) == batch
        c2.commit()
    finally:
        c2.close()

    # The commits as every node's admin path sees them, and the coordinator the client found.
    a = admin(cluster.node(3).bootstrap)
    from confluent_kafka import ConsumerGroupTopicPartitions
    res = a.list_consumer_group_offsets([ConsumerGroupTopicPartitions(gid)])[gid].result(timeout=20)
    assert {tp.partition: tp.offset for tp in res.topic_partitions if tp.topic == topic} == \
        {p: 2 * batch for p in range(nparts)}
    desc = a.describe_consumer_groups([gid])[gid].result(timeout=20)
    assert desc.coordinator.id == coord, f"DescribeGroups coordinator {desc.coordinator.id} != {coord}"
    cluster.assert_nobody_fenced("while all three ran")


# --------------------------------------------------------------------------- c. kill one node

@pytest.mark.parametrize("victim_role", ["broker", "controller"])
def test_sigkill_one_node_admin_goes_on_and_metadata_converges(cluster, victim_role, timings):
    topic, nparts = "before-kill", 6
    create_topic(cluster.node(1).bootstrap, topic, nparts)
    cluster.wait_metadata(
        lambda v: identical(v) and all(topic_led(md, topic, nparts) for md in v.values()),
        what=f"{topic} identical and led on every node")
    records = [{"partition": p, "key": f"k{p}-{s}".encode(), "value": f"v{p}-{s}".encode(),
                "headers": [("h", b"x")], "timestamp": 1_700_000_000_000 + s}
               for p in range(nparts) for s in range(4)]
    produce(cluster.bootstrap, topic, records)

    ctl = controller_id(cluster.bootstrap)
    views = cluster.wait_metadata(lambda v: {md["controller_id"] for md in v.values()} == {ctl},
                                  what=f"every node naming controller {ctl}")
    victim = ctl if victim_role == "controller" else next(i for i in cluster.ids if i != ctl)
    survivors = [i for i in cluster.ids if i != victim]
    via = cluster.node(survivors[0]).bootstrap
    cluster.assert_nobody_fenced("before any node was killed")
    victim_parts = [p for p, l in leaders(views[1], topic).items() if l == victim]
    assert victim_parts, f"node {victim} leads no partition of {topic}: {leaders(views[1], topic)}"

    # While the client below retries, a side thread asks the survivors' own Metadata which
    # controller they name: the quorum's failover, apart from the client's request timeouts.
    named: "dict[str, float]" = {}
    stop_watch = threading.Event()

    def watch_controller():
        while not stop_watch.is_set():
            try:
                ctls = {cluster.metadata(i, timeout=2)["controller_id"] for i in survivors}
                if len(ctls) == 1 and ctls <= set(survivors):
                    named["s"] = time.monotonic() - t_kill
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_controller, daemon=True)
    t_kill = time.monotonic()
    assert cluster.kill(victim) == -9
    watcher.start()

    # Admin writes through a survivor alone, a fresh client each try (as a restarted tool would
    # be), 3 s per try. A retried CreateTopics whose first try committed answers
    # TOPIC_ALREADY_EXISTS, which counts as done.
    def create_after():
        try:
            create_topic(via, "after-kill", 3, timeout=3)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    try:
        _, first_write_s = retry_until(
            create_after, FAILOVER_BOUND_S,
            f"CreateTopics via node {survivors[0]} after killing {victim}")
        watcher.join(timeout=FAILOVER_BOUND_S)
    finally:
        stop_watch.set()
    assert "s" in named, f"survivors {survivors} never agreed on a surviving controller"
    timings(f"{victim_role} (node {victim}) SIGKILL -> survivors' Metadata name one live "
            f"controller", named["s"])
    timings(f"{victim_role} (node {victim}) SIGKILL -> first successful CreateTopics via a survivor",
            first_write_s)
    _, alter_s = retry_until(lambda: set_topic_config(via, topic, "retention.ms", "4242000"),
                             FAILOVER_BOUND_S, "IncrementalAlterConfigs via a survivor")
    assert dynamic_topic_configs(via, [topic])[topic].get("retention.ms") == "4242000"

    # Fenced after broker.session.timeout.ms (2 s here): its partitions show no leader and it is
    # no longer listed, on both survivors.
    cluster.wait_metadata(
        lambda v: all(victim not in md["brokers"]
                      and all(leaders(md, topic)[p] == -1 for p in victim_parts)
                      for md in v.values()),
        node_ids=survivors, timeout=20,
        what=f"node {victim} unlisted and its partitions {victim_parts} leaderless on survivors")
    timings(f"{victim_role} (node {victim}) SIGKILL -> its partitions shown leaderless (fenced)",
            time.monotonic() - t_kill)
    wrongly = [ln for ln in cluster.fencing_events()
               if "fenced=true" in ln and f"broker={victim} " not in ln]
    assert not wrongly, f"survivors fenced too:\n" + "\n".join(wrongly)
    if victim_role == "controller":
        new_ctl = controller_id(via)
        assert new_ctl in survivors, f"controller after killing {victim}: {new_ctl}"

    restart_ready_s = cluster.restart(victim)
    t_restart_ready = time.monotonic()
    views = cluster.wait_metadata(
        lambda v: identical(v) and all(all_led(md) and set(md["brokers"]) == {1, 2, 3}
                                       for md in v.values())
        and topic_led(v[1], "after-kill", 3),
        timeout=30, what="identical metadata on all 3 nodes, every partition led")
    led_again_s = restart_ready_s + (time.monotonic() - t_restart_ready)
    timings(f"restart of killed {victim_role} node -> ready", restart_ready_s)
    timings(f"restart of killed {victim_role} node -> its partitions led again on every node",
            led_again_s)
    assert all(leaders(views[1], topic)[p] == victim for p in victim_parts), \
        f"after restart {topic} leaders {leaders(views[1], topic)}; node {victim} led {victim_parts}"

    # The data written before the kill is all there, through the restarted node alone.
    ends = {p: 4 for p in range(nparts)}
    got = consume_range(cluster.node(victim).bootstrap, topic, ends)
    for p in range(nparts):
        assert [(g[1], g[2], g[5]) for g in got[p]] == [
            (r["key"], r["value"], r["timestamp"]) for r in records if r["partition"] == p]
    # And every node serves the config written while it was down.
    assert dynamic_topic_configs(cluster.node(victim).bootstrap, [topic])[topic].get(
        "retention.ms") == "4242000"


# --------------------------------------------------------------------------- d. kill all

def test_sigkill_all_three_and_restart_keeps_topics_ids_and_configs(cluster, timings):
    boot = cluster.node(1).bootstrap
    create_topic(boot, "keep-a", 1, config={"cleanup.policy": "compact",
                                            "retention.ms": "3600000"})
    create_topic(cluster.node(2).bootstrap, "keep-b", 5, config={"max.message.bytes": "65536"})
    create_topic(cluster.node(3).bootstrap, "keep-c", 3)
    create_topic(boot, "keep-gone", 2)
    a = admin(boot)
    for f in a.create_partitions([NewPartitions("keep-c", 4)],
                                 request_timeout=ADMIN_TIMEOUT_S).values():
        f.result(timeout=ADMIN_TIMEOUT_S + 5)
    set_topic_config(cluster.node(2).bootstrap, "keep-b", "segment.bytes", "1048576")
    for f in a.delete_topics(["keep-gone"], request_timeout=ADMIN_TIMEOUT_S).values():
        f.result(timeout=ADMIN_TIMEOUT_S + 5)
    topics = {"keep-a": 1, "keep-b": 5, "keep-c": 4}

    def settled(v):
        return identical(v) and all(
            all(topic_led(md, t, n) for t, n in topics.items()) and "keep-gone" not in md["topics"]
            for md in v.values())
    before = cluster.wait_metadata(settled, what="keep-* topics identical and led everywhere")[1]
    configs_before = dynamic_topic_configs(boot, topics)
    assert configs_before["keep-a"] == {"cleanup.policy": "compact", "retention.ms": "3600000"}
    assert configs_before["keep-b"] == {"max.message.bytes": "65536", "segment.bytes": "1048576"}
    assert configs_before["keep-c"] == {}
    records = [{"partition": p, "key": f"k{p}".encode(), "value": f"kept-{p}".encode()}
               for p in range(5)]
    produce(cluster.bootstrap, "keep-b", records)

    cluster.assert_nobody_fenced("before the kill")
    cluster.kill_all()
    restart_s = cluster.restart(*cluster.ids)
    timings("all 3 SIGKILLed -> restarted together -> all ready", restart_s)
    after_views = cluster.wait_metadata(settled, timeout=30,
                                        what="keep-* topics identical and led after restart")

    def shape(md):
        return {t: (v["topic_id"], len(v["partitions"]),
                    {p: pv["replicas"] for p, pv in v["partitions"].items()})
                for t, v in md["topics"].items() if not t.startswith("__")}
    assert shape(after_views[1]) == shape(before), "topics, ids or placements changed"
    assert after_views[1]["cluster_id"] == before["cluster_id"]
    for nid in cluster.ids:
        assert dynamic_topic_configs(cluster.node(nid).bootstrap, topics) == configs_before, \
            f"configs through node {nid} differ after restart"
    got = consume_range(cluster.node(3).bootstrap, "keep-b", {p: 1 for p in range(5)})
    assert {p: [(g[1], g[2]) for g in got[p]] for p in got} == \
        {r["partition"]: [(r["key"], r["value"])] for r in records}


# --------------------------------------------------------------------------- f. Kafka CLI

KAFKA_TOOLS = Path(__file__).resolve().parent.parent / "kafka_tools"
# As in compat/kafka_tools/conftest.py: C1 only and the serial GC start a short-lived tool faster.
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -Djava.awt.headless=true"


def kafka_tool(tool: str, *args: str, timeout: float = 90) -> str:
    env = dict(os.environ)
    env.pop("GREGOR_BIN", None)
    env.setdefault("KAFKA_JVM_PERFORMANCE_OPTS", FAST_JVM)
    argv = [str(KAFKA_TOOLS / "bin" / tool), *args]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    assert p.returncode == 0, (f"$ {' '.join(argv)}\n-> exit {p.returncode}\n"
                               f"--- stdout ---\n{p.stdout}\n--- stderr ---\n{p.stderr}")
    return p.stdout


@pytest.mark.skipif(not (KAFKA_TOOLS / "build" / "classpath.txt").is_file()
                    or shutil.which("java") is None,
                    reason="Kafka CLI not installed: run compat/kafka_tools/install.sh")
def test_kafka_cli_topics_describe_and_metadata_quorum(cluster):
    topic = "cli-spread"
    out = kafka_tool("kafka-topics", "--bootstrap-server", cluster.node(3).bootstrap,
                     "--create", "--topic", topic, "--partitions", "6")
    assert f"Created topic {topic}." in out, out
    cluster.wait_metadata(lambda v: all(topic_led(md, topic, 6) for md in v.values()),
                          what=f"{topic} led on every node")

    out = kafka_tool("kafka-topics", "--bootstrap-server", cluster.node(1).bootstrap,
                     "--describe", "--topic", topic)
    rows = {int(m.group(1)): int(m.group(2)) for m in
            re.finditer(r"Partition:\s*(\d+)\s+Leader:\s*(-?\d+)", out)}
    assert sorted(rows) == list(range(6)), f"kafka-topics --describe partitions:\n{out}"
    assert set(rows.values()) == {1, 2, 3}, f"leaders {rows} are not three brokers:\n{out}"
    assert rows == leaders(cluster.metadata(2), topic), out

    out = kafka_tool("kafka-metadata-quorum", "--bootstrap-server", cluster.node(2).bootstrap,
                     "describe", "--status")
    m = re.search(r"^LeaderId:\s*(-?\d+)", out, re.M)
    assert m and int(m.group(1)) in (1, 2, 3), f"no leader in:\n{out}"
    leader = int(m.group(1))
    assert leader == controller_id(cluster.bootstrap), out
    voters_line = re.search(r"^CurrentVoters:\s*(.*)$", out, re.M)
    assert voters_line, f"no CurrentVoters in:\n{out}"
    # [{"id": 1, "endpoints": ["CONTROLLER://127.0.0.1:port"]}, ...]
    voters = {int(i): int(port) for i, port in re.findall(
        r'"id":\s*(\d+)[^}]*?CONTROLLER://127\.0\.0\.1:(\d+)', voters_line.group(1))}
    assert voters == {i: n.controller_port for i, n in cluster.nodes.items()}, \
        f"voters {voters}:\n{out}"

    # One row per voter: the leader and two followers.
    out = kafka_tool("kafka-metadata-quorum", "--bootstrap-server", cluster.node(1).bootstrap,
                     "describe", "--replication")
    status = {int(cells[0]): cells[-1] for cells in
              (ln.split() for ln in out.splitlines()[1:] if ln.strip())}
    assert status == {i: "Leader" if i == leader else "Follower" for i in (1, 2, 3)}, out
    cluster.assert_nobody_fenced("while all three ran")
