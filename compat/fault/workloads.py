"""Client workloads of the fault suite, each a thread driving a real Kafka client against the
cluster while the nemesis breaks it, and recording every operation and its outcome into a
shared `History` for the checker (field names as in checker.py's docstring):

  IdempotentProducer   acks=all, enable.idempotence, no compression; unique values
                       "<name>.<incarnation>-<seq>", every ack and every failure recorded
  AssignReader         assign() from the beginning of every partition, records what it reads and
                       the high watermark of each fetch (librdkafka's cached watermark)
  GroupCommitter       one group member; commits synchronously about every second and reads the
                       committed offsets back, both recorded in order
  TxnProcessor         read-process-write: consumes the input topic, writes "<txn>:<input>" to the
                       output topic in a transaction with send_offsets_to_transaction; every
                       `abort_every`-th transaction is aborted on purpose and its input re-read
  feeding the txn input is an IdempotentProducer; AssignReader(read_committed=True) reads the
  output.

Times are time.monotonic() of this process, the same clock the nemesis stamps faults with, so
liveness figures can be computed from the history.
"""

from __future__ import annotations

import threading
import time

from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

# Client timeouts: long enough to ride out a failover, short enough that every outstanding
# record resolves (ack or failure) within the run's drain period.
MESSAGE_TIMEOUT_MS = 20000
SOCKET_TIMEOUT_MS = 5000


class History:
    """Append-only operation lists shared by the workload threads (list.append is atomic under
    the GIL; the lock guards only the snapshot)."""

    KEYS = ("produces", "reads", "hws", "commits", "txns", "txn_reads", "errors")

    def __init__(self):
        self.lock = threading.Lock()
        for k in self.KEYS:
            setattr(self, k, [])

    def error(self, who: str, what: str) -> None:
        # Client errors are not violations by themselves; kept for reading a failing run.
        self.errors.append({"who": who, "error": what, "t": time.monotonic()})

    def snapshot(self) -> dict:
        with self.lock:
            return {k: list(getattr(self, k)) for k in self.KEYS}


