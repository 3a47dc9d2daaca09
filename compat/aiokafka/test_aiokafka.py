"""aiokafka (pure-Python asyncio client, never flexible versions) against gregor.

Every test checks the data that comes back: values, keys, headers, timestamps,
offsets and per-partition order.  Each test drives its own event loop with
asyncio.run and bounds every wait (asyncio.wait_for), so nothing hangs.

Run: .venv/bin/python -m pytest compat/aiokafka -v
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time

import pytest

aiokafka = pytest.importorskip("aiokafka", reason="pip install -r compat/aiokafka/requirements.txt")

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402
from aiokafka.errors import (  # noqa: E402
    KafkaError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    UnknownTopicOrPartitionError,
)

STEP_TIMEOUT_S = 60.0
GROUP_APIS = {8: "OffsetCommit", 9: "OffsetFetch", 10: "FindCoordinator", 11: "JoinGroup",
              12: "Heartbeat", 13: "LeaveGroup", 14: "SyncGroup"}


# ----------------------------------------------------------------- helpers

def api_versions(host: str, port: int, timeout: float = 10.0) -> "dict[int, tuple[int, int]]":
    """ApiVersions v0 over a raw socket: {api_key: (min, max)}."""
    client_id = b"compat-probe"
    body = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv(s, 4))[0]
        data = _recv(s, size)
    _corr, err, n = struct.unpack(">ihi", data[:10])
    assert err == 0, f"ApiVersions v0 error {err}"
    out = {}
    for i in range(n):
        k, lo, hi = struct.unpack(">hhh", data[10 + 6 * i:16 + 6 * i])
        out[k] = (lo, hi)
    return out


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def need_groups(broker) -> None:
    apis = api_versions(broker.host, broker.port)
    missing = [name for key, name in GROUP_APIS.items() if key not in apis]
    if missing:
        pytest.skip(f"needs-groups: broker does not advertise {', '.join(missing)}")


def run(coro, timeout: float = 240.0):
    async def bounded():
        return await asyncio.wait_for(coro, timeout)
    return asyncio.run(bounded())


async def step(aw, what: str, timeout: float = STEP_TIMEOUT_S):
    try:
        return await asyncio.wait_for(aw, timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout}s: {what}") from None


def now_ms() -> int:
    return int(time.time() * 1000)


async def create_topics(bootstrap: str, topics: "dict[str, int]") -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await step(admin.start(), "admin start")
    try:
        resp = await step(admin.create_topics(
            [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items()]),
            "create_topics")
        errs = [(t[0], t[1]) for t in resp.topic_errors if t[1] != 0]
        assert not errs, f"CreateTopics errors: {errs}"
    finally:
        await admin.close()


async def topic_names(bootstrap: str) -> "set[str]":
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)
    await step(admin.start(), "admin start")
    try:
        return set(await step(admin.list_topics(), "list_topics"))
    finally:
        await admin.close()


def make_records(n: int, partitions: int, tag: str, base_ts: int) -> "list[dict]":
    recs = []
    for i in range(n):
        recs.append({
            "partition": i % partitions,
            "key": f"{tag}-key-{i}".encode(),
            "value": (f"{tag}-value-{i}-" + "x" * (i % 50)).encode(),
            "headers": [("h-index", str(i).encode()), ("h-tag", tag.encode()), ("empty", b"")],
            "ts": base_ts + i,
        })
    return recs


async def produce(bootstrap: str, topic: str, recs: "list[dict]", **conf) -> "list":
    """Send all records (pipelined, so batches hold several records), return RecordMetadata in order."""
    p = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=30000, linger_ms=20, **conf)
    await step(p.start(), "producer start")
    try:
        futs = [await p.send(topic, value=r["value"], key=r["key"], partition=r["partition"],
                             timestamp_ms=r["ts"], headers=r["headers"]) for r in recs]
        return [await step(f, "delivery") for f in futs]
    finally:
        await p.stop()


async def consume_assigned(bootstrap: str, topic: str, partitions: int, expect: int,
                           **conf) -> "list":
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                         auto_offset_reset="earliest", request_timeout_ms=30000, **conf)
    await step(c.start(), "consumer start")
    try:
        c.assign([TopicPartition(topic, p) for p in range(partitions)])
        await step(c.seek_to_beginning(), "seek_to_beginning")
        got = []
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while len(got) < expect and time.monotonic() < deadline:
            batch = await c.getmany(timeout_ms=1000)
            for _tp, msgs in sorted(batch.items(), key=lambda kv: kv[0].partition):
                got.extend(msgs)
        assert len(got) >= expect, f"consumed {len(got)} of {expect} records within {STEP_TIMEOUT_S}s"
        # a short extra poll: nothing beyond what was produced
        extra = await c.getmany(timeout_ms=500)
        got.extend(m for msgs in extra.values() for m in msgs)
        return got
    finally:
        await c.stop()


def check_roundtrip(recs: "list[dict]", metas: "list", got: "list", topic: str) -> None:
    assert len(got) == len(recs), f"produced {len(recs)} records, consumed {len(got)}"
    by_part: "dict[int, list]" = {}
    for m in got:
        assert m.topic == topic
        by_part.setdefault(m.partition, []).append(m)
    want_part: "dict[int, list]" = {}
    for r, md in zip(recs, metas):
        assert md.partition == r["partition"]
        want_part.setdefault(r["partition"], []).append((r, md))
    assert sorted(by_part) == sorted(want_part)
    for p, wants in want_part.items():
        msgs = by_part[p]
        offsets = [m.offset for m in msgs]
        assert offsets == sorted(offsets), f"partition {p}: offsets out of order {offsets}"
        assert offsets == list(range(len(msgs))), f"partition {p}: offsets {offsets[:10]}..."
        for m, (r, md) in zip(msgs, wants):
            assert m.offset == md.offset, f"p{p}: consumed offset {m.offset} != delivered {md.offset}"
            assert m.key == r["key"]
            assert m.value == r["value"]
            assert m.timestamp == r["ts"], f"p{p}@{m.offset}: timestamp {m.timestamp} != {r['ts']}"
            assert m.timestamp_type == 0, "expected CreateTime"
            assert list(m.headers) == r["headers"], f"p{p}@{m.offset}: headers {m.headers}"


# ----------------------------------------------------------------- admin

@pytest.mark.feature("admin_create_topic", "admin_delete_topic", "metadata_all_topics")
def test_admin_create_delete_topic(broker):
    async def body():
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        await step(admin.start(), "admin start")
        try:
            resp = await step(admin.create_topics(
                [NewTopic("aio-admin", num_partitions=4, replication_factor=1)]), "create")
            assert [(t[0], t[1]) for t in resp.topic_errors] == [("aio-admin", 0)]
            # creating it again: TOPIC_ALREADY_EXISTS (36)
            again = await step(admin.create_topics(
                [NewTopic("aio-admin", num_partitions=4, replication_factor=1)]), "create again")
            assert [(t[0], t[1]) for t in again.topic_errors] == [("aio-admin", 36)]
            topics = await step(admin.list_topics(), "list")
            assert "aio-admin" in topics
            desc = await step(admin.describe_topics(["aio-admin"]), "describe")
            assert len(desc) == 1 and desc[0]["error_code"] == 0
            assert sorted(p["partition"] for p in desc[0]["partitions"]) == [0, 1, 2, 3]
            dresp = await step(admin.delete_topics(["aio-admin"]), "delete")
            assert [(t[0], t[1]) for t in dresp.topic_error_codes] == [("aio-admin", 0)]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if "aio-admin" not in await step(admin.list_topics(), "list"):
                    break
                await asyncio.sleep(0.2)
            assert "aio-admin" not in await step(admin.list_topics(), "list")
            # deleting an unknown topic: UNKNOWN_TOPIC_OR_PARTITION (3)
            gone = await step(admin.delete_topics(["aio-never-existed"]), "delete unknown")
            assert [(t[0], t[1]) for t in gone.topic_error_codes] == [("aio-never-existed", 3)]
        finally:
            await admin.close()
    run(body())


# ----------------------------------------------------------------- produce / consume

CODECS = [
    pytest.param(None, marks=pytest.mark.feature("produce_none", "consume_assign"), id="none"),
    pytest.param("gzip", marks=pytest.mark.feature("produce_gzip"), id="gzip"),
    pytest.param("snappy", marks=pytest.mark.feature("produce_snappy"), id="snappy"),
    pytest.param("lz4", marks=pytest.mark.feature("produce_lz4"), id="lz4"),
    pytest.param("zstd", marks=pytest.mark.feature("produce_zstd"), id="zstd"),
]


@pytest.mark.parametrize("codec", CODECS)
def test_produce_consume_codec(broker, codec):
    topic = f"aio-codec-{codec or 'none'}"

    async def body():
        await create_topics(broker.bootstrap, {topic: 3})
        recs = make_records(300, 3, codec or "none", now_ms() - 60_000)
        metas = await produce(broker.bootstrap, topic, recs, compression_type=codec, acks="all")
        got = await consume_assigned(broker.bootstrap, topic, 3, len(recs))
        check_roundtrip(recs, metas, got, topic)
    run(body())


@pytest.mark.parametrize("acks", [
    pytest.param(0, marks=pytest.mark.feature("acks_0"), id="acks0"),
    pytest.param(1, marks=pytest.mark.feature("acks_1"), id="acks1"),
    pytest.param("all", marks=pytest.mark.feature("acks_all"), id="acksall"),
])
def test_acks(broker, acks):
    topic = f"aio-acks-{acks}"

    async def body():
        await create_topics(broker.bootstrap, {topic: 2})
        recs = make_records(100, 2, f"acks{acks}", now_ms() - 30_000)
        metas = await produce(broker.bootstrap, topic, recs, acks=acks)
        if acks == 0:
            # acks=0: the client learns no offsets (aiokafka resolves to None or offset -1);
            # the data must still land
            assert all(m is None or m.offset == -1 for m in metas), metas[:5]

            class _M:  # offsets as the log must have assigned them
                def __init__(self, partition, offset):
                    self.partition, self.offset = partition, offset
            counters = {0: 0, 1: 0}
            fixed = []
            for r in recs:
                fixed.append(_M(r["partition"], counters[r["partition"]]))
                counters[r["partition"]] += 1
            metas = fixed
        got = await consume_assigned(broker.bootstrap, topic, 2, len(recs))
        check_roundtrip(recs, metas, got, topic)
    run(body())


@pytest.mark.feature("idempotent_produce")
def test_idempotent_producer(broker):
    topic = "aio-idem"

    async def body():
        await create_topics(broker.bootstrap, {topic: 2})
        recs = make_records(200, 2, "idem", now_ms() - 10_000)
        metas = await produce(broker.bootstrap, topic, recs, enable_idempotence=True, acks="all")
        got = await consume_assigned(broker.bootstrap, topic, 2, len(recs))
        check_roundtrip(recs, metas, got, topic)
    run(body())


# ----------------------------------------------------------------- list offsets

@pytest.mark.feature("list_offsets_earliest", "list_offsets_latest", "list_offsets_by_time")
def test_list_offsets(broker):
    topic = "aio-offsets"

    async def body():
        await create_topics(broker.bootstrap, {topic: 2})
        base = now_ms() - 100_000
        recs = [{"partition": 0, "key": b"k%d" % i, "value": b"v%d" % i, "headers": [],
                 "ts": base + 1000 * i} for i in range(10)]
        await produce(broker.bootstrap, topic, recs, acks="all")
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000)
        await step(c.start(), "consumer start")
        try:
            tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
            assert await step(c.beginning_offsets([tp0, tp1]), "earliest") == {tp0: 0, tp1: 0}
            assert await step(c.end_offsets([tp0, tp1]), "latest") == {tp0: 10, tp1: 0}
            found = await step(c.offsets_for_times({tp0: base + 3500, tp1: base}), "by time")
            assert found[tp0] is not None and found[tp0].offset == 4
            assert found[tp0].timestamp == base + 4000
            assert found[tp1] is None  # empty partition: no record at/after that time
            later = await step(c.offsets_for_times({tp0: base + 999_999}), "after last")
            assert later[tp0] is None
            exact = await step(c.offsets_for_times({tp0: base}), "first ts")
            assert exact[tp0].offset == 0 and exact[tp0].timestamp == base
        finally:
            await c.stop()
    run(body())


# ----------------------------------------------------------------- errors

@pytest.mark.feature("unknown_topic_no_autocreate")
@pytest.mark.broker_args("--set", "auto.create.topics.enable=false")
def test_unknown_topic_no_autocreate(broker):
    async def body():
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000,
                             max_block_ms=4000) if _has_max_block() else \
            AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=5000)
        await step(p.start(), "producer start")
        try:
            t0 = time.monotonic()
            with pytest.raises((KafkaTimeoutError, UnknownTopicOrPartitionError)):
                await step(p.send_and_wait("aio-nope", b"v"), "send to unknown topic", 45)
            assert time.monotonic() - t0 < 45
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, request_timeout_ms=10000)
        await step(c.start(), "consumer start")
        try:
            parts = c.partitions_for_topic("aio-nope")
            assert not parts, f"unknown topic has partitions {parts}"
        finally:
            await c.stop()
        assert "aio-nope" not in await topic_names(broker.bootstrap)
    run(body())


def _has_max_block() -> bool:
    import inspect
    return "max_block_ms" in inspect.signature(AIOKafkaProducer.__init__).parameters


@pytest.mark.feature("message_too_large")
def test_message_too_large(broker):
    topic = "aio-big"

    async def body():
        await create_topics(broker.bootstrap, {topic: 1})
        # the client-side limit is raised well above the broker's message.max.bytes (1048588),
        # so MESSAGE_TOO_LARGE can only come from the broker's Produce response
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, request_timeout_ms=30000,
                             max_request_size=8 * 1024 * 1024, acks="all")
        await step(p.start(), "producer start")
        try:
            with pytest.raises(MessageSizeTooLargeError):
                await step(p.send_and_wait(topic, b"x" * (2 * 1024 * 1024), key=b"big"), "big send")
            # the producer and topic keep working after the rejection
            md = await step(p.send_and_wait(topic, b"small", key=b"k", timestamp_ms=1_700_000_000_000,
                                            headers=[("a", b"b")]), "small send")
            assert md.offset == 0
        finally:
            await p.stop()
        got = await consume_assigned(broker.bootstrap, topic, 1, 1)
        assert [(m.offset, m.key, m.value, m.timestamp, list(m.headers)) for m in got] == \
            [(0, b"k", b"small", 1_700_000_000_000, [("a", b"b")])]
    run(body())


# ----------------------------------------------------------------- groups

@pytest.mark.feature("consume_group")
def test_consume_group(broker):
    need_groups(broker)
    topic = "aio-group"

    async def body():
        await create_topics(broker.bootstrap, {topic: 3})
        recs = make_records(90, 3, "grp", now_ms() - 5000)
        metas = await produce(broker.bootstrap, topic, recs, acks="all")
        c = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="aio-g1",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             request_timeout_ms=30000, session_timeout_ms=10000,
                             heartbeat_interval_ms=1000)
        await step(c.start(), "group consumer start")
        try:
            got = []
            deadline = time.monotonic() + STEP_TIMEOUT_S
            while len(got) < len(recs) and time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=1000)
                for _tp, msgs in sorted(batch.items(), key=lambda kv: kv[0].partition):
                    got.extend(msgs)
            assert sorted(tp.partition for tp in c.assignment()) == [0, 1, 2]
            check_roundtrip(recs, metas, got, topic)
            await step(c.commit(), "commit")
        finally:
            await c.stop()
        # a new member of the same group starts where the first one committed: nothing left
        c2 = AIOKafkaConsumer(topic, bootstrap_servers=broker.bootstrap, group_id="aio-g1",
                              auto_offset_reset="earliest", enable_auto_commit=False,
                              request_timeout_ms=30000, session_timeout_ms=10000,
                              heartbeat_interval_ms=1000)
        await step(c2.start(), "second consumer start")
        try:
            more = await step(c2.getmany(timeout_ms=3000), "poll after commit")
            assert sum(len(v) for v in more.values()) == 0
        finally:
            await c2.stop()
    run(body())


@pytest.mark.feature("commit_fetch_offsets")
def test_commit_fetch_offsets(broker):
    need_groups(broker)
    topic = "aio-commit"

    async def body():
        await create_topics(broker.bootstrap, {topic: 2})
        recs = make_records(20, 2, "cm", now_ms())
        await produce(broker.bootstrap, topic, recs, acks="all")
        tp0, tp1 = TopicPartition(topic, 0), TopicPartition(topic, 1)
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="aio-manual",
                             enable_auto_commit=False, request_timeout_ms=30000)
        await step(c.start(), "consumer start")
        try:
            c.assign([tp0, tp1])
            assert await step(c.committed(tp0), "committed before") is None
            await step(c.commit({tp0: 7, tp1: 3}), "commit")
            assert await step(c.committed(tp0), "committed tp0") == 7
            assert await step(c.committed(tp1), "committed tp1") == 3
        finally:
            await c.stop()
        # a fresh consumer of the group resumes at the committed offsets
        c2 = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="aio-manual",
                              enable_auto_commit=False, auto_offset_reset="earliest",
                              request_timeout_ms=30000)
        await step(c2.start(), "consumer2 start")
        try:
            c2.assign([tp0])
            batch = await step(c2.getmany(tp0, timeout_ms=5000), "poll")
            first = batch.get(tp0, [])
            assert first and first[0].offset == 7 and first[0].key == b"cm-key-14"
        finally:
            await c2.stop()
    run(body())


@pytest.mark.feature("transactions", "transactions_offsets")
def test_transactions(broker):
    topic = "aio-txn"

    async def body():
        await create_topics(broker.bootstrap, {topic: 2})
        recs = make_records(20, 2, "commit", now_ms())
        p = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, transactional_id="aio-tx",
                             enable_idempotence=True, request_timeout_ms=30000)
        await step(p.start(), "transactional producer start")
        try:
            def args(r):
                return dict(partition=r["partition"], key=r["key"], value=r["value"],
                            headers=r["headers"], timestamp_ms=r["ts"])
            async with p.transaction():
                for r in recs:
                    await p.send(topic, **args(r))
            await step(p.begin_transaction(), "begin")
            for r in make_records(10, 2, "abort", now_ms()):
                await step(p.send_and_wait(topic, **args(r)), "send to abort")
            await step(p.abort_transaction(), "abort")
            async with p.transaction():
                await step(p.send_offsets_to_transaction({TopicPartition(topic, 1): 7}, "aio-txn-g"),
                           "send offsets")
        finally:
            await p.stop()
        c = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             request_timeout_ms=30000)
        await step(c.start(), "read_committed consumer start")
        try:
            c.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
            got = []
            deadline = time.monotonic() + STEP_TIMEOUT_S
            idle_since = None
            while time.monotonic() < deadline:
                batch = await c.getmany(timeout_ms=500)
                n = sum(len(v) for v in batch.values())
                for msgs in batch.values():
                    got.extend(msgs)
                if n == 0 and len(got) >= len(recs):
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 1.5:
                        break
            values = sorted(m.value for m in got)
            assert values == sorted(r["value"] for r in recs), "committed only"
        finally:
            await c.stop()
        c2 = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, group_id="aio-txn-g",
                              enable_auto_commit=False, request_timeout_ms=30000)
        await step(c2.start(), "group consumer start")
        try:
            assert await step(c2.committed(TopicPartition(topic, 1)), "committed") == 7
        finally:
            await c2.stop()
    run(body())
