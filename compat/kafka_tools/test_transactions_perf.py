"""kafka-transactions (list, describe, describe-producers, find-hanging) after a committed and an
open transaction; kafka-producer-perf-test and kafka-consumer-perf-test."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import Tools, parse_tab_table

pytest.importorskip("confluent_kafka", reason="pip install -r compat/kafka_tools/requirements.txt")

HELPER = Path(__file__).resolve().parent / "txn_helper.py"
TXT = "tx-topic"


def transactions(tools: Tools, *args: str) -> "list[dict[str, str]]":
    return parse_tab_table(tools.run("kafka-transactions", *args).out)


def by_id(rows: "list[dict]") -> "dict[str, dict]":
    return {r["TransactionalId"]: r for r in rows}


@pytest.fixture(scope="module")
def perf_tx(tools):
    """kafka-producer-perf-test with --transactional-id: 1000 records in committed transactions."""
    r = tools.run("kafka-producer-perf-test", "--topic", "tx-perf", "--num-records", "1000",
                  "--record-size", "50", "--throughput", "-1",
                  "--command-property", f"bootstrap.servers={tools.broker.bootstrap}",
                  "--transactional-id", "perf-tx", "--transaction-duration-ms", "200",
                  bootstrap=False, timeout=120)
    assert re.search(r"^1000 records sent", r.out, re.M), str(r)
    return r


@pytest.fixture(scope="module")
def open_tx(tools, perf_tx):
    """A confluent-kafka producer `open-tx` with 3 committed records on tx-topic-0 and a
    transaction of 5 more left open. Yields (process, its stdout reader)."""
    tools.create_topic(TXT, 1)
    p = subprocess.Popen([sys.executable, str(HELPER), tools.broker.bootstrap, TXT, "open-tx", "3", "5"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        line = p.stdout.readline().strip()
        assert line == "open", f"helper said {line!r}: {p.stderr.read() if p.poll() is not None else ''}"
        yield p
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


@pytest.mark.check("transactions_list", "kafka-transactions list")
def test_transactions_list(tools, open_tx):
    rows = by_id(transactions(tools, "list"))
    assert {"perf-tx", "open-tx"} <= set(rows), rows
    assert rows["perf-tx"]["TransactionState"] == "CompleteCommit", rows
    assert rows["open-tx"]["TransactionState"] == "Ongoing", rows
    assert rows["open-tx"]["Coordinator"] == "1" and rows["perf-tx"]["Coordinator"] == "1"
    assert rows["open-tx"]["ProducerId"] != rows["perf-tx"]["ProducerId"]


@pytest.mark.check("transactions_describe", "kafka-transactions describe (open and committed)")
def test_transactions_describe(tools, open_tx):
    listed = by_id(transactions(tools, "list"))
    (d,) = transactions(tools, "describe", "--transactional-id", "open-tx")
    assert d["TransactionalId"] == "open-tx" and d["TransactionState"] == "Ongoing", d
    assert d["CoordinatorId"] == "1" and d["ProducerId"] == listed["open-tx"]["ProducerId"], d
    assert d["TransactionTimeoutMs"] == "60000", d
    assert d["TopicPartitions"] == f"{TXT}-0", d
    start = int(d["CurrentTransactionStartTimeMs"])
    assert abs(start - time.time() * 1000) < 120_000, d
    assert int(d["TransactionDurationMs"]) >= 0, d

    (c,) = transactions(tools, "describe", "--transactional-id", "perf-tx")
    assert c["TransactionState"] == "CompleteCommit" and c["TopicPartitions"] == "", c

    r = tools.run("kafka-transactions", "describe", "--transactional-id", "never-used", check=False)
    assert r.rc != 0 and "could not be found" in r.out + r.err, str(r)


@pytest.mark.check("transactions_describe_producers",
                   "kafka-transactions describe-producers (open transaction start offset)")
def test_transactions_describe_producers(tools, open_tx):
    pid = by_id(transactions(tools, "list"))["open-tx"]["ProducerId"]
    rows = transactions(tools, "describe-producers", "--topic", TXT, "--partition", "0")
    (row,) = [r for r in rows if r["ProducerId"] == pid]
    assert row["ProducerEpoch"] == "0", row
    # 3 committed records (offsets 0-2), their commit marker (3), the open transaction from 4
    assert row["CurrentTransactionStartOffset"] == "4", row
    assert row["LastSequence"] == "7", row
    assert abs(int(row["LastTimestamp"]) - time.time() * 1000) < 120_000, row

    # a read_committed consumer sees only the committed three
    r = tools.run("kafka-console-consumer", "--topic", TXT, "--from-beginning",
                  "--isolation-level", "read_committed", "--timeout-ms", "5000", timeout=60)
    assert r.lines() == ["committed-0", "committed-1", "committed-2"], str(r)

    # nothing is hanging (the open transaction is well within its timeout)
    r = tools.run("kafka-transactions", "find-hanging", "--broker-id", "1")
    assert parse_tab_table(r.out) == [], str(r)


@pytest.mark.check("transactions_describe_producers",
                   "kafka-transactions describe-producers (open transaction start offset)")
@pytest.mark.check("transactions_describe", "kafka-transactions describe (open and committed)")
def test_transactions_after_commit(tools, open_tx):
    open_tx.stdin.write("commit\n")
    open_tx.stdin.flush()
    assert open_tx.stdout.readline().strip() == "done", open_tx.stderr.read()
    (d,) = transactions(tools, "describe", "--transactional-id", "open-tx")
    assert d["TransactionState"] in ("CompleteCommit", "PrepareCommit"), d
    deadline = time.monotonic() + 10
    while d["TransactionState"] != "CompleteCommit" and time.monotonic() < deadline:
        time.sleep(0.5)
        (d,) = transactions(tools, "describe", "--transactional-id", "open-tx")
    assert d["TransactionState"] == "CompleteCommit" and d["TopicPartitions"] == "", d
    rows = transactions(tools, "describe-producers", "--topic", TXT, "--partition", "0")
    (row,) = [r for r in rows if r["ProducerId"] == d["ProducerId"]]
    assert row["CurrentTransactionStartOffset"] == "None", row
    r = tools.run("kafka-console-consumer", "--topic", TXT, "--from-beginning",
                  "--isolation-level", "read_committed", "--max-messages", "8",
                  "--timeout-ms", "15000", timeout=60)
    assert r.lines() == [f"committed-{i}" for i in range(3)] + [f"open-{i}" for i in range(5)], str(r)


# --------------------------------------------------------------------------- perf tools

PERF_RECORDS = 20000
RECORD_SIZE = 100


@pytest.mark.check("producer_perf_test", "kafka-producer-perf-test (20000 records, acks=all)")
def test_producer_perf_test(tools):
    tools.create_topic("perf", 3)
    r = tools.run("kafka-producer-perf-test", "--topic", "perf", "--num-records", str(PERF_RECORDS),
                  "--record-size", str(RECORD_SIZE), "--throughput", "-1",
                  "--command-property", f"bootstrap.servers={tools.broker.bootstrap}", "acks=all",
                  "--print-metrics",
                  bootstrap=False, fast=False, timeout=180)
    m = re.search(
        r"^(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
        r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99\.9th\.$",
        r.out, re.M)
    assert m, str(r)
    assert int(m.group(1)) == PERF_RECORDS and float(m.group(2)) > 0, m.group(0)
    # --print-metrics: the producer saw no errors and no retries
    metrics = dict(re.findall(r"^producer-metrics:(record-error-total|record-retry-total)"
                              r":\{client-id=[^}]*\}\s*:\s*([\d.]+)$", r.out, re.M))
    assert metrics == {"record-error-total": "0.000", "record-retry-total": "0.000"}, metrics
    offsets = tools.end_offsets("perf")
    assert sum(offsets.values()) == PERF_RECORDS and len(offsets) == 3, offsets


@pytest.mark.check("consumer_perf_test", "kafka-consumer-perf-test consumes all 20000 records")
def test_consumer_perf_test(tools):
    if sum(tools.end_offsets("perf").values()) != PERF_RECORDS:
        pytest.skip("needs the records of test_producer_perf_test")
    r = tools.run("kafka-consumer-perf-test", "--topic", "perf", "--num-records", str(PERF_RECORDS),
                  "--timeout", "60000", "--group", "perf-group", fast=False, timeout=180)
    lines = r.lines()
    header = [h.strip() for h in lines[-2].split(",")]
    values = [v.strip() for v in lines[-1].split(",")]
    row = dict(zip(header, values))
    assert "data.consumed.in.nMsg" in row, str(r)
    assert int(row["data.consumed.in.nMsg"]) == PERF_RECORDS, row
    assert float(row["data.consumed.in.MB"]) == pytest.approx(PERF_RECORDS * RECORD_SIZE / 1048576, abs=1e-3), row
    # the perf consumer committed its positions: the group has no lag
    r = tools.run("kafka-consumer-groups", "--describe", "--group", "perf-group")
    from conftest import parse_table
    lag = {int(x["PARTITION"]): x for x in parse_table(r.out, "GROUP")}
    assert sorted(lag) == [0, 1, 2], str(r)
    assert sum(int(x["CURRENT-OFFSET"]) for x in lag.values()) == PERF_RECORDS, str(r)
