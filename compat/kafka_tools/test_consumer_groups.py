"""kafka-consumer-groups against gregor: list, describe with real lag numbers, offset resets,
delete-offsets and delete."""

from __future__ import annotations

import os
import re
import subprocess
import time

import pytest

from conftest import BIN, FAST_JVM, Tools, parse_table

TOPIC = "orders"
GROUP = "billing"


def produce(tools: Tools, start: int, count: int) -> None:
    tools.run("kafka-console-producer", "--topic", TOPIC, "--reader-property", "parse.key=true",
              input="".join(f"key-{i}\tvalue-{i}\n" for i in range(start, start + count)))


def group_offsets(tools: Tools, group: str = GROUP) -> "dict[int, dict[str, str]]":
    r = tools.run("kafka-consumer-groups", "--describe", "--group", group)
    rows = parse_table(r.out, "GROUP")
    out = {}
    for row in rows:
        assert row["GROUP"] == group and row["TOPIC"] == TOPIC, row
        out[int(row["PARTITION"])] = row
    return out


def reset(tools: Tools, *how: str, topic: str = TOPIC, execute: bool = True) -> "dict[int, int]":
    r = tools.run("kafka-consumer-groups", "--group", GROUP, "--reset-offsets", *how,
                  "--topic", topic, "--execute" if execute else "--dry-run")
    rows = parse_table(r.out, "GROUP")
    assert rows, str(r)
    return {int(row["PARTITION"]): int(row["NEW-OFFSET"]) for row in rows}


@pytest.fixture(scope="module")
def loaded(tools):
    """orders (3 partitions): 30 records read by group `billing` (console consumer), then 9 more."""
    tools.create_topic(TOPIC, 3)
    produce(tools, 0, 30)
    first = tools.end_offsets(TOPIC)
    assert sum(first.values()) == 30 and len(first) == 3, first
    r = tools.run("kafka-console-consumer", "--topic", TOPIC, "--group", GROUP, "--from-beginning",
                  "--max-messages", "30", "--timeout-ms", "20000", timeout=60)
    assert sorted(r.lines()) == sorted(f"value-{i}" for i in range(30)), str(r)
    committed = group_offsets(tools)
    produce(tools, 30, 9)
    second = tools.end_offsets(TOPIC)
    assert sum(second.values()) == 39, second
    return {"first": first, "second": second, "committed_after_read": committed}


@pytest.mark.check("groups_list", "kafka-consumer-groups --list (and --list --state)")
def test_list(tools, loaded):
    r = tools.run("kafka-consumer-groups", "--list")
    assert GROUP in r.lines(), str(r)
    r = tools.run("kafka-consumer-groups", "--list", "--state")
    rows = parse_table(r.out, "GROUP")
    assert {"GROUP": GROUP, "STATE": "Empty"} in rows, str(r)


@pytest.mark.check("groups_describe_lag",
                   "kafka-consumer-groups --describe: CURRENT-OFFSET / LOG-END-OFFSET / LAG")
