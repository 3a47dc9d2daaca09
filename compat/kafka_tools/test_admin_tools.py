"""kafka-get-offsets, kafka-delete-records, kafka-log-dirs, kafka-broker-api-versions and
kafka-features against gregor."""

from __future__ import annotations

import json
import re

import pytest

from conftest import Tools, parse_offsets

ck = pytest.importorskip("confluent_kafka", reason="pip install -r compat/kafka_tools/requirements.txt")

BASE_TS = 1_700_000_000_000  # records get BASE_TS + 1000 * i


def produce_timestamped(bootstrap: str, topic: str, partition: int, count: int) -> None:
    """The console producer cannot set timestamps: write `count` records with known ones."""
    p = ck.Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for i in range(count):
        p.produce(topic, key=f"k{i}".encode(), value=f"v{i}".encode(), partition=partition,
                  timestamp=BASE_TS + 1000 * i)
    assert p.flush(30) == 0


@pytest.fixture(scope="module")
def ts_topic(tools):
    """`stamped`: partition 0 has 10 records at BASE_TS + 0..9 s, partition 1 has 4 at + 0..3 s."""
    tools.create_topic("stamped", 2)
    produce_timestamped(tools.broker.bootstrap, "stamped", 0, 10)
    produce_timestamped(tools.broker.bootstrap, "stamped", 1, 4)
    return "stamped"


@pytest.mark.check("get_offsets", "kafka-get-offsets: earliest, latest, max-timestamp and by time")
def test_get_offsets(tools, ts_topic):
    assert tools.end_offsets(ts_topic, "-1") == {0: 10, 1: 4}
    assert tools.end_offsets(ts_topic, "latest") == {0: 10, 1: 4}
    assert tools.end_offsets(ts_topic, "-2") == {0: 0, 1: 0}
    assert tools.end_offsets(ts_topic, "earliest") == {0: 0, 1: 0}
    # -3: the offset of the record with the largest timestamp
    assert tools.end_offsets(ts_topic, "max-timestamp") == {0: 9, 1: 3}
    # by time: the first offset whose timestamp is >= the given one
    assert tools.end_offsets(ts_topic, str(BASE_TS + 2500)) == {0: 3, 1: 3}
    assert tools.end_offsets(ts_topic, str(BASE_TS)) == {0: 0, 1: 0}
    # after the last record: Kafka answers no offset, the tool prints none for that partition
    late = tools.end_offsets(ts_topic, str(BASE_TS + 5000))
    assert late.get(0) == 5 and late.get(1) in (None, -1), late

    # filters: one partition, then a topic-partition pattern
    r = tools.run("kafka-get-offsets", "--topic", ts_topic, "--partitions", "1")
    assert parse_offsets(r.out, ts_topic) == {1: 4} and len(r.lines()) == 1, str(r)
    r = tools.run("kafka-get-offsets", "--topic-partitions", f"{ts_topic}:0")
    assert r.lines() == [f"{ts_topic}:0:10"], str(r)


@pytest.mark.check("delete_records", "kafka-delete-records --offset-json-file")
def test_delete_records(tools, ts_topic, tmp_path):
    spec = {"version": 1, "partitions": [{"topic": ts_topic, "partition": 0, "offset": 6},
                                          {"topic": ts_topic, "partition": 1, "offset": -1}]}
    f = tmp_path / "offsets.json"
    f.write_text(json.dumps(spec))
    r = tools.run("kafka-delete-records", "--offset-json-file", str(f))
    assert "Records delete operation completed:" in r.out, str(r)
    marks = dict(re.findall(r"partition: (\S+)\tlow_watermark: (\d+)", r.out))
    assert marks == {f"{ts_topic}-0": "6", f"{ts_topic}-1": "4"}, str(r)
    assert tools.end_offsets(ts_topic, "earliest") == {0: 6, 1: 4}
    assert tools.end_offsets(ts_topic, "latest") == {0: 10, 1: 4}
    # a consumer from the beginning starts at the new low watermark
    r = tools.run("kafka-console-consumer", "--topic", ts_topic, "--partition", "0",
                  "--from-beginning", "--max-messages", "4", "--timeout-ms", "15000",
                  "--formatter-property", "print.offset=true",
                  "--formatter-property", "print.timestamp=true", timeout=60)
    assert r.lines() == [f"CreateTime:{BASE_TS + 1000 * i}\tOffset:{i}\tv{i}" for i in range(6, 10)], str(r)
    # beyond the high watermark: OFFSET_OUT_OF_RANGE per partition
    f.write_text(json.dumps({"version": 1, "partitions": [
        {"topic": ts_topic, "partition": 0, "offset": 11}]}))
    r = tools.run("kafka-delete-records", "--offset-json-file", str(f), check=False)
    assert "OffsetOutOfRangeException" in r.out + r.err, str(r)
    assert tools.end_offsets(ts_topic, "earliest")[0] == 6


