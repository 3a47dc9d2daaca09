"""Replication through real clients on three `gregor` processes: a topic with three replicas and
`min.insync.replicas=2` keeps every acknowledged record (keys, headers, timestamps, order) when
the leader is SIGKILLed mid-stream, the producer moves to the new leader by itself, the killed
node catches up and rejoins the ISR after its restart, and Kafka's CLI sees it all:
`kafka-topics --describe --under-replicated-partitions` lists the partitions while a replica is
down, and `kafka-reassign-partitions` moves a partition's data to another broker.

Timings (leader SIGKILL -> first acknowledged produce on the new leader; restart -> full ISR)
go to the "cluster timings" section.
"""

from __future__ import annotations

import json
import re
import shutil
import time

import pytest

from test_cluster import (KAFKA_TOOLS, consume_range, create_topic, first_diff, kafka_tool,
                          produce, retry_until)

CREATE_TIME = 1


def records(tag: str, n: int, partitions: int) -> "list[dict]":
    base = int(time.time() * 1000) - 60_000
    return [{"partition": i % partitions, "key": f"{tag}-k{i}".encode(),
             "value": f"{tag}-v{i}".encode(), "headers": [("h", f"{tag}{i}".encode())],
             "timestamp": base + i} for i in range(n)]


def expected_rows(recs: "list[dict]", delivered: list) -> "dict[int, list[tuple]]":
    want: "dict[int, list[tuple]]" = {}
    for r, (p, off) in zip(recs, delivered):
        want.setdefault(p, []).append((off, r["key"], r["value"], tuple(r["headers"]),
                                       CREATE_TIME, r["timestamp"]))
    return want


def isr_full(view: dict, topic: str, size: int = 3) -> bool:
    t = view["topics"].get(topic)
    return (t is not None and len(t["partitions"]) > 0
            and all(len(p["isr"]) == size and p["leader"] >= 0
                    for p in t["partitions"].values()))


def test_sigkill_of_the_leader_loses_no_acknowledged_record(cluster, timings):
    topic = "replicated"
    create_topic(cluster.bootstrap, topic, 3, rf=3, config={"min.insync.replicas": "2"})
    cluster.wait_metadata(lambda v: all(isr_full(md, topic) for md in v.values()),
                          what=f"{topic} with a full ISR on every node")
    first = records("a", 300, 3)
    delivered = produce(cluster.bootstrap, topic, first)

    leader = cluster.metadata(1)["topics"][topic]["partitions"][0]["leader"]
    survivor = next(i for i in cluster.ids if i != leader)
    killed_at = time.monotonic()
    cluster.kill(leader)
    second = records("b", 300, 3)
    bootstrap = cluster.node(survivor).bootstrap
    delivered_second = produce(bootstrap, topic, second[:1], timeout=60)
    timings("leader SIGKILL -> first acks=all produce acknowledged (RF=3)",
            time.monotonic() - killed_at)
    delivered_second += produce(bootstrap, topic, second[1:], timeout=60)

    view = cluster.metadata(survivor)["topics"][topic]["partitions"]
    assert view[0]["leader"] not in (-1, leader), view
    assert leader not in view[0]["isr"], view

    recs = first + second
    got_delivered = delivered + delivered_second
    want = expected_rows(recs, got_delivered)
    ends = {p: rows[-1][0] + 1 for p, rows in want.items()}
    got = consume_range(bootstrap, topic, ends)
    for p in want:
        assert got[p] == want[p], (f"partition {p}: first difference "
                                   f"{first_diff(got[p], want[p])}")

    restarted_at = time.monotonic()
    cluster.restart(leader)
    cluster.wait_metadata(lambda v: all(isr_full(md, topic) for md in v.values()),
                          timeout=60, what=f"{leader} back in every ISR of {topic}")
    timings("restart of the killed leader -> full ISR again", time.monotonic() - restarted_at)
    # Everything is still there with the restarted node as the only bootstrap.
    got = consume_range(cluster.node(leader).bootstrap, topic, ends)
    for p in want:
        assert got[p] == want[p], f"partition {p} after the restart"


@pytest.mark.skipif(not (KAFKA_TOOLS / "build" / "classpath.txt").is_file()
                    or shutil.which("java") is None,
                    reason="Kafka CLI not installed: run compat/kafka_tools/install.sh")
def test_kafka_cli_under_replicated_and_reassignment(cluster, tmp_path):
    topic = "cli-repl"
    out = kafka_tool("kafka-topics", "--bootstrap-server", cluster.bootstrap, "--create",
                     "--topic", topic, "--partitions", "2", "--replication-factor", "3")
    assert f"Created topic {topic}." in out, out
    cluster.wait_metadata(lambda v: all(isr_full(md, topic) for md in v.values()),
                          what=f"{topic} fully in sync")
    out = kafka_tool("kafka-topics", "--bootstrap-server", cluster.bootstrap, "--describe",
                     "--under-replicated-partitions", "--topic", topic)
    assert "Partition:" not in out, f"nothing under-replicated yet:\n{out}"

    cluster.kill(3)
    survivor = cluster.node(1).bootstrap
    cluster.wait_metadata(lambda v: all(isr_full(md, topic, 2) for md in v.values()),
                          node_ids=[1, 2], what="node 3 out of every ISR")
    out = kafka_tool("kafka-topics", "--bootstrap-server", survivor, "--describe",
                     "--under-replicated-partitions", "--topic", topic)
    rows = re.findall(r"Partition:\s*(\d+).*?Isr:\s*([\d,]+)", out)
    assert sorted(int(p) for p, _ in rows) == [0, 1], out
    assert all("3" not in isr.split(",") for _, isr in rows), out
    cluster.restart(3)
    cluster.wait_metadata(lambda v: all(isr_full(md, topic) for md in v.values()), timeout=60,
                          what="node 3 back in sync")

    # A single-replica topic moved to another broker with its data.
    moved = "cli-moved"
    create_topic(cluster.bootstrap, moved, 1, rf=1)
    cluster.wait_metadata(lambda v: all(moved in md["topics"] for md in v.values()),
                          what=f"{moved} everywhere")
    recs = records("m", 200, 1)
    delivered = produce(cluster.bootstrap, moved, recs)
    src = cluster.metadata(1)["topics"][moved]["partitions"][0]["replicas"]
    dst = [next(i for i in cluster.ids if i not in src)]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": moved, "partition": 0, "replicas": dst}]}))
    out = kafka_tool("kafka-reassign-partitions", "--bootstrap-server", cluster.bootstrap,
                     "--reassignment-json-file", str(plan), "--execute")
    assert "Successfully started partition reassignment" in out, out

    def verified():
        o = kafka_tool("kafka-reassign-partitions", "--bootstrap-server", cluster.bootstrap,
                       "--reassignment-json-file", str(plan), "--verify")
        assert "is completed" in o and "still in progress" not in o, o
    retry_until(verified, 60, f"reassignment of {moved} to {dst}")
    part = cluster.metadata(dst[0])["topics"][moved]["partitions"][0]
    assert part["replicas"] == dst and part["leader"] == dst[0], part
    want = expected_rows(recs, delivered)
    got = consume_range(cluster.node(dst[0]).bootstrap, moved, {0: want[0][-1][0] + 1})
    assert got[0] == want[0], f"first difference {first_diff(got[0], want[0])}"