class Workload(threading.Thread):
    """A daemon thread that runs body() until stop() and records any crash of its own."""

    def __init__(self, name: str, history: History):
        super().__init__(name=name, daemon=True)
        self.history = history
        self.stopping = threading.Event()
        self.crash: "str | None" = None

    def stop(self) -> None:
        self.stopping.set()

    def run(self) -> None:
        try:
            self.body()
        except Exception as e:  # a workload bug must fail the run, not vanish in a thread
            self.crash = f"{type(e).__name__}: {e}"
            self.history.error(self.name, f"workload crashed: {self.crash}")

    def body(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class IdempotentProducer(Workload):
    def __init__(self, name: str, history: History, bootstrap: str, topic: str, partitions: int,
                 rate_per_s: float = 100.0):
        super().__init__(name, history)
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.interval = 1.0 / rate_per_s
        self.incarnation = 0

    def _client(self) -> Producer:
        return Producer({
            "bootstrap.servers": self.bootstrap, "acks": "all", "enable.idempotence": True,
            "compression.type": "none", "linger.ms": 5,
            "message.timeout.ms": MESSAGE_TIMEOUT_MS, "socket.timeout.ms": SOCKET_TIMEOUT_MS,
            "metadata.max.age.ms": 5000, "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 0})

    def body(self) -> None:
        while not self.stopping.is_set():
            self.incarnation += 1
            self._run_incarnation()

    def _run_incarnation(self) -> None:
        pname = f"{self.name}.{self.incarnation}"
        fatal = threading.Event()
        prod = self._client()
        hist = self.history

        def report(seq: int):
            def cb(err, msg):
                rec = {"producer": pname, "seq": seq, "value": msg.value().decode(),
                       "partition": msg.partition(), "t": time.monotonic()}
                if err is None:
                    rec.update(ok=True, offset=msg.offset(), error=None)
                else:
                    rec.update(ok=False, offset=None, error=str(err))
                    if err.fatal():
                        fatal.set()
                hist.produces.append(rec)
            return cb

        seq = 0
        next_t = time.monotonic()
        while not self.stopping.is_set() and not fatal.is_set():
            try:
                prod.produce(self.topic, value=f"{pname}-{seq}".encode(),
                             partition=seq % self.partitions, on_delivery=report(seq))
                seq += 1
            except BufferError:
                prod.poll(0.1)
                continue
            except KafkaException as e:
                hist.error(pname, f"produce: {e}")
                if e.args[0].fatal():
                    break
                time.sleep(0.1)
            # poll() returns as soon as it served a report, so it cannot pace the sends.
            prod.poll(0)
            next_t = max(next_t + self.interval, time.monotonic() - 1.0)
            delay = next_t - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        # Every outstanding record resolves (ack or timeout) before the producer goes: a record
        # left unreported would be neither acknowledged nor failed in the history.
        left = prod.flush(MESSAGE_TIMEOUT_MS / 1000 + 10)
        if left:
            hist.error(pname, f"{left} records without a delivery report after flush")
        if fatal.is_set():
            hist.error(pname, "fatal producer error; starting a new incarnation")


class AssignReader(Workload):
    def __init__(self, name: str, history: History, bootstrap: str, topic: str, partitions: int,
                 read_committed: bool = False):
        super().__init__(name, history)
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.read_committed = read_committed

    def body(self) -> None:
        hist = self.history
        reads = hist.txn_reads if self.read_committed else hist.reads
        c = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": f"fault-{self.name}",
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed" if self.read_committed else "read_uncommitted",
            "socket.timeout.ms": SOCKET_TIMEOUT_MS, "topic.metadata.refresh.interval.ms": 1000,
            "log_level": 0})
        tps = [TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in range(self.partitions)]
        c.assign(tps)
        last_hw: "dict[int, int]" = {}
        try:
            while not self.stopping.is_set():
                for m in c.consume(num_messages=500, timeout=0.3):
                    if m.error() is not None:
                        hist.error(self.name, str(m.error()))
                        continue
                    reads.append({"reader": self.name, "partition": m.partition(),
                                  "offset": m.offset(), "value": m.value().decode(),
                                  "t": time.monotonic()})
                if self.read_committed:
                    continue  # the cached "high" of a read_committed fetch is the LSO
                for p in range(self.partitions):
                    try:
                        _lo, hi = c.get_watermark_offsets(TopicPartition(self.topic, p),
                                                          cached=True)
                    except KafkaException:
                        continue
                    if hi >= 0 and last_hw.get(p) != hi:
                        last_hw[p] = hi
                        hist.hws.append({"reader": self.name, "partition": p, "hw": hi,
                                         "t": time.monotonic()})
        finally:
            c.close()


class GroupCommitter(Workload):
    def __init__(self, name: str, history: History, bootstrap: str, topic: str, group: str):
        super().__init__(name, history)
        self.bootstrap, self.topic, self.group = bootstrap, topic, group

    def body(self) -> None:
        hist = self.history
        c = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": self.group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000, "heartbeat.interval.ms": 1000,
            "socket.timeout.ms": SOCKET_TIMEOUT_MS, "log_level": 0})
        c.subscribe([self.topic])
        next_commit = time.monotonic() + 1.0
        try:
            while not self.stopping.is_set():
                for m in c.consume(num_messages=200, timeout=0.3):
                    if m.error() is not None:
                        hist.error(self.name, str(m.error()))
                if time.monotonic() < next_commit:
                    continue
                next_commit = time.monotonic() + 1.0
                self._commit(c)
                self._read_back(c)
        finally:
            c.close()

    def _commit(self, c: Consumer) -> None:
        try:
            done = c.commit(asynchronous=False)
        except KafkaException as e:
            if e.args[0].code() != KafkaError._NO_OFFSET:
                self.history.error(self.name, f"commit: {e}")
            return
        now = time.monotonic()
        for tp in done or []:
            if tp.error is None and tp.offset >= 0:
                self.history.commits.append({"group": self.group, "partition": tp.partition,
                                             "offset": tp.offset, "source": "commit", "t": now})

    def _read_back(self, c: Consumer) -> None:
        try:
            assignment = c.assignment()
            if not assignment:
                return
            got = c.committed(assignment, timeout=5)
        except KafkaException as e:
            self.history.error(self.name, f"committed: {e}")
            return
        now = time.monotonic()
        for tp in got:
            if tp.error is None:
                self.history.commits.append({"group": self.group, "partition": tp.partition,
                                             "offset": tp.offset, "source": "fetch", "t": now})


