"""Kafka Connect (distributed mode) against gregor.

One broker and one Connect worker (org.apache.kafka.connect.cli.ConnectDistributed, with
exactly-once source support, KIP-618) are shared by the tests of this module, which run in order
as one story:

  1. the worker starts and creates its config/offset/status topics (compacted, 1/25/5 partitions);
  2. a FileStreamSource connector (exactly.once.support=required) copies a file of numbered lines
     into a topic: read_committed sees every line once, in order;
  3. a FileStreamSink connector copies the topic into an output file: every line once, in order;
  4. REST says RUNNING; the internal topics hold the configs, statuses and the source position;
  5. the worker is SIGKILLed while lines are still being appended to the source file, and
     restarted: the topic still holds every line exactly once (the killed transaction is aborted
     and fenced); the output file holds every line, with the sink's at-least-once duplicates.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from broker import Broker
from connect import jvm
from connect.connecthelpers import line, sink_lines, wait_running, wait_running_herder, wait_state
from connect.kafkautil import (cluster_id, group_offsets, partitions, read_topic, topic_config,
                               topic_names, wait_for)

N_INITIAL = 500       # lines in the source file before the connectors exist
N_APPENDED = 1500     # lines appended while the worker is SIGKILLed and restarted
APPEND_BATCH = 25
APPEND_PAUSE_S = 0.1  # 60 batches: ~6 s of appending
KILL_AFTER_S = 2.0

SOURCE = "lines-source"
SINK = "lines-sink"
TOPIC = "connect-lines"
CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC = "connect-configs", "connect-offsets", "connect-status"

C = "connect"


class Story:
    def __init__(self, broker: Broker, worker: jvm.ConnectWorker, workdir: Path):
        self.broker = broker
        self.worker = worker
        self.workdir = workdir
        self.source_file = workdir / "source.txt"
        self.sink_file = workdir / "sink.txt"
        self.written = 0
        self.failed: "set[str]" = set()

    def append(self, first: int, last: int) -> None:
        with open(self.source_file, "a") as f:
            f.write("".join(line(i) + "\n" for i in range(first, last + 1)))
            f.flush()
        self.written = last


@pytest.fixture(scope="module")
def story(tmp_path_factory):
    jvm.forget_touched()
    work = tmp_path_factory.mktemp("connect")
    broker = Broker(work / "broker", name="gregor")
    broker.start()
    props = {
        "bootstrap.servers": broker.bootstrap,
        "group.id": "compat-connect",
        "key.converter": "org.apache.kafka.connect.storage.StringConverter",
        "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        "config.storage.topic": CONFIG_TOPIC,
        "offset.storage.topic": OFFSET_TOPIC,
        "status.storage.topic": STATUS_TOPIC,
        "config.storage.replication.factor": 1,
        "offset.storage.replication.factor": 1,
        "status.storage.replication.factor": 1,
        # KIP-618: transactional source tasks, zombie fencing through the leader
        "exactly.once.source.support": "enabled",
        "plugin.discovery": "service_load",
        # Connect's defaults are minutes; the story has to fit in one
        "offset.flush.interval.ms": 1000,
        "scheduled.rebalance.max.delay.ms": 2000,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "rebalance.timeout.ms": 20000,
        "task.shutdown.graceful.timeout.ms": 5000,
        "consumer.session.timeout.ms": 6000,
        "consumer.heartbeat.interval.ms": 1000,
        "consumer.max.poll.records": 200,
    }
    worker = jvm.ConnectWorker(work / "worker", props)
    s = Story(broker, worker, work)
    try:
        yield s
    finally:
        worker.stop(timeout=20)
        broker.close()


@pytest.fixture(autouse=True)
def _skip_after_failed_step(story):
    """Tests of this module are steps of one story: after a failed step, later steps are skipped."""
    if story.failed:
        pytest.skip(f"an earlier step failed: {', '.join(sorted(story.failed))}")


def _mark_failed_on_error(story: Story, name: str):
    class Guard:
        def __enter__(self):
            return self

        def __exit__(self, et, ev, tb):
            if et is not None and not issubclass(et, pytest.skip.Exception):
                story.failed.add(name)
            return False
    return Guard()


def task_generations(bootstrap: str) -> "dict[str, tuple[int, str]]":
    """Latest (generation, state) per status-task-* key of the status topic."""
    out = {}
    for r in read_topic(bootstrap, STATUS_TOPIC, timeout=30):
        if r.key and r.key.startswith(b"status-task-") and r.value:
            v = json.loads(r.value)
            out[r.key.decode()] = (v["generation"], v["state"])
    return out


# ------------------------------------------------------------------ 1. worker start

@pytest.mark.check(C, "worker_internal_topics",
                   "distributed worker starts; config/offset/status topics created compacted (1/25/5 partitions)")
def test_worker_starts_and_creates_compacted_internal_topics(story):
    with _mark_failed_on_error(story, "worker start"):
        story.worker.start()
        root = story.worker.wait_rest()
        assert root["version"] == jvm.KAFKA_VERSION, root
        bs = story.broker.bootstrap
        assert root["kafka_cluster_id"] == cluster_id(bs), root
        # REST answers before the herder has started its backing stores: wait for the topics
        wait_for(lambda: {CONFIG_TOPIC, OFFSET_TOPIC, STATUS_TOPIC} <= topic_names(bs),
                 "the worker's internal topics", timeout=60)
        wait_running_herder(story.worker)
        for topic, nparts in ((CONFIG_TOPIC, 1), (OFFSET_TOPIC, 25), (STATUS_TOPIC, 5)):
            assert partitions(bs, topic) == nparts, f"{topic}: {partitions(bs, topic)} partitions"
            cfg = topic_config(bs, topic)
            assert cfg.get("cleanup.policy") == "compact", f"{topic}: cleanup.policy={cfg.get('cleanup.policy')}"
        plugins = {p["class"] for p in story.worker.rest("GET", "/connector-plugins")}
        assert "org.apache.kafka.connect.file.FileStreamSourceConnector" in plugins, plugins
        assert "org.apache.kafka.connect.file.FileStreamSinkConnector" in plugins, plugins


# ------------------------------------------------------------------ 2. source

@pytest.mark.check(C, "file_source_exactly_once",
                   "FileStreamSource with exactly.once.support=required: file lines -> topic once, in order (read_committed)")
def test_file_source_exactly_once(story):
    with _mark_failed_on_error(story, "source"):
        story.append(1, N_INITIAL)
        cfg = {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1",
            "file": str(story.source_file),
            "topic": TOPIC,
            "exactly.once.support": "required",
            # one transaction per 2 s rather than per poll: a SIGKILL then very likely leaves an
            # open transaction with records in it, which the restarted task's fencing must abort
            "transaction.boundary": "interval",
            "transaction.boundary.interval.ms": "2000",
            # Connect creates the topic (KIP-158) rather than relying on auto-creation
            "topic.creation.default.partitions": "1",
            "topic.creation.default.replication.factor": "1",
        }
        # KIP-618 pre-flight validation
        val = story.worker.rest(
            "PUT", "/connector-plugins/FileStreamSourceConnector/config/validate",
            {**cfg, "name": SOURCE})
        assert val["error_count"] == 0, json.dumps(val)[:2000]
        story.worker.rest("PUT", f"/connectors/{SOURCE}/config", cfg)
        wait_running(story.worker, SOURCE)
        recs = read_topic(story.broker.bootstrap, TOPIC, expect=N_INITIAL, timeout=60)
        values = [r.value.decode() if r.value is not None else None for r in recs]
        assert len(values) == N_INITIAL, f"{len(values)} records, expected {N_INITIAL}"
        assert values == [line(i) for i in range(1, N_INITIAL + 1)]
        assert all(r.key is None for r in recs)
        assert [r.offset for r in recs] == sorted(r.offset for r in recs)


# ------------------------------------------------------------------ 3. sink

@pytest.mark.check(C, "file_sink", "FileStreamSink: topic -> file, every line once, in order")
def test_file_sink_every_line_once_in_order(story):
    with _mark_failed_on_error(story, "sink"):
        story.worker.rest("PUT", f"/connectors/{SINK}/config", {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1",
            "file": str(story.sink_file),
            "topics": TOPIC,
        })
        wait_running(story.worker, SINK)
        wait_for(lambda: len(sink_lines(story.sink_file)[0]) >= N_INITIAL,
                 f"{N_INITIAL} lines in {story.sink_file}", timeout=60)
        time.sleep(1.5)  # a duplicate would show up now
        nums, torn = sink_lines(story.sink_file)
        assert torn == 0
        assert nums == list(range(1, N_INITIAL + 1))


# ------------------------------------------------------------------ 4. status and internal topics

@pytest.mark.check(C, "rest_status", "REST: connectors and tasks RUNNING; /connectors/{name}/topics tracks the topic")
def test_rest_status_running(story):
    st = story.worker.rest("GET", "/connectors?expand=status&expand=info")
    assert set(st) == {SOURCE, SINK}, st
    for name in (SOURCE, SINK):
        s = st[name]["status"]
        assert s["connector"]["state"] == "RUNNING", s
        assert [t["state"] for t in s["tasks"]] == ["RUNNING"], s
        assert s["connector"]["worker_id"] == f"127.0.0.1:{story.worker.rest_port}", s
        assert st[name]["info"]["type"] == ("source" if name == SOURCE else "sink")
        topics = story.worker.rest("GET", f"/connectors/{name}/topics")
        assert topics == {name: {"topics": [TOPIC]}}, topics


def latest_by_key(recs) -> "dict[str, bytes | None]":
    out = {}
    for r in recs:
        if r.key is not None:
            out[r.key.decode()] = r.value
    return out


@pytest.mark.check(C, "internal_topics_content",
                   "config/status/offset topics hold the connector configs, RUNNING states and the source file position; sink group offset committed")
def test_internal_topics_hold_configs_statuses_offsets(story, note):
    bs = story.broker.bootstrap
    configs = latest_by_key(read_topic(bs, CONFIG_TOPIC, timeout=30))
    for key in (f"connector-{SOURCE}", f"connector-{SINK}", f"task-{SOURCE}-0", f"task-{SINK}-0",
                f"commit-{SOURCE}", f"commit-{SINK}"):
        assert key in configs, f"{key} not in {CONFIG_TOPIC}: {sorted(configs)}"
    src = json.loads(configs[f"connector-{SOURCE}"])
    assert src["properties"]["file"] == str(story.source_file), src
    assert src["properties"]["exactly.once.support"] == "required", src

    statuses = latest_by_key(read_topic(bs, STATUS_TOPIC, timeout=30))
    for key in (f"status-connector-{SOURCE}", f"status-task-{SOURCE}-0",
                f"status-connector-{SINK}", f"status-task-{SINK}-0"):
        assert key in statuses, f"{key} not in {STATUS_TOPIC}: {sorted(statuses)}"
        assert json.loads(statuses[key])["state"] == "RUNNING", (key, statuses[key])

    # the source position: {"position": <bytes read>} under ["lines-source", {"filename": ...}]
    size = story.source_file.stat().st_size

    def position():
        offs = latest_by_key(read_topic(bs, OFFSET_TOPIC, timeout=30))
        for k, v in offs.items():
            kk = json.loads(k)
            if kk[0] == SOURCE and kk[1].get("filename") == str(story.source_file):
                return json.loads(v)["position"]
        return None
    pos = wait_for(lambda: position() == size and size, f"source offset position == {size}", timeout=30)
    assert pos == size

    # the sink's consumer group (connect-<name>) committed past the last record
    last = read_topic(bs, TOPIC, expect=N_INITIAL, timeout=30, linger=0.2)[-1].offset
    got = wait_for(lambda: group_offsets(bs, f"connect-{SINK}").get((TOPIC, 0), -1) > last and
                   group_offsets(bs, f"connect-{SINK}"), "sink group offset commit", timeout=30)
    note(f"config keys: {', '.join(sorted(configs))}; sink group offset {got[(TOPIC, 0)]}")


# ------------------------------------------------------------------ 5. SIGKILL mid-run

@pytest.mark.check(C, "sigkill_restart",
                   "worker SIGKILLed while lines are appended, restarted: connectors and tasks RUNNING again")
def test_sigkill_worker_mid_append_and_restart(story, note):
    with _mark_failed_on_error(story, "SIGKILL/restart"):
        total = N_INITIAL + N_APPENDED
        stop = threading.Event()
        errors: "list[BaseException]" = []

        def appender():
            try:
                i = N_INITIAL + 1
                while i <= total and not stop.is_set():
                    j = min(total, i + APPEND_BATCH - 1)
                    story.append(i, j)
                    i = j + 1
                    time.sleep(APPEND_PAUSE_S)
            except BaseException as e:  # pragma: no cover
                errors.append(e)

        before = task_generations(story.broker.bootstrap)
        t = threading.Thread(target=appender, name="appender", daemon=True)
        t.start()
        try:
            time.sleep(KILL_AFTER_S)
            written_at_kill = story.written
            story.worker.kill9()
            assert t.is_alive() and written_at_kill < total, "the appender finished before the kill"
            in_topic_at_kill = len(read_topic(story.broker.bootstrap, TOPIC, timeout=10, linger=0.2))
            restarted = time.monotonic()
            story.worker.start()
            story.worker.wait_rest()
            wait_running_herder(story.worker)
            wait_running(story.worker, SOURCE, timeout=120)
            wait_running(story.worker, SINK, timeout=120)

            # REST reads the status topic, where the killed worker's RUNNING may linger: wait for
            # the tasks' statuses of a later generation, written by the restarted worker
            def newer():
                now = task_generations(story.broker.bootstrap)
                return all(k in now and now[k][0] > g and now[k][1] == "RUNNING"
                           for k, (g, _) in before.items()) and now
            now = wait_for(newer, "RUNNING task statuses of a newer generation", timeout=120, interval=1.0)
            assert set(before) == {f"status-task-{SOURCE}-0", f"status-task-{SINK}-0"}, before
            note(f"killed with {written_at_kill}/{total} lines written, {in_topic_at_kill} committed "
                 f"in the topic; tasks RUNNING again (generations "
                 f"{', '.join(f'{k[12:]} {before[k][0]}->{now[k][0]}' for k in sorted(before))}) "
                 f"{time.monotonic() - restarted:.1f}s after the restart")
        finally:
            t.join(timeout=30)
            stop.set()
        assert not errors, errors
        assert story.written == total
        story.killed_at = (written_at_kill, in_topic_at_kill)


@pytest.mark.check(C, "sigkill_source_exactly_once",
                   "after the SIGKILL: the topic holds every line exactly once, in order (read_committed); the killed transaction is aborted")
def test_source_exactly_once_across_sigkill(story, note):
    total = N_INITIAL + N_APPENDED
    bs = story.broker.bootstrap
    recs = wait_for(lambda: (lambda r: len(r) >= total and r)(read_topic(bs, TOPIC, expect=total, timeout=20)),
                    f"{total} committed records in {TOPIC}", timeout=120, interval=1.0)
    recs = read_topic(bs, TOPIC, expect=total, timeout=60, linger=3.0)
    values = [r.value.decode() for r in recs]
    dups = len(values) - len(set(values))
    assert dups == 0, f"{dups} duplicate lines under read_committed"
    assert values == [line(i) for i in range(1, total + 1)]
    uncommitted = read_topic(bs, TOPIC, isolation="read_uncommitted", expect=total, timeout=30, linger=2.0)
    note(f"{len(uncommitted) - len(recs)} records of aborted transactions visible only to read_uncommitted")


@pytest.mark.check(C, "sigkill_sink_at_least_once",
                   "after the SIGKILL: the output file holds every line, in order of first appearance (at-least-once: duplicates allowed and counted)")
def test_sink_every_line_after_sigkill(story, note):
    total = N_INITIAL + N_APPENDED
    want = set(range(1, total + 1))
    wait_for(lambda: want <= set(sink_lines(story.sink_file)[0]), f"all {total} lines in the sink file",
             timeout=120, interval=1.0,
             on_fail=lambda: f" missing {len(want - set(sink_lines(story.sink_file)[0]))}")
    time.sleep(1.0)
    nums, torn = sink_lines(story.sink_file)
    first_seen = list(dict.fromkeys(nums))
    assert first_seen == list(range(1, total + 1)), "first appearances out of order"
    extra = set(nums) - want
    assert not extra, f"unexpected lines {sorted(extra)[:10]}"
    dups = len(nums) - len(set(nums))
    note(f"{dups} duplicate lines re-delivered after the SIGKILL, {torn} torn line(s)")
    print(f"sink after SIGKILL: {len(nums)} lines for {total}, {dups} duplicates, {torn} torn")


@pytest.mark.check(C, "sigkill_restart")
def test_status_and_offsets_after_restart(story):
    bs = story.broker.bootstrap
    size = story.source_file.stat().st_size
    for name in (SOURCE, SINK):
        st = story.worker.rest("GET", f"/connectors/{name}/status")
        assert st["connector"]["state"] == "RUNNING" and [t["state"] for t in st["tasks"]] == ["RUNNING"], st

    def position():
        for k, v in latest_by_key(read_topic(bs, OFFSET_TOPIC, timeout=30)).items():
            kk = json.loads(k)
            if kk[0] == SOURCE:
                return json.loads(v)["position"]
    wait_for(lambda: position() == size, f"source offset position == {size} after the restart", timeout=30)


# ------------------------------------------------------------------ 6. offsets API (KIP-875)

@pytest.mark.check(C, "offsets_api",
                   "offsets REST API (KIP-875): stop, GET source and sink offsets, PATCH the sink's group offset, resume: the sink re-reads from there")
def test_offsets_api_stop_alter_resume(story, note):
    total = N_INITIAL + N_APPENDED
    bs = story.broker.bootstrap
    w = story.worker
    # the source: its position is the byte size of the file
    w.rest("PUT", f"/connectors/{SOURCE}/stop")
    wait_state(w, SOURCE, "STOPPED")
    offs = w.rest("GET", f"/connectors/{SOURCE}/offsets")
    assert offs == {"offsets": [{"partition": {"filename": str(story.source_file)},
                                 "offset": {"position": story.source_file.stat().st_size}}]}, offs

    # the sink: its offset is the consumer group's committed offset
    w.rest("PUT", f"/connectors/{SINK}/stop")
    wait_state(w, SINK, "STOPPED")
    committed = group_offsets(bs, f"connect-{SINK}")[(TOPIC, 0)]
    offs = w.rest("GET", f"/connectors/{SINK}/offsets")
    assert offs == {"offsets": [{"partition": {"kafka_topic": TOPIC, "kafka_partition": 0},
                                 "offset": {"kafka_offset": committed}}]}, offs

    # rewind the sink to line 1501 (offsets are not line numbers: transaction markers in between)
    recs = read_topic(bs, TOPIC, expect=total, timeout=60, linger=0.5)
    start_line = 1501
    at = next(r.offset for r in recs if r.value == line(start_line).encode())
    res = w.rest("PATCH", f"/connectors/{SINK}/offsets", {"offsets": [
        {"partition": {"kafka_topic": TOPIC, "kafka_partition": 0}, "offset": {"kafka_offset": at}}]})
    assert "altered successfully" in res.get("message", ""), res
    assert group_offsets(bs, f"connect-{SINK}")[(TOPIC, 0)] == at

    # a fresh output file, then resume: it gets lines 1501.. again, in order
    story.sink_file.rename(story.workdir / "sink-before-rewind.txt")
    w.rest("PUT", f"/connectors/{SINK}/resume")
    w.rest("PUT", f"/connectors/{SOURCE}/resume")
    wait_running(w, SINK)
    wait_running(w, SOURCE)
    want = list(range(start_line, total + 1))
    wait_for(lambda: len(sink_lines(story.sink_file)[0]) >= len(want), f"lines {start_line}.. in the new sink file",
             timeout=60)
    time.sleep(1.0)
    nums, torn = sink_lines(story.sink_file)
    assert torn == 0 and nums == want, (nums[:5], len(nums))
    # and the source, resumed at its position, produced nothing again
    assert len(read_topic(bs, TOPIC, expect=total, timeout=30, linger=1.5)) == total
    note(f"sink rewound to offset {at} (line {start_line}) from {committed}")