@pytest.mark.check("log_dirs", "kafka-log-dirs --describe")
def test_log_dirs(tools, ts_topic):
    tools.create_topic("empty-one", 1)
    r = tools.run("kafka-log-dirs", "--describe", "--topic-list", f"{ts_topic},empty-one")
    assert "Received log directory information from brokers 1" in r.out, str(r)
    doc = json.loads(r.lines()[-1])
    (b,) = doc["brokers"]
    assert b["broker"] == tools.broker.node_id
    (d,) = b["logDirs"]
    assert d["error"] is None and d["logDir"] == str(tools.broker.data_dir), d
    parts = {p["partition"]: p for p in d["partitions"]}
    assert set(parts) == {f"{ts_topic}-0", f"{ts_topic}-1", "empty-one-0"}, parts
    assert parts["empty-one-0"]["size"] == 0
    assert parts[f"{ts_topic}-0"]["size"] > 0 and parts[f"{ts_topic}-1"]["size"] > 0
    assert all(not p["isFuture"] and p["offsetLag"] == 0 for p in parts.values()), parts
    # without --topic-list: every partition, internal ones included once they exist
    r = tools.run("kafka-log-dirs", "--describe")
    doc = json.loads(r.lines()[-1])
    names = {p["partition"] for p in doc["brokers"][0]["logDirs"][0]["partitions"]}
    assert {f"{ts_topic}-0", f"{ts_topic}-1", "empty-one-0"} <= names, names


@pytest.mark.check("broker_api_versions", "kafka-broker-api-versions")
def test_broker_api_versions(tools):
    r = tools.run("kafka-broker-api-versions")
    lines = r.lines()
    assert re.match(rf"{re.escape(tools.broker.bootstrap)} \(id: 1 rack: null isFenced: false\) -> \(",
                    lines[0]), str(r)
    apis = {}
    for ln in lines[1:]:
        m = re.match(r"\s*(\w+)\((\d+)\): (.*?),?$", ln)
        if m:
            apis[m.group(1)] = (int(m.group(2)), m.group(3))
    # what the 4.4 tools and clients need is there and usable at the tool's own top version
    for name in ("Produce", "Fetch", "ListOffsets", "Metadata", "OffsetCommit", "OffsetFetch",
                 "FindCoordinator", "JoinGroup", "Heartbeat", "LeaveGroup", "SyncGroup",
                 "DescribeGroups", "ListGroups", "ApiVersions", "CreateTopics", "DeleteTopics",
                 "DeleteRecords", "InitProducerId", "DescribeConfigs", "IncrementalAlterConfigs",
                 "DescribeLogDirs", "CreatePartitions", "DeleteGroups", "OffsetDelete",
                 "DescribeCluster", "DescribeProducers", "DescribeTransactions",
                 "ListTransactions", "ConsumerGroupHeartbeat", "ConsumerGroupDescribe"):
        assert name in apis, f"{name} missing\n{r}"
        assert "usable:" in apis[name][1], f"{name}: {apis[name]}"
    assert apis["Produce"][0] == 0 and apis["ApiVersions"][0] == 18
    assert apis["SaslHandshake"][1] == "UNSUPPORTED"  # no SASL today
    assert lines[-1] == ")", str(r)


@pytest.mark.check("features_describe", "kafka-features describe")
def test_features_describe(tools):
    r = tools.run("kafka-features", "describe")
    feats = {}
    for ln in r.lines():
        m = re.fullmatch(r"Feature: (\S+)\s+SupportedMinVersion: (\S+)\s+SupportedMaxVersion: (\S+)"
                         r"\s+FinalizedVersionLevel: (\S+)\s+Epoch: (\S+)", ln.strip())
        assert m, f"unexpected line {ln!r}\n{r}"
        feats[m.group(1)] = m.groups()[1:]
    assert "metadata.version" in feats and "group.version" in feats, str(r)
    lo, hi, fin, epoch = feats["metadata.version"]
    assert re.fullmatch(r"\d\.\d+-IV\d+", lo) and re.fullmatch(r"\d\.\d+-IV\d+", fin), feats
    assert fin == hi and hi.startswith("4."), feats
    assert int(epoch) >= 0
    # KIP-848 is served: group.version is finalized at 1
    assert feats["group.version"][2] == "1", feats
    # KIP-890 part 2 is not served: transaction.version must not be finalized at 2
    if "transaction.version" in feats:
        assert feats["transaction.version"][2] in ("0", "1", "-"), feats