def test_describe_lag(tools, loaded):
    first, second = loaded["first"], loaded["second"]
    # right after the console consumer read everything: no lag
    for p, row in loaded["committed_after_read"].items():
        assert int(row["CURRENT-OFFSET"]) == first[p], row
        assert int(row["LOG-END-OFFSET"]) == first[p], row
        assert row["LAG"] == "0", row
        assert row["CONSUMER-ID"] == "-", row
    # 9 more records: the lag is exactly what was produced to each partition since
    rows = group_offsets(tools)
    assert sorted(rows) == [0, 1, 2]
    for p, row in rows.items():
        assert int(row["CURRENT-OFFSET"]) == first[p], row
        assert int(row["LOG-END-OFFSET"]) == second[p], row
        assert int(row["LAG"]) == second[p] - first[p], row
    assert sum(int(r["LAG"]) for r in rows.values()) == 9

    r = tools.run("kafka-consumer-groups", "--describe", "--group", GROUP, "--state")
    (state,) = parse_table(r.out, "GROUP")
    assert state["STATE"] == "Empty" and state["#MEMBERS"] == "0", str(r)
    assert f"{tools.broker.bootstrap}" in r.out, str(r)

    r = tools.run("kafka-consumer-groups", "--describe", "--group", "no-such-group", check=False)
    assert "does not exist" in r.out + r.err, str(r)


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_describe_members_of_live_group(tools, loaded, request, protocol):
    """A console consumer that stays in the group shows up as a member with its partitions, for a
    classic group and for a KIP-848 (group.protocol=consumer) one."""
    request.node.add_marker(pytest.mark.check(
        f"groups_describe_members_{protocol}",
        f"kafka-consumer-groups --describe --members/--state, live {protocol}-protocol consumer"))
    group, client = f"live-{protocol}", f"live-{protocol}-client"
    env = dict(os.environ, KAFKA_JVM_PERFORMANCE_OPTS=FAST_JVM)
    p = subprocess.Popen([str(BIN / "kafka-console-consumer"), *tools.bs, "--topic", TOPIC,
                          "--group", group, "--command-property", f"client.id={client}",
                          "--command-property", f"group.protocol={protocol}",
                          "--timeout-ms", "60000"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + 40
        rows, r = [], None
        while time.monotonic() < deadline:
            r = tools.run("kafka-consumer-groups", "--describe", "--group", group, "--members",
                          "--verbose", check=False)
            rows = parse_table(r.out, "GROUP")
            if rows and rows[0].get("#PARTITIONS") == "3":
                break
            time.sleep(1)
        assert len(rows) == 1, f"{r}"
        m = rows[0]
        assert m["CLIENT-ID"] == client and m["#PARTITIONS"] == "3" and m["HOST"] == "/127.0.0.1", m
        r = tools.run("kafka-consumer-groups", "--describe", "--group", group, "--state")
        (state,) = parse_table(r.out, "GROUP")
        assert state["STATE"] == "Stable" and state["#MEMBERS"] == "1", str(r)
        types = {row["GROUP"]: row["TYPE"] for row in parse_table(
            tools.run("kafka-consumer-groups", "--list", "--type").out, "GROUP")}
        if protocol == "classic":
            assert m["CONSUMER-ID"].startswith(f"{client}-"), m
            assert m["CURRENT-ASSIGNMENT"] == f"{TOPIC}:0,1,2", m
            assert m["CURRENT-EPOCH"] == m["TARGET-EPOCH"] == "-", m  # no member epochs
            assert state["ASSIGNMENT-STRATEGY"] in ("range", "cooperative-sticky"), state
            assert types[group] == "Classic", types
        else:
            # KIP-848: the broker assigns; member epochs and the target assignment are shown
            assert re.fullmatch(r"[A-Za-z0-9_-]{22}", m["CONSUMER-ID"]), m
            assert m["CURRENT-ASSIGNMENT"] == m["TARGET-ASSIGNMENT"] == f"{TOPIC}:0,1,2", m
            assert int(m["CURRENT-EPOCH"]) == int(m["TARGET-EPOCH"]) >= 1, m
            assert state["ASSIGNMENT-STRATEGY"] in ("uniform", "range"), state
            assert types[group] == "Consumer", types
    finally:
        p.terminate()
        try:
            p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


@pytest.mark.check("groups_reset_offsets",
                   "kafka-consumer-groups --reset-offsets --to-earliest/--to-offset/--shift-by --execute")
def test_reset_offsets(tools, loaded):
    second = loaded["second"]
    before = {p: int(r["CURRENT-OFFSET"]) for p, r in group_offsets(tools).items()}
    # --dry-run shows the plan but changes nothing
    assert reset(tools, "--to-earliest", execute=False) == {0: 0, 1: 0, 2: 0}
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in group_offsets(tools).items()} == before

    assert reset(tools, "--to-earliest") == {0: 0, 1: 0, 2: 0}
    rows = group_offsets(tools)
    for p, row in rows.items():
        assert row["CURRENT-OFFSET"] == "0" and int(row["LAG"]) == second[p], row

    assert reset(tools, "--to-latest") == second
    assert {p: int(r["LAG"]) for p, r in group_offsets(tools).items()} == {0: 0, 1: 0, 2: 0}

    # --to-offset on one partition (topic:partition)
    target = min(2, second[0])
    assert reset(tools, "--to-offset", str(target), topic=f"{TOPIC}:0") == {0: target}
    rows = group_offsets(tools)
    assert int(rows[0]["CURRENT-OFFSET"]) == target
    assert int(rows[0]["LAG"]) == second[0] - target
    assert int(rows[1]["CURRENT-OFFSET"]) == second[1]  # untouched

    # --shift-by moves relative to the committed offset, clamped to [earliest, latest]
    assert reset(tools, "--shift-by", "-3", topic=f"{TOPIC}:1,2") == {
        1: max(second[1] - 3, 0), 2: max(second[2] - 3, 0)}
    assert reset(tools, "--shift-by", "1000", topic=f"{TOPIC}:0") == {0: second[0]}
    rows = group_offsets(tools)
    assert {p: int(r["CURRENT-OFFSET"]) for p, r in rows.items()} == {
        0: second[0], 1: max(second[1] - 3, 0), 2: max(second[2] - 3, 0)}

    # the reset offsets are what a consumer of the group gets next
    r = tools.run("kafka-console-consumer", "--topic", TOPIC, "--group", GROUP,
                  "--max-messages", "100", "--timeout-ms", "4000",
                  "--formatter-property", "print.partition=true",
                  "--formatter-property", "print.offset=true", timeout=60)
    got = sorted(r.lines())
    want = sorted(f"Partition:{p}\tOffset:{o}" for p in (1, 2)
                  for o in range(max(second[p] - 3, 0), second[p]))
    assert [ln.rsplit("\t", 1)[0] for ln in got] == want, str(r)


@pytest.mark.check("groups_delete_offsets", "kafka-consumer-groups --delete-offsets (empty group)")
def test_delete_offsets(tools, loaded):
    tools.create_topic("side", 1)
    tools.run("kafka-console-producer", "--topic", "side", input="a\nb\n")
    r = tools.run("kafka-console-consumer", "--topic", "side", "--group", "two-topics",
                  "--from-beginning", "--max-messages", "2", "--timeout-ms", "15000", timeout=60)
    assert r.lines() == ["a", "b"], str(r)
    r = tools.run("kafka-consumer-groups", "--reset-offsets", "--group", "two-topics",
                  "--topic", TOPIC, "--to-earliest", "--execute")
    r = tools.run("kafka-consumer-groups", "--describe", "--group", "two-topics")
    assert {row["TOPIC"] for row in parse_table(r.out, "GROUP")} == {TOPIC, "side"}, str(r)

    r = tools.run("kafka-consumer-groups", "--delete-offsets", "--group", "two-topics",
                  "--topic", "side")
    rows = parse_table(r.out, "TOPIC")
    assert rows == [{"TOPIC": "side", "PARTITION": "0", "STATUS": "Successful"}], str(r)
    r = tools.run("kafka-consumer-groups", "--describe", "--group", "two-topics")
    assert {row["TOPIC"] for row in parse_table(r.out, "GROUP")} == {TOPIC}, str(r)


@pytest.mark.check("groups_delete", "kafka-consumer-groups --delete")
def test_delete_group(tools, loaded):
    r = tools.run("kafka-consumer-groups", "--delete", "--group", GROUP)
    assert f"Deletion of requested consumer groups ('{GROUP}') was successful." in r.out, str(r)
    assert GROUP not in tools.run("kafka-consumer-groups", "--list").lines()
    r = tools.run("kafka-consumer-groups", "--describe", "--group", GROUP, check=False)
    assert "does not exist" in r.out + r.err, str(r)
    r = tools.run("kafka-consumer-groups", "--delete", "--group", GROUP, check=False)
    assert "GroupIdNotFoundException" in r.out + r.err or "does not exist" in r.out + r.err, str(r)
