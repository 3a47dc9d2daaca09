"""Kafka Connect with two distributed workers in one group against gregor.

Two workers (ConnectDistributed, same group.id, exactly-once source support) share three
connectors: a FileStreamSource and two FileStreamSinks (six units of work: three connectors, three
tasks).  Incremental cooperative rebalancing balances them (2/1 connectors, 2/1 tasks); requests made to the
follower are forwarded to the leader over REST.  When the worker running the source task is
SIGKILLed, its connectors and tasks move to the survivor (after the session timeout and
scheduled.rebalance.max.delay.ms), and the lines appended afterwards still arrive: once in the
topic (read_committed), in both sink files.  Run twice: the sink tasks' consumers in classic
groups, then with group.protocol=consumer (KIP-848; the broker's group.consumer.* session bounds
lowered to 6 s).
"""

from __future__ import annotations

import time

import pytest

from broker import Broker
from connect import jvm
from connect.connecthelpers import line, sink_lines, wait_running, wait_running_herder
from connect.kafkautil import group_offsets, read_topic, wait_for

C = "connect"
TOPIC = "cluster-lines"
SOURCE = "cluster-source"
SINKS = ("cluster-sink-a", "cluster-sink-b")
N_FIRST, N_SECOND = 300, 300


def worker_props(bootstrap: str, group_protocol: str) -> dict:
    props = {
        "bootstrap.servers": bootstrap,
        "group.id": "compat-connect-cluster",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "config.storage.topic": "cluster-configs",
        "offset.storage.topic": "cluster-offsets",
        "status.storage.topic": "cluster-status",
        "config.storage.replication.factor": 1,
        "offset.storage.replication.factor": 1,
        "status.storage.replication.factor": 1,
        "offset.storage.partitions": 5,
        "exactly.once.source.support": "enabled",
        "plugin.discovery": "service_load",
        "offset.flush.interval.ms": 1000,
        "scheduled.rebalance.max.delay.ms": 3000,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "rebalance.timeout.ms": 20000,
        "task.shutdown.graceful.timeout.ms": 5000,
    }
    if group_protocol == "classic":
        props.update({"consumer.session.timeout.ms": 6000, "consumer.heartbeat.interval.ms": 1000})
    else:
        # KIP-848: the broker owns the session timeout and heartbeat interval (set below)
        props["consumer.group.protocol"] = "consumer"
    return props


# the broker's KIP-848 bounds, so that a dead sink consumer is expired in 6 s, not 45 s
CONSUMER_PROTOCOL_BROKER_ARGS = [
    "--set", "group.consumer.min.session.timeout.ms=6000", "--set", "group.consumer.session.timeout.ms=6000",
    "--set", "group.consumer.min.heartbeat.interval.ms=1000", "--set", "group.consumer.heartbeat.interval.ms=1000"]


@pytest.fixture
def cluster(request, tmp_path):
    jvm.forget_touched()
    protocol = request.node.callspec.params["protocol"]
    broker = Broker(tmp_path / "broker", name="gregor",
                    extra_args=CONSUMER_PROTOCOL_BROKER_ARGS if protocol == "consumer" else [])
    broker.start()
    props = worker_props(broker.bootstrap, protocol)
    workers = [jvm.ConnectWorker(tmp_path / f"worker{i}", props, name=f"connect-worker{i}") for i in (1, 2)]
    try:
        yield broker, workers, tmp_path
    finally:
        for w in workers:
            w.kill9()
        broker.close()


def placement(worker: jvm.ConnectWorker) -> "dict[str, str]":
    """{"<connector>" or "<connector>-<task>": worker_id} from GET /connectors?expand=status."""
    out = {}
    for name, v in worker.rest("GET", "/connectors?expand=status").items():
        st = v["status"]
        out[name] = st["connector"]["worker_id"]
        for t in st["tasks"]:
            out[f"{name}-{t['id']}"] = t["worker_id"]
    return out


