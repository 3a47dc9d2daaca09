"""kcat (Debian's package, librdkafka inside) against gregor.

Topics are created with kafka-python's admin client (kcat cannot create topics;
kafka-python keeps this suite independent of the newer librdkafka inside
confluent-kafka) and awaited with `kcat -L -J`; everything else goes through the
kcat binary, and every test checks the data
that comes back: keys, values, offsets, timestamps, headers, partitions.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time

import pytest

from kafka.admin import KafkaAdminClient, NewTopic

KCAT = shutil.which("kcat") or shutil.which("kafkacat")
KCAT_TIMEOUT_S = 60


@pytest.fixture(autouse=True)
def _need_kcat():
    if KCAT is None:
        pytest.fail("kcat is not installed (apt-get install kcat); .ci/run installs it")


def kcat(broker, *args: str, input: "bytes | str | None" = None, check: bool = True,
         timeout: float = KCAT_TIMEOUT_S) -> subprocess.CompletedProcess:
    cmd = [KCAT, "-b", broker.bootstrap, "-m", "15", *args]
    if isinstance(input, str):
        input = input.encode()
    try:
        cp = subprocess.run(cmd, input=input if input is not None else b"",
                            capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"kcat timed out after {timeout}s: {cmd}\nstderr: "
                             f"{(e.stderr or b'').decode(errors='replace')[-3000:]}") from None
    if check and cp.returncode != 0:
        raise AssertionError(
            f"kcat exited {cp.returncode}: {cmd}\nstdout: {cp.stdout.decode(errors='replace')[-2000:]}"
            f"\nstderr: {cp.stderr.decode(errors='replace')[-3000:]}")
    return cp


def create_topics(broker, topics: "dict[str, int]", timeout: float = 30.0) -> None:
    """Create {name: partitions} (RF 1), then wait until kcat's Metadata shows them led."""
    a = KafkaAdminClient(bootstrap_servers=broker.bootstrap, api_version_auto_timeout_ms=30000,
                         request_timeout_ms=30000)
    try:
        a.create_topics([NewTopic(t, num_partitions=n, replication_factor=1)
                         for t, n in topics.items()], timeout_ms=int(timeout * 1000))
    finally:
        a.close()
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        cp = kcat(broker, "-L", "-J", check=False, timeout=30)
        if cp.returncode == 0:
            md = json.loads(cp.stdout)
            seen = {t["topic"]: t for t in md.get("topics", [])}
            last = {t: len(seen[t]["partitions"]) if t in seen else None for t in topics}
            if all(t in seen and len(seen[t]["partitions"]) == n
                   and all(p["leader"] >= 0 for p in seen[t]["partitions"])
                   for t, n in topics.items()):
                return
        time.sleep(0.2)
    raise AssertionError(f"topics {topics} not in kcat -L within {timeout}s (last: {last})")


def out_lines(cp) -> "list[str]":
    return [line for line in cp.stdout.decode().split("\n") if line != ""]


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------- metadata

def test_metadata_list(broker):
    create_topics(broker, {"kc-meta": 3, "kc-meta-one": 1})
    text = kcat(broker, "-L").stdout.decode()
    assert "1 brokers:" in text, text
    assert f"broker {broker.node_id} at {broker.bootstrap}" in text, text
    assert 'topic "kc-meta" with 3 partitions:' in text, text
    assert 'topic "kc-meta-one" with 1 partitions:' in text, text
    for p in range(3):
        assert (f"partition {p}, leader {broker.node_id}, replicas: {broker.node_id}, "
                f"isrs: {broker.node_id}") in text, text

    # -t restricts the listing to one topic.
    one = kcat(broker, "-L", "-t", "kc-meta-one").stdout.decode()
    assert 'topic "kc-meta-one" with 1 partitions:' in one, one
    assert '"kc-meta"' not in one, one


def test_metadata_list_json(broker):
    create_topics(broker, {"kc-json": 3})
    md = json.loads(kcat(broker, "-L", "-J").stdout)
    assert md["brokers"] == [{"id": broker.node_id, "name": broker.bootstrap}], md
    assert md["controllerid"] == broker.node_id, md
    topics = {t["topic"]: t for t in md["topics"]}
    assert "kc-json" in topics, md
    t = topics["kc-json"]
    assert "error" not in t or not t["error"], t
    parts = sorted(t["partitions"], key=lambda p: p["partition"])
    assert [p["partition"] for p in parts] == [0, 1, 2], t
    for p in parts:
        assert p["leader"] == broker.node_id, p
        assert p["replicas"] == [{"id": broker.node_id}], p
        assert p["isrs"] == [{"id": broker.node_id}], p


