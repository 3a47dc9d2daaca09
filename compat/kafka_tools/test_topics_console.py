"""kafka-topics and kafka-console-producer / kafka-console-consumer against gregor."""

from __future__ import annotations

import re
import time

import pytest

from conftest import Tools


def describe(tools: Tools, topic: str) -> "tuple[dict, list[dict]]":
    """kafka-topics --describe: the topic line's fields and one dict per partition line."""
    r = tools.run("kafka-topics", "--describe", "--topic", topic)
    head, parts = None, []
    for ln in r.out.splitlines():
        fields = {}
        for cell in ln.strip().split("\t"):
            k, sep, v = cell.partition(":")
            if sep:
                fields[k.strip()] = v.strip()
        if not fields:
            continue
        if "PartitionCount" in fields:
            head = fields
        elif "Partition" in fields:
            parts.append(fields)
    assert head is not None, str(r)
    return head, parts


def configs_of(head: dict) -> "dict[str, str]":
    raw = head.get("Configs", "")
    return dict(kv.split("=", 1) for kv in raw.split(",") if "=" in kv)


# --------------------------------------------------------------------------- kafka-topics

@pytest.mark.check("topics_create", "kafka-topics --create with --partitions and --config")
@pytest.mark.check("topics_describe", "kafka-topics --describe shows partitions, leader and configs")
def test_topics_create_and_describe(tools):
    tools.create_topic("orders", 3, "retention.ms=3600000", "cleanup.policy=compact",
                       "max.message.bytes=500000")
    head, parts = describe(tools, "orders")
    assert head["Topic"] == "orders"
    assert head["PartitionCount"] == "3" and head["ReplicationFactor"] == "1"
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", head["TopicId"]), head
    assert configs_of(head) == {"retention.ms": "3600000", "cleanup.policy": "compact",
                                "max.message.bytes": "500000"}
    assert sorted(int(p["Partition"]) for p in parts) == [0, 1, 2]
    node = str(tools.broker.node_id)
    for p in parts:
        assert p["Topic"] == "orders"
        assert p["Leader"] == node and p["Replicas"] == node and p["Isr"] == node, p


@pytest.mark.check("topics_create", "kafka-topics --create with --partitions and --config")
def test_topics_create_existing_and_bad_config(tools):
    tools.create_topic("dup", 1)
    r = tools.run("kafka-topics", "--create", "--topic", "dup", "--partitions", "1", check=False)
    assert r.rc != 0 and "TopicExistsException" in r.out + r.err, str(r)
    assert "already exists" in r.out + r.err, str(r)
    # --if-not-exists makes the same call a quiet success
    r = tools.run("kafka-topics", "--create", "--if-not-exists", "--topic", "dup", "--partitions", "1")
    assert "Created topic" not in r.out
    r = tools.run("kafka-topics", "--create", "--topic", "badcfg", "--partitions", "1",
                  "--config", "retention.ms=soon", check=False)
    assert r.rc != 0 and "retention.ms" in r.out + r.err, str(r)
    listed = tools.run("kafka-topics", "--list").lines()
    assert "badcfg" not in listed


@pytest.mark.check("topics_list", "kafka-topics --list")
def test_topics_list(tools):
    for t in ("list-a", "list-b"):
        tools.create_topic(t, 2)
    listed = tools.run("kafka-topics", "--list").lines()
    assert {"list-a", "list-b", "orders"} <= set(listed), listed
    assert listed == sorted(listed), listed
    # internal topics are hidden with --exclude-internal
    listed = tools.run("kafka-topics", "--list", "--exclude-internal").lines()
    assert not any(t.startswith("__") for t in listed), listed


@pytest.mark.check("topics_alter_partitions", "kafka-topics --alter --partitions")
def test_topics_alter_partitions(tools):
    tools.create_topic("grow", 2)
    tools.run("kafka-topics", "--alter", "--topic", "grow", "--partitions", "5")
    head, parts = describe(tools, "grow")
    assert head["PartitionCount"] == "5"
    assert sorted(int(p["Partition"]) for p in parts) == [0, 1, 2, 3, 4]
    # shrinking is refused, as Kafka does
    r = tools.run("kafka-topics", "--alter", "--topic", "grow", "--partitions", "3", check=False)
    assert r.rc != 0 and "InvalidPartitionsException" in r.out + r.err, str(r)
    head, _ = describe(tools, "grow")
    assert head["PartitionCount"] == "5"


@pytest.mark.check("topics_delete", "kafka-topics --delete")
def test_topics_delete(tools):
    tools.create_topic("doomed", 2)
    tools.run("kafka-topics", "--delete", "--topic", "doomed")
    deadline = time.monotonic() + 15
    while "doomed" in tools.run("kafka-topics", "--list").lines():
        assert time.monotonic() < deadline, "topic still listed 15 s after --delete"
        time.sleep(0.5)
    r = tools.run("kafka-topics", "--describe", "--topic", "doomed", check=False)
    assert r.rc != 0 and "does not exist" in r.out + r.err, str(r)
    r = tools.run("kafka-topics", "--delete", "--topic", "doomed", check=False)
    assert r.rc != 0 and "does not exist" in r.out + r.err, str(r)


# --------------------------------------------------------------------------- console tools