@pytest.mark.parametrize("protocol", [
    pytest.param("classic", marks=pytest.mark.check(
        C, "two_workers_failover",
        "two workers in one group balance 3 connectors/3 tasks; the one running the source is SIGKILLed: "
        "all move to the survivor, no line lost or doubled in the topic")),
    pytest.param("consumer", marks=pytest.mark.check(
        C, "two_workers_failover_kip848",
        "the same with the sink tasks' consumers on group.protocol=consumer (KIP-848)")),
])
def test_two_workers_share_work_and_fail_over(protocol, cluster, note):
    broker, (w1, w2), work = cluster
    src = work / "source.txt"
    outs = {name: work / f"{name}.txt" for name in SINKS}
    with open(src, "w") as f:
        f.write("".join(line(i) + "\n" for i in range(1, N_FIRST + 1)))

    w1.start()
    w2.start()
    for w in (w1, w2):
        w.wait_rest()
        wait_running_herder(w, timeout=90)

    # create everything through the second worker: whichever is not the leader forwards
    w2.rest("PUT", f"/connectors/{SOURCE}/config", {
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1", "file": str(src), "topic": TOPIC, "exactly.once.support": "required",
        "topic.creation.default.partitions": "1", "topic.creation.default.replication.factor": "1"})
    for name in SINKS:
        w2.rest("PUT", f"/connectors/{name}/config", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1", "file": str(outs[name]), "topics": TOPIC})
    for name in (SOURCE, *SINKS):
        wait_running(w1, name)

    ids = {w1: f"127.0.0.1:{w1.rest_port}", w2: f"127.0.0.1:{w2.rest_port}"}
    # cooperative rebalancing balances connectors (3 -> 2/1) and tasks (3 -> 2/1) over both workers
    def balanced():
        p = placement(w1)
        per = {w: [k for k, v in p.items() if v == ids[w]] for w in (w1, w2)}
        conns = [sum(1 for k in per[w] if k in (SOURCE, *SINKS)) for w in (w1, w2)]
        return len(p) == 6 and sorted(conns) == [1, 2] and sorted(len(v) - c for v, c in zip(per.values(), conns)) == [1, 2] and p
    spread = wait_for(balanced, "3 connectors and 3 tasks balanced over the two workers", timeout=60, interval=1.0,
                      on_fail=lambda: f" placement {placement(w1)}")
    assert placement(w2) == spread  # both workers see the same status

    want = list(range(1, N_FIRST + 1))
    for name in SINKS:
        wait_for(lambda: sink_lines(outs[name])[0] == want, f"{N_FIRST} lines in {name}'s file", timeout=60)

    # both sink groups commit what they wrote (every offset.flush.interval.ms): their committed
    # offsets pass the last record (transaction markers make offsets > line numbers)
    last = read_topic(broker.bootstrap, TOPIC, expect=N_FIRST, timeout=30, linger=0.2)[-1].offset
    for name in SINKS:
        wait_for(lambda: group_offsets(broker.bootstrap, f"connect-{name}").get((TOPIC, 0), -1) > last,
                 f"{name}'s group offset past {last}", timeout=30, interval=0.5,
                 on_fail=lambda: f" offsets {group_offsets(broker.bootstrap, f'connect-{name}')}")

    # SIGKILL the worker that runs the source task
    victim = w1 if spread[f"{SOURCE}-0"] == ids[w1] else w2
    survivor = w2 if victim is w1 else w1
    victim.kill9()
    killed = time.monotonic()
    with open(src, "a") as f:
        f.write("".join(line(i) + "\n" for i in range(N_FIRST + 1, N_FIRST + N_SECOND + 1)))

    def all_on_survivor():
        try:
            p = placement(survivor)
        except (jvm.RestError, OSError):
            return None
        ok = len(p) == 6 and set(p.values()) == {ids[survivor]}
        st = survivor.rest("GET", "/connectors?expand=status")
        running = all(v["status"]["connector"]["state"] == "RUNNING" and
                      all(t["state"] == "RUNNING" for t in v["status"]["tasks"]) for v in st.values())
        return ok and running and p
    wait_for(all_on_survivor, "every connector and task RUNNING on the surviving worker", timeout=90,
             interval=1.0, on_fail=lambda: "\n" + survivor.log_tail(30))
    moved = time.monotonic() - killed

    total = N_FIRST + N_SECOND
    want = list(range(1, total + 1))
    for name in SINKS:
        wait_for(lambda: set(want) <= set(sink_lines(outs[name])[0]), f"{total} lines in {name}'s file",
                 timeout=60, interval=1.0)
        nums, torn = sink_lines(outs[name])
        assert list(dict.fromkeys(nums)) == want, f"{name}: first appearances out of order"
    recs = read_topic(broker.bootstrap, TOPIC, expect=total, timeout=60, linger=2.0)
    assert [r.value.decode() for r in recs] == [line(i) for i in want]
    dups = {name: len(sink_lines(outs[name])[0]) - total for name in SINKS}
    note(f"work moved to the survivor {moved:.1f}s after the SIGKILL; sink duplicates {dups}")