# ------------------------------------------------------------- produce/consume

def test_keyed_produce_consume(broker):
    create_topics(broker, {"kc-keyed": 1})
    rows = [(f"key{i}", f"value number {i} \u00e9\u4e2d") for i in range(50)]
    before = now_ms()
    kcat(broker, "-P", "-t", "kc-keyed", "-p", "0", "-K:",
         input="".join(f"{k}:{v}\n" for k, v in rows))
    after = now_ms()
    cp = kcat(broker, "-C", "-t", "kc-keyed", "-p", "0", "-e", "-o", "beginning",
              "-f", "%k %s %o %T %h\n")
    lines = out_lines(cp)
    assert len(lines) == len(rows), lines
    for i, line in enumerate(lines):
        k, v1, v2, v3, v4, off, ts, hdrs = (line.split(" ") + [""])[:8]
        assert k == rows[i][0]
        assert f"{v1} {v2} {v3} {v4}" == rows[i][1]
        assert int(off) == i
        assert before - 1000 <= int(ts) <= after + 1000, (ts, before, after)
        assert hdrs == "", line


def test_keyed_produce_spreads_over_partitions(broker):
    """No -p: librdkafka's partitioner picks by key; per partition order is kept and
    every record of one key lands in one partition."""
    create_topics(broker, {"kc-spread": 3})
    rows = [(f"k{i % 10}", f"v{i}") for i in range(300)]
    kcat(broker, "-P", "-t", "kc-spread", "-K:", input="".join(f"{k}:{v}\n" for k, v in rows))
    cp = kcat(broker, "-C", "-t", "kc-spread", "-e", "-o", "beginning", "-f", "%p|%o|%k|%s\n")
    got = [line.split("|") for line in out_lines(cp)]
    assert len(got) == len(rows)
    key_part = {}
    per_part = {}
    for p, o, k, v in got:
        assert key_part.setdefault(k, p) == p, f"key {k} in partitions {key_part[k]} and {p}"
        per_part.setdefault(p, []).append((int(o), int(v[1:])))
    assert len(per_part) >= 2, f"all keys hashed to one partition: {per_part.keys()}"
    for p, recs in per_part.items():
        offs = [o for o, _ in recs]
        assert offs == list(range(len(recs))), f"partition {p} offsets {offs[:20]}"
        seqs = [s for _, s in recs]
        assert seqs == sorted(seqs), f"partition {p} out of production order"
    assert sorted(int(v[1:]) for _, _, _, v in got) == list(range(300))


def test_null_value_and_empty_key(broker):
    create_topics(broker, {"kc-null": 1})
    # -Z: empty values are produced as NULL (tombstones).
    kcat(broker, "-P", "-t", "kc-null", "-p", "0", "-K:", "-Z", input="a:1\nb:\nc:3\n")
    cp = kcat(broker, "-C", "-t", "kc-null", "-e", "-o", "beginning", "-Z",
              "-f", "%k|%s|%S|%K\n")
    assert out_lines(cp) == ["a|1|1|1", "b|NULL|-1|1", "c|3|1|1"]


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_produce_compressed(broker, codec):
    topic = f"kc-codec-{codec}"
    create_topics(broker, {topic: 1})
    rows = [f"{codec}-record-{i}-" + "x" * (i % 97) for i in range(500)]
    kcat(broker, "-P", "-t", topic, "-p", "0", "-X", f"compression.codec={codec}",
         "-X", "linger.ms=20", input="".join(r + "\n" for r in rows))
    cp = kcat(broker, "-C", "-t", topic, "-e", "-o", "beginning", "-f", "%o:%s\n")
    assert out_lines(cp) == [f"{i}:{r}" for i, r in enumerate(rows)]


# --------------------------------------------------------------------- headers