def consume(tools: Tools, topic: str, *extra: str, props: "tuple[str, ...]" = (),
            timeout_ms: int = 15000):
    args = ["--topic", topic, "--timeout-ms", str(timeout_ms), *extra]
    for p in props:
        args += ["--formatter-property", p]
    return tools.run("kafka-console-consumer", *args, timeout=60)


RECORDS = [  # (headers, key, value)
    ("trace:t-1,origin:gregor", "user-1", "first value"),
    ("trace:t-2", "user-2", "second: with colon, and comma"),
    ("trace:t-3,empty:", "user-1", "third"),
    ("trace:t-4,dup:a,dup:b", "user-3", "fourth {\"json\": true}"),
    ("trace:t-5", "user-2", "fifth"),
]


@pytest.mark.check("console_keys_headers",
                   "kafka-console-producer parse.key/parse.headers, consumer print.key/headers/timestamp")
@pytest.mark.check("console_from_beginning_max_messages",
                   "kafka-console-consumer --from-beginning --max-messages")
def test_console_keys_headers_timestamps(tools):
    tools.create_topic("console", 1)
    lines = "".join(f"{h}\t{k}\t{v}\n" for h, k, v in RECORDS)
    before = int(time.time() * 1000)
    tools.run("kafka-console-producer", "--topic", "console",
              "--reader-property", "parse.key=true", "--reader-property", "parse.headers=true",
              input=lines)
    after = int(time.time() * 1000)
    assert tools.end_offsets("console") == {0: len(RECORDS)}

    r = consume(tools, "console", "--from-beginning", "--max-messages", "3",
                props=("print.key=true", "print.headers=true", "print.timestamp=true",
                       "print.offset=true", "print.partition=true"))
    assert "Processed a total of 3 messages" in r.err, str(r)
    got = r.lines()
    assert len(got) == 3, str(r)
    for i, ln in enumerate(got):
        ts, part, off, headers, key, value = ln.split("\t", 5)
        h, k, v = RECORDS[i]
        assert ts.startswith("CreateTime:"), ln
        assert before - 1000 <= int(ts.removeprefix("CreateTime:")) <= after + 1000, ln
        assert part == "Partition:0" and off == f"Offset:{i}", ln
        assert headers == h and key == k and value == v, ln

    # all five, headers printed with a custom separator, keys with null marker for no headers
    r = consume(tools, "console", "--from-beginning", "--max-messages", "5",
                props=("print.key=true", "print.headers=true", "headers.separator=|",
                       "key.separator= => "))
    got = r.lines()
    assert got == [f"{h.replace(',', '|')} => {k} => {v}" for h, k, v in RECORDS], str(r)


@pytest.mark.check("console_keys_headers",
                   "kafka-console-producer parse.key/parse.headers, consumer print.key/headers/timestamp")
def test_console_no_key_no_headers_and_separator(tools):
    tools.create_topic("plain", 1)
    tools.run("kafka-console-producer", "--topic", "plain",
              "--reader-property", "parse.key=true", "--reader-property", "key.separator=::",
              input="a::1\nb::2\nc::x::y\n")
    tools.run("kafka-console-producer", "--topic", "plain", input="no key here\n")
    r = consume(tools, "plain", "--from-beginning", "--max-messages", "4",
                props=("print.key=true", "print.headers=true", "null.literal=<none>"))
    assert r.lines() == ["NO_HEADERS\ta\t1", "NO_HEADERS\tb\t2", "NO_HEADERS\tc\tx::y",
                         "NO_HEADERS\t<none>\tno key here"], str(r)


@pytest.mark.check("console_group", "kafka-console-consumer --group resumes from committed offsets")
def test_console_consumer_group_resumes(tools):
    tools.create_topic("resume", 2)
    tools.run("kafka-console-producer", "--topic", "resume", "--reader-property", "parse.key=true",
              input="".join(f"k{i}\tv{i}\n" for i in range(10)))
    r = consume(tools, "resume", "--group", "console-g", "--from-beginning", "--max-messages", "10",
                props=("print.key=true",))
    assert sorted(r.lines()) == sorted(f"k{i}\tv{i}" for i in range(10)), str(r)
    # the group committed what it read: a second run gets only what is produced afterwards
    tools.run("kafka-console-producer", "--topic", "resume", "--reader-property", "parse.key=true",
              input="k10\tv10\nk11\tv11\n")
    r = consume(tools, "resume", "--group", "console-g", "--max-messages", "2",
                props=("print.key=true",))
    assert sorted(r.lines()) == ["k10\tv10", "k11\tv11"], str(r)
    # and nothing more is there for the group
    r = consume(tools, "resume", "--group", "console-g", "--max-messages", "1", timeout_ms=3000)
    assert r.lines() == [], str(r)
    assert "Processed a total of 0 messages" in r.err, str(r)


@pytest.mark.check("console_partition_offset", "kafka-console-consumer --partition --offset")
def test_console_consumer_partition_offset(tools):
    tools.create_topic("seek", 1)
    tools.run("kafka-console-producer", "--topic", "seek",
              input="".join(f"line-{i}\n" for i in range(8)))
    r = consume(tools, "seek", "--partition", "0", "--offset", "5", "--max-messages", "3",
                props=("print.offset=true",))
    assert r.lines() == ["Offset:5\tline-5", "Offset:6\tline-6", "Offset:7\tline-7"], str(r)