class TxnProcessor(Workload):
    def __init__(self, name: str, history: History, bootstrap: str, in_topic: str,
                 out_topic: str, group: str, abort_every: int = 4):
        super().__init__(name, history)
        self.bootstrap, self.in_topic, self.out_topic = bootstrap, in_topic, out_topic
        self.group, self.abort_every = group, abort_every
        self.txn_no = 0

    def body(self) -> None:
        while not self.stopping.is_set():
            try:
                self._session()
            except KafkaException as e:
                # A fatal error (fenced, coordinator state lost...): a fresh producer and
                # consumer resume from the committed offsets, as an application would.
                self.history.error(self.name, f"session restarts: {e}")
                time.sleep(0.5)

    def _session(self) -> None:
        hist = self.history
        prod = Producer({
            "bootstrap.servers": self.bootstrap, "transactional.id": f"fault-{self.name}",
            "acks": "all", "enable.idempotence": True, "compression.type": "none",
            "transaction.timeout.ms": 30000, "message.timeout.ms": MESSAGE_TIMEOUT_MS,
            "socket.timeout.ms": SOCKET_TIMEOUT_MS, "log_level": 0})
        cons = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": self.group,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "session.timeout.ms": 10000,
            "socket.timeout.ms": SOCKET_TIMEOUT_MS, "log_level": 0})
        try:
            prod.init_transactions(30)
            cons.subscribe([self.in_topic])
            while not self.stopping.is_set():
                msgs = [m for m in cons.consume(num_messages=20, timeout=0.5)
                        if m.error() is None]
                if not msgs:
                    continue
                self._one_txn(prod, cons, msgs)
        finally:
            cons.close()

    def _one_txn(self, prod: Producer, cons: Consumer, msgs: list) -> None:
        hist = self.history
        self.txn_no += 1
        n = self.txn_no
        # Where this batch started, per partition: an aborted batch is read again from there.
        rewind: "dict[int, int]" = {}
        for m in msgs:
            rewind.setdefault(m.partition(), m.offset())
        values = [f"{self.name}.t{n}:{m.value().decode()}" for m in msgs]
        rec = {"txn": n, "values": values, "outcome": "unknown", "t": time.monotonic()}
        hist.txns.append(rec)
        want_abort = n % self.abort_every == 0
        try:
            prod.begin_transaction()
            for m, v in zip(msgs, values):
                prod.produce(self.out_topic, value=v.encode(), partition=m.partition())
            # Partitions not fetched yet have no position (-1001) and nothing to commit.
            positions = [tp for tp in cons.position(cons.assignment()) if tp.offset >= 0]
            prod.send_offsets_to_transaction(positions, cons.consumer_group_metadata(), 30)
            if want_abort:
                prod.abort_transaction(30)
                rec["outcome"] = "aborted"
            else:
                prod.commit_transaction(30)
                rec["outcome"] = "committed"
        except KafkaException as e:
            err = e.args[0]
            hist.error(self.name, f"txn {n}: {err}")
            if err.txn_requires_abort():
                try:
                    prod.abort_transaction(30)
                    rec["outcome"] = "aborted"
                except KafkaException as e2:
                    hist.error(self.name, f"txn {n} abort: {e2}")
                    raise
            else:
                raise  # fatal or unresolved: the outcome stays "unknown"; start a new session
        rec["t_end"] = time.monotonic()
        if rec["outcome"] == "aborted":
            for p, o in rewind.items():
                cons.seek(TopicPartition(self.in_topic, p, o))
