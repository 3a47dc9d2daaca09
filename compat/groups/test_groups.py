"""Consumer groups against gregor with real clients: confluent-kafka members run as
subprocesses (member.py) so they can be closed, SIGKILLed and restarted; kcat -G and
kafka-python's KafkaConsumer(group_id=...) end to end; the same core scenarios with the
KIP-848 protocol (`group.protocol=consumer`).

Delivery accounting: members log every record before committing it synchronously, and the
result of that commit.  A test passes only if the union of processed records is exactly the
produced set (nothing skipped) and every record processed twice was never successfully
committed before its redelivery (at most one `ok` commit per offset): a committed record is
never delivered again.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

HERE = Path(__file__).resolve().parent
MEMBER = HERE / "member.py"
PARTITIONS = 6
SESSION_MS = 6000


# ----------------------------------------------------------------------------- helpers
def wait_until(pred, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def create_topic(bootstrap: str, partitions: int = PARTITIONS, name: "str | None" = None) -> str:
    name = name or f"g-{uuid.uuid4().hex[:10]}"
    a = AdminClient({"bootstrap.servers": bootstrap})
    fs = a.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)],
                         operation_timeout=15)
    fs[name].result(timeout=20)
    return name


def produce(bootstrap: str, topic: str, values, partitions: int = PARTITIONS) -> None:
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"})
    errors = []
    for v in values:
        p.produce(topic, value=str(v).encode(), partition=v % partitions,
                  on_delivery=lambda err, _m: err and errors.append(err))
    left = p.flush(30)
    assert left == 0, f"{left} records not delivered"
    assert not errors, errors[:5]


def committed(bootstrap: str, group: str, topic: str, partitions: int = PARTITIONS) -> dict:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=15)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


class Member:
    """A member.py subprocess and its event log."""

    def __init__(self, tmp: Path, name: str, bootstrap: str, group: str, topic: str, conf: dict):
        self.name = name
        self.path = tmp / f"{name}.log"
        self.args = [sys.executable, str(MEMBER), bootstrap, group, topic, str(self.path),
                     json.dumps(conf)]
        self.proc: "subprocess.Popen | None" = None
        self.stderr = tmp / f"{name}.stderr"

    def start(self) -> "Member":
        err = open(self.stderr, "ab")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        return self

    def lines(self) -> "list[list[str]]":
        try:
            return [ln.split() for ln in self.path.read_text().splitlines() if ln.strip()]
        except FileNotFoundError:
            return []

    def events(self, kind: str) -> "list[list[str]]":
        return [ln for ln in self.lines() if ln[0] == kind]

    def processed(self) -> "list[tuple[int, int, int]]":
        return [(int(p), int(o), int(v)) for _, p, o, v in self.events("P")]

    def assignment(self) -> "set[int]":
        """The current partition set, replaying assign/revoke/lost events."""
        cur: "set[int]" = set()
        for ln in self.lines():
            if ln[0] not in ("A", "R", "L"):
                continue
            ps = set() if ln[1] == "-" else {int(p) for p in ln[1].split(",")}
            if ln[0] == "A":
                cur = (cur | ps) if ln[2] == "incremental" else ps
            else:
                cur -= ps
        return cur

    def ready(self) -> bool:
        return bool(self.events("READY"))

    def terminate(self, timeout: float = 30.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError(f"{self.name} did not close within {timeout}s")

    def kill9(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def describe(self) -> str:
        try:
            err = self.stderr.read_text(errors="replace")[-1500:]
        except FileNotFoundError:
            err = ""
        tail = [" ".join(ln) for ln in self.lines() if ln[0] not in ("P", "C")][-20:]
        return f"--- {self.name}: events {tail}\nstderr: {err}"


@pytest.fixture
def members(tmp_path):
    made: "list[Member]" = []

    def make(name, bootstrap, group, topic, conf=None) -> Member:
        m = Member(tmp_path, name, bootstrap, group, topic, conf or {})
        made.append(m)
        return m

    yield make
    for m in made:
        m.kill9()


def all_processed(ms) -> "list[tuple[int, int, int]]":
    out = []
    for m in ms:
        out.extend(m.processed())
    return out


def covered(ms, produced: "set[int]") -> bool:
    return {v for _, _, v in all_processed(ms)} >= produced


def check_delivery(ms, produced: "set[int]") -> Counter:
    """Nothing skipped; a redelivered record was never committed before. Returns the
    duplicate counts by (partition, offset)."""
    recs = all_processed(ms)
    values = {v for _, _, v in recs}
    missing = produced - values
    assert not missing, f"{len(missing)} records never processed, e.g. {sorted(missing)[:10]}"
    extra = values - produced
    assert not extra, f"processed records never produced: {sorted(extra)[:10]}"
    by_pos = Counter((p, o) for p, o, _ in recs)
    oks = Counter()
    for m in ms:
        for ln in m.events("C"):
            if ln[3] == "ok":
                oks[(int(ln[1]), int(ln[2]))] += 1
    dups = Counter({k: n for k, n in by_pos.items() if n > 1})
    bad = [k for k in dups if oks[k] > 1]
    assert not bad, f"committed records delivered again: {bad[:10]}"
    return dups


def wait_covered(ms, produced, timeout: float, what: str):
    try:
        wait_until(lambda: covered(ms, produced), timeout, what, interval=0.25)
    except AssertionError:
        got = {v for _, _, v in all_processed(ms)}
        raise AssertionError(
            f"{what}: {len(produced - got)} of {len(produced)} missing\n"
            + "\n".join(m.describe() for m in ms))


def stable_assignment(ms, timeout: float = 40.0, balanced: bool = False):
    """Waits until the live members' assignments partition the topic exactly (and, if
    `balanced`, every member has its even share: a late joiner has been given partitions)."""

    def ok():
        sets = [m.assignment() for m in ms]
        flat = [p for s in sets for p in s]
        if balanced and any(len(s) < PARTITIONS // len(ms) for s in sets):
            return False
        return len(flat) == PARTITIONS and set(flat) == set(range(PARTITIONS))

    try:
        wait_until(ok, timeout, "a complete, disjoint assignment", interval=0.2)
    except AssertionError:
        raise AssertionError("no stable assignment\n" + "\n".join(m.describe() for m in ms))


CLASSIC = {"session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 500}
KIP848 = {"group.protocol": "consumer"}


# ------------------------------------------------------------------- classic protocol
@pytest.mark.parametrize("conf", [CLASSIC, KIP848], ids=["classic", "kip848"])
def test_three_members_every_record_once(broker, members, conf):
    topic = create_topic(broker.bootstrap)
    group = f"grp-{uuid.uuid4().hex[:8]}"
    first = list(range(300))
    produce(broker.bootstrap, topic, first)
    ms = [members(f"m{i}", broker.bootstrap, group, topic, conf).start() for i in range(3)]
    wait_until(lambda: all(m.ready() for m in ms), 60, "every member assigned")
    second = list(range(300, 600))
    produce(broker.bootstrap, topic, second)
    produced = set(first + second)
    wait_covered(ms, produced, 60, "all records consumed")
    stable_assignment(ms)
    for m in ms:
        m.terminate()
    dups = check_delivery(ms, produced)
    assert not dups, f"duplicates with per-message synchronous commits: {dict(dups)}"
    # Every member ended up with work, and the committed offsets are the ends of the logs.
    assert all(m.processed() for m in ms) or conf is KIP848
    offs = committed(broker.bootstrap, group, topic)
    assert offs == {p: 100 for p in range(PARTITIONS)}, offs


@pytest.mark.parametrize("conf", [CLASSIC, KIP848], ids=["classic", "kip848"])
def test_close_and_kill_move_partitions(broker_factory, members, conf):
    # KIP-848 session timeouts are the broker's (group.consumer.session.timeout.ms): lower it
    # to the classic test's 6 s, and the heartbeat interval with it.
    broker = broker_factory() if conf is CLASSIC else broker_factory(
        "--set", f"group.consumer.session.timeout.ms={SESSION_MS}",
        "--set", "group.consumer.heartbeat.interval.ms=1000")
    topic = create_topic(broker.bootstrap)
    group = f"grp-{uuid.uuid4().hex[:8]}"
    first = list(range(300))
    produce(broker.bootstrap, topic, first)
    ms = [members(f"m{i}", broker.bootstrap, group, topic, conf).start() for i in range(3)]
    wait_covered(ms, set(first), 60, "first half consumed")
    stable_assignment(ms)
    closer, victim, survivor = ms
    closer.terminate()
    assert closer.events("CLOSED")
    victim.kill9()
    t_kill = time.monotonic()
    second = list(range(300, 600))
    produce(broker.bootstrap, topic, second)
    produced = set(first + second)
    # The killed member's partitions come back after its session times out (6 s).
    limit = SESSION_MS / 1000 + 25
    wait_covered(ms, produced, limit, "everything consumed after close + kill")
    moved_after = time.monotonic() - t_kill
    assert survivor.assignment() == set(range(PARTITIONS)), survivor.describe()
    survivor.terminate()
    check_delivery(ms, produced)
    print(f"\n[{'classic' if conf is CLASSIC else 'kip848'}] partitions of a killed member "
          f"consumed again {moved_after:.1f}s after the kill")
    assert committed(broker.bootstrap, group, topic) == {p: 100 for p in range(PARTITIONS)}


@pytest.mark.parametrize("conf", [CLASSIC, KIP848], ids=["classic", "kip848"])
def test_broker_kill9_group_resumes_from_committed(broker, members, conf):
    topic = create_topic(broker.bootstrap)
    group = f"grp-{uuid.uuid4().hex[:8]}"
    first = list(range(300))
    produce(broker.bootstrap, topic, first)
    ms = [members(f"m{i}", broker.bootstrap, group, topic, conf).start() for i in range(2)]
    wait_covered(ms, set(first), 60, "first batch consumed")
    before = committed(broker.bootstrap, group, topic)
    assert before == {p: 50 for p in range(PARTITIONS)}, before
    broker.kill9()
    time.sleep(1.0)
    broker.restart()
    # The restarted broker still knows the commits.
    assert committed(broker.bootstrap, group, topic) == before
    second = list(range(300, 600))
    produce(broker.bootstrap, topic, second)
    produced = set(first + second)
    wait_covered(ms, produced, 90, "consumption resumed after the broker restart")
    for m in ms:
        m.terminate()
    check_delivery(ms, produced)
    # Nothing committed before the crash was delivered again.
    again = [(p, o) for p, o, _ in all_processed(ms) if o < before[p]]
    assert Counter(again) == Counter((p, o) for p in range(PARTITIONS) for o in range(50)), \
        "records below the committed offset were delivered again after the restart"
    # And a fresh member of the group starts at the committed end.
    fresh = members("fresh", broker.bootstrap, group, topic, conf).start()
    wait_until(fresh.ready, 30, "fresh member assigned")
    time.sleep(2)
    assert fresh.processed() == []
    fresh.terminate()


def test_cooperative_sticky(broker, members):
    topic = create_topic(broker.bootstrap)
    group = f"grp-{uuid.uuid4().hex[:8]}"
    conf = dict(CLASSIC, **{"partition.assignment.strategy": "cooperative-sticky"})
    values = list(range(600))
    produce(broker.bootstrap, topic, values[:300])
    ms = [members("m0", broker.bootstrap, group, topic, conf).start()]
    wait_until(ms[0].ready, 30, "first member assigned")
    wait_until(lambda: ms[0].assignment() == set(range(PARTITIONS)), 30, "m0 owns everything")
    # Two more join one after the other: incremental rebalances hand partitions over.
    for i in (1, 2):
        ms.append(members(f"m{i}", broker.bootstrap, group, topic, conf).start())
        wait_until(ms[-1].ready, 40, f"m{i} assigned")
    stable_assignment(ms)
    produce(broker.bootstrap, topic, values[300:])
    wait_covered(ms, set(values), 60, "all records consumed")
    for m in ms:
        m.terminate()
    check_delivery(ms, set(values))
    kinds = {ln[2] for m in ms for ln in m.events("A")}
    assert kinds == {"incremental"}, kinds
    # m0 kept some of its partitions across the handovers (only revocations, no full reset).
    revoked = [ln for ln in ms[0].events("R") if ln[1] != "-"]
    assert revoked, "m0 never gave anything up"
    assert all(len(ln[1].split(",")) < PARTITIONS for ln in revoked), revoked


def test_static_member_restart_keeps_assignment(broker, members):
    topic = create_topic(broker.bootstrap)
    group = f"grp-{uuid.uuid4().hex[:8]}"
    confs = [dict(CLASSIC, **{"group.instance.id": f"inst-{i}"}) for i in range(3)]
    values = list(range(600))
    produce(broker.bootstrap, topic, values[:300])
    ms = [members(f"m{i}", broker.bootstrap, group, topic, confs[i]).start() for i in range(3)]
    wait_covered(ms, set(values[:300]), 60, "first half consumed")
    stable_assignment(ms)
    time.sleep(1.0)
    owned = ms[0].assignment()
    others_events = [len(m.lines()) - len(m.events("P")) - len(m.events("C")) for m in ms[1:]]
    ms[0].terminate()  # a static member's close() sends no LeaveGroup
    back = members("m0-again", broker.bootstrap, group, topic, confs[0]).start()
    wait_until(back.ready, 30, "restarted static member assigned")
    produce(broker.bootstrap, topic, values[300:])
    live = [back, ms[1], ms[2]]
    wait_covered(ms + [back], set(values), 60, "all records consumed")
    assert back.assignment() == owned, (back.assignment(), owned)
    after = [len(m.lines()) - len(m.events("P")) - len(m.events("C")) for m in ms[1:]]
    assert after == others_events, "other members saw a rebalance:\n" + "\n".join(
        m.describe() for m in ms[1:])
    for m in live:
        m.terminate()
    check_delivery(ms + [back], set(values))


def test_kip848_static_member_restart_keeps_assignment(broker, members):
    """KIP-848 static membership: a static member's close() leaves with epoch -2; its
    successor (same group.instance.id) takes its partitions back and the others see no
    revocation or new assignment."""
    topic = create_topic(broker.bootstrap)
    group = f"grp-{uuid.uuid4().hex[:8]}"
    confs = [dict(KIP848, **{"group.instance.id": f"inst-{i}"}) for i in range(3)]
    values = list(range(600))
    produce(broker.bootstrap, topic, values[:300])
    ms = [members(f"m{i}", broker.bootstrap, group, topic, confs[i]).start() for i in range(3)]
    wait_covered(ms, set(values[:300]), 60, "first half consumed")
    # Balanced: on a loaded machine the third member may join after the others have taken
    # every partition; its share reaching it later is a rebalance, not the one tested here.
    stable_assignment(ms, balanced=True)
    time.sleep(6.0)  # a heartbeat interval: everyone has acknowledged the stable assignment
    owned = ms[0].assignment()
    before = [[ln for ln in m.lines() if ln[0] in ("A", "R", "L")] for m in ms[1:]]
    ms[0].terminate()
    back = members("m0-again", broker.bootstrap, group, topic, confs[0]).start()
    wait_until(lambda: back.assignment() == owned, 30,
               "the restarted static member gets its partitions back")
    produce(broker.bootstrap, topic, values[300:])
    wait_covered(ms + [back], set(values), 60, "all records consumed")
    after = [[ln for ln in m.lines() if ln[0] in ("A", "R", "L")] for m in ms[1:]]
    assert after == before, "other members saw a rebalance:\n" + "\n".join(
        m.describe() for m in ms[1:])
    for m in (back, ms[1], ms[2]):
        m.terminate()
    check_delivery(ms + [back], set(values))


def test_time_to_first_record(broker, members):
    """Measures subscribe -> first record of the slowest of 1 and 3 fresh members (printed with
    -s), while a producer keeps every partition fed so each member has something to read."""
    topic = create_topic(broker.bootstrap)
    stop = threading.Event()

    def feed():
        p = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0})
        i = 0
        while not stop.is_set():
            for part in range(PARTITIONS):
                p.produce(topic, value=str(10_000_000 + i).encode(), partition=part)
                i += 1
            p.poll(0)
            time.sleep(0.1)
        p.flush(10)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    figures = {}
    try:
        for label, conf in (("classic", CLASSIC), ("kip848", KIP848)):
            for n in (1, 3):
                group = f"grp-{uuid.uuid4().hex[:8]}"
                ms = [members(f"{label}{n}-{i}", broker.bootstrap, group, topic,
                              dict(conf, **{"auto.offset.reset": "latest"})).start()
                      for i in range(n)]
                wait_until(lambda: all(m.events("F") for m in ms), 60,
                           f"{label} x{n} first records")
                start = min(float(m.events("S")[0][1]) for m in ms)
                figures[f"{label} x{n}"] = max(float(m.events("F")[0][1]) for m in ms) - start
                for m in ms:
                    m.terminate()
    finally:
        stop.set()
        feeder.join(15)
    print("\nsubscribe -> first record (slowest member): "
          + ", ".join(f"{k}: {v:.2f}s" for k, v in figures.items()))
    assert all(v < 20 for v in figures.values()), figures


def test_kip848_regex_subscription(broker, members):
    """librdkafka sends `^...` subscriptions as SubscribedTopicRegex (v1): the coordinator
    resolves it, including a topic created after the member joined."""
    prefix = f"rx{uuid.uuid4().hex[:6]}"
    a = f"{prefix}-a"
    create_topic(broker.bootstrap, 3, a)
    produce(broker.bootstrap, a, list(range(30)), partitions=3)
    group = f"grp-{uuid.uuid4().hex[:8]}"
    m = members("rx", broker.bootstrap, group, f"^{prefix}-.*",
                dict(KIP848, **{"topic.metadata.refresh.interval.ms": 1000})).start()
    wait_covered([m], set(range(30)), 40, "the first matching topic consumed")
    b = f"{prefix}-b"
    create_topic(broker.bootstrap, 2, b)
    produce(broker.bootstrap, b, list(range(100, 120)), partitions=2)
    wait_covered([m], set(range(30)) | set(range(100, 120)), 60, "the new matching topic")
    m.terminate()


# ----------------------------------------------------------------------- other clients
def test_kcat_balanced_consumer(broker):
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if not kcat:
        pytest.fail("kcat is not installed")
    topic = create_topic(broker.bootstrap)
    group = f"kcat-{uuid.uuid4().hex[:8]}"
    values = list(range(120))
    produce(broker.bootstrap, topic, values)
    cmd = [kcat, "-b", broker.bootstrap, "-G", group, "-c", str(len(values)), "-f", "%p %o %s\n",
           "-X", "auto.offset.reset=earliest", "-X", "session.timeout.ms=6000", topic]
    cp = subprocess.run(cmd, capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")[-2000:]
    got = [ln.split() for ln in cp.stdout.decode().splitlines() if ln.strip()]
    assert sorted(int(v) for _, _, v in got) == values
    # kcat commits on close (auto commit): the group is at the ends now.
    offs = wait_until(lambda: (lambda o: o if o == {p: 20 for p in range(PARTITIONS)} else None)(
        committed(broker.bootstrap, group, topic)), 20, "kcat's commits")
    assert offs
    # A second run of the same group sees nothing new.
    produce(broker.bootstrap, topic, [1000 + i for i in range(PARTITIONS)])
    cmd2 = [c if c != str(len(values)) else str(PARTITIONS) for c in cmd]
    cp = subprocess.run(cmd2, capture_output=True, timeout=60)
    assert cp.returncode == 0, cp.stderr.decode(errors="replace")[-2000:]
    got = sorted(int(ln.split()[2]) for ln in cp.stdout.decode().splitlines() if ln.strip())
    assert got == [1000 + i for i in range(PARTITIONS)]


def test_kafka_python_group_consumer(broker):
    kafka = pytest.importorskip("kafka")
    topic = create_topic(broker.bootstrap)
    group = f"kp-{uuid.uuid4().hex[:8]}"
    values = list(range(90))
    produce(broker.bootstrap, topic, values)

    def run(expect: int) -> "list[int]":
        c = kafka.KafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id=group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                session_timeout_ms=SESSION_MS, heartbeat_interval_ms=500,
                                consumer_timeout_ms=20000)
        got: "list[int]" = []
        try:
            deadline = time.monotonic() + 40
            while len(got) < expect and time.monotonic() < deadline:
                batch = c.poll(timeout_ms=500)
                for recs in batch.values():
                    got.extend(int(r.value) for r in recs)
                if batch:
                    c.commit()
            assert set(c.assignment()) == {kafka.TopicPartition(topic, p)
                                           for p in range(PARTITIONS)}
        finally:
            c.close()
        return got

    got = run(len(values))
    assert sorted(got) == values
    assert committed(broker.bootstrap, group, topic) == {p: 15 for p in range(PARTITIONS)}
    produce(broker.bootstrap, topic, [500 + i for i in range(12)])
    assert sorted(run(12)) == [500 + i for i in range(12)]