def test_headers(broker):
    create_topics(broker, {"kc-headers": 1})
    kcat(broker, "-P", "-t", "kc-headers", "-p", "0", "-H", "trace=abc", "-H", "dup=1",
         "-H", "dup=2", "-H", "empty=", "-K:", input="k1:v1\nk2:v2\n")
    cp = kcat(broker, "-C", "-t", "kc-headers", "-e", "-o", "beginning", "-f", "%k=%s [%h]\n")
    assert out_lines(cp) == ["k1=v1 [trace=abc,dup=1,dup=2,empty=]",
                             "k2=v2 [trace=abc,dup=1,dup=2,empty=]"]

    js = [json.loads(line) for line in out_lines(
        kcat(broker, "-C", "-t", "kc-headers", "-e", "-o", "beginning", "-J"))]
    assert [(m["key"], m["payload"], m["offset"], m["partition"]) for m in js] == [
        ("k1", "v1", 0, 0), ("k2", "v2", 1, 0)]
    for m in js:
        # kcat renders headers as a flat [name, value, name, value, ...] list.
        assert m["headers"] == ["trace", "abc", "dup", "1", "dup", "2", "empty", ""], m
        assert m["tstype"] == "create", m


# --------------------------------------------------------------------- offsets

def test_offsets(broker):
    create_topics(broker, {"kc-offsets": 1})
    kcat(broker, "-P", "-t", "kc-offsets", "-p", "0", input="".join(f"m{i}\n" for i in range(20)))

    def consume(*args):
        cp = kcat(broker, "-C", "-t", "kc-offsets", "-p", "0", "-e", "-f", "%o=%s\n", *args)
        return out_lines(cp)

    assert consume("-o", "beginning") == [f"{i}=m{i}" for i in range(20)]
    assert consume("-o", "15") == [f"{i}=m{i}" for i in range(15, 20)]
    assert consume("-o", "0", "-c", "3") == ["0=m0", "1=m1", "2=m2"]
    assert consume("-o", "7", "-c", "2") == ["7=m7", "8=m8"]
    # relative to the end
    assert consume("-o", "-2") == ["18=m18", "19=m19"]
    assert consume("-o", "-5", "-c", "1") == ["15=m15"]
    assert consume("-o", "end") == []

    # Appending continues the offsets.
    kcat(broker, "-P", "-t", "kc-offsets", "-p", "0", input="late\n")
    assert consume("-o", "-1") == ["20=late"]


def test_query_offset_by_timestamp(broker):
    create_topics(broker, {"kc-query": 1})
    kcat(broker, "-P", "-t", "kc-query", "-p", "0", input="".join(f"a{i}\n" for i in range(5)))
    time.sleep(1.1)
    mid = now_ms()
    time.sleep(0.1)
    kcat(broker, "-P", "-t", "kc-query", "-p", "0", input="".join(f"b{i}\n" for i in range(5)))

    def query(ts) -> int:
        out = kcat(broker, "-Q", "-t", f"kc-query:0:{ts}").stdout.decode()
        m = re.search(r"^kc-query \[0\] offset (-?\d+)$", out, re.M)
        assert m, out
        return int(m.group(1))

    assert query(0) == 0
    assert query(mid) == 5
    assert query(now_ms() + 3_600_000) == -1  # nothing that late
    # -o s@ts starts consumption at the first record with timestamp >= ts.
    cp = kcat(broker, "-C", "-t", "kc-query", "-p", "0", "-e", "-o", f"s@{mid}", "-f", "%o=%s\n")
    assert out_lines(cp) == [f"{5 + i}=b{i}" for i in range(5)]
    # ... and e@ts stops before the first record with timestamp >= ts.
    cp = kcat(broker, "-C", "-t", "kc-query", "-p", "0", "-e", "-o", "beginning",
              "-o", f"e@{mid}", "-f", "%o=%s\n")
    assert out_lines(cp) == [f"{i}=a{i}" for i in range(5)]


# ------------------------------------------------------------------ partitions

def test_partition_selection(broker):
    create_topics(broker, {"kc-parts": 3})
    for p in range(3):
        kcat(broker, "-P", "-t", "kc-parts", "-p", str(p),
             input="".join(f"p{p}-r{i}\n" for i in range(4 + p)))
    for p in range(3):
        cp = kcat(broker, "-C", "-t", "kc-parts", "-p", str(p), "-e", "-o", "beginning",
                  "-f", "%p %o %s\n")
        assert out_lines(cp) == [f"{p} {i} p{p}-r{i}" for i in range(4 + p)]
    cp = kcat(broker, "-C", "-t", "kc-parts", "-e", "-o", "beginning", "-f", "%p %o %s\n")
    assert sorted(out_lines(cp)) == sorted(
        f"{p} {i} p{p}-r{i}" for p in range(3) for i in range(4 + p))
