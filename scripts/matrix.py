#!/usr/bin/env python3
"""Regenerate compat/MATRIX.md: client x feature, from real test runs.

Inputs
  compat/results/<client>.json   written by the aiokafka, kafkajs, sarama (Go) and rskafka (Rust)
                                 suites: {"client", "version", "features": {name: {status, test, note}}}
  compat/results/<suite>.json    written by the tool and framework suites (Kafka's CLI tools,
                                 Streams, Connect, MirrorMaker 2, Flink): {"suite", "title",
                                 "version", "generated", "checks": {name: {status, test, note,
                                 label}}}; rendered as a second table, one row per check
  compat/results/*.xml           JUnit XML from pytest (`--junitxml=compat/results/pytest-junit.xml`),
                                 for the kcat, confluent-kafka and kafka-python suites; their test
                                 names are mapped to features below.

Usage
  python3 scripts/matrix.py            # regenerate compat/MATRIX.md from the files above
  python3 scripts/matrix.py --run      # first run the four suites owned here (each may fail),
                                       # then regenerate
  python3 scripts/matrix.py --stdout   # print instead of writing

Statuses: pass, FAIL, n/a (the client cannot do it), skip, and "–" (no test covers it). A suite
that reports "needs-groups" (the broker did not advertise the consumer-group APIs when it ran) is
recorded as FAIL: the broker advertises them, so a suite that finds them missing found a bug.
Exit code: 0, or 1 when any cell is FAIL (so CI can gate on it if it wants to).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "compat" / "results"
OUT = REPO / "compat" / "MATRIX.md"

FEATURES = [
    ("admin_create_topic", "Create topic (the client's admin API)"),
    ("admin_delete_topic", "Delete topic (the client's admin API)"),
    ("metadata_all_topics", "List all topics (Metadata, all topics)"),
    ("produce_none", "Produce + read back, uncompressed"),
    ("produce_gzip", "Produce + read back, gzip"),
    ("produce_snappy", "Produce + read back, snappy"),
    ("produce_lz4", "Produce + read back, lz4"),
    ("produce_zstd", "Produce + read back, zstd"),
    ("acks_0", "acks=0"),
    ("acks_1", "acks=1"),
    ("acks_all", "acks=all"),
    ("idempotent_produce", "Idempotent producer"),
    ("consume_assign", "Consume by assign (no group)"),
    ("consume_group", "Consume with a consumer group"),
    ("commit_fetch_offsets", "Commit / fetch group offsets"),
    ("list_offsets_earliest", "List offsets: earliest"),
    ("list_offsets_latest", "List offsets: latest"),
    ("list_offsets_by_time", "List offsets: by timestamp"),
    ("unknown_topic_no_autocreate", "Unknown topic, auto-create off"),
    ("message_too_large", "Record > message.max.bytes → MESSAGE_TOO_LARGE"),
    ("transactions", "Transactions: commit read, abort skipped (read_committed)"),
    ("transactions_offsets", "Transactions: consumed offsets committed with the output"),
    ("consume_group_consumer_protocol", "Consumer group, KIP-848 protocol (group.protocol=consumer)"),
    ("static_membership", "Static membership (group.instance.id)"),
    ("cooperative_rebalance", "Cooperative (incremental) rebalancing"),
    ("admin_partitions", "Admin: create partitions"),
    ("admin_configs", "Admin: describe / alter configs"),
    ("admin_groups", "Admin: list / describe / delete groups and their offsets"),
    ("admin_delete_records", "Admin: delete records"),
    ("admin_log_dirs", "Admin: describe log dirs"),
    ("admin_transactions", "Admin: list / describe transactions and producers"),
    ("admin_features", "Admin: describe cluster and features"),
]

# column order; "json" clients come from compat/results/<name>.json
CLIENTS = [
    ("java", "Java kafka-clients 4.x"),
    ("java-3.9", "Java kafka-clients 3.9"),
    ("librdkafka", "confluent-kafka (librdkafka)"),
    ("rdkafka", "rust-rdkafka (librdkafka)"),
    ("kcat", "kcat (librdkafka)"),
    ("kafka-python", "kafka-python"),
    ("aiokafka", "aiokafka"),
    ("kafkajs", "kafkajs"),
    ("sarama", "sarama (Go)"),
    ("franz-go", "franz-go (Go)"),
    ("kafka-go", "segmentio/kafka-go (Go)"),
    ("rskafka", "rskafka (Rust)"),
]
JSON_CLIENTS = {c for c, _label in CLIENTS} - {"librdkafka", "kcat", "kafka-python"}

# JUnit (pytest) suites owned elsewhere: (client, module suffix, test-name regex, features).
# "{codec}" in a feature name is filled from the regex's `codec` group.
JUNIT_MAP = [
    ("kcat", "test_kcat", r"test_produce_compressed\[(?P<codec>\w+)\]", ["produce_{codec}", "consume_assign"]),
    ("kcat", "test_kcat", r"test_keyed_produce_consume$", ["produce_none", "consume_assign"]),
    ("kcat", "test_kcat", r"test_metadata_list$", ["metadata_all_topics"]),
    ("kcat", "test_kcat", r"test_offsets$", ["list_offsets_earliest", "list_offsets_latest"]),
    ("kcat", "test_kcat", r"test_query_offset_by_timestamp$", ["list_offsets_by_time"]),
    ("librdkafka", "test_confluent", r"test_create_list_describe_delete_topic$",
     ["admin_create_topic", "admin_delete_topic"]),
    ("librdkafka", "test_confluent", r"test_list_topics_all$", ["metadata_all_topics"]),
    ("librdkafka", "test_confluent", r"test_idempotent_produce_consume_codec\[(?P<codec>\w+)\]",
     ["produce_{codec}", "idempotent_produce", "acks_all", "consume_assign"]),
    ("librdkafka", "test_confluent", r"test_non_idempotent_acks1_and_acks0$", ["acks_0", "acks_1"]),
    ("librdkafka", "test_confluent", r"test_offsets_for_times_and_watermarks$",
     ["list_offsets_earliest", "list_offsets_latest", "list_offsets_by_time"]),
    ("librdkafka", "test_confluent", r"test_message_too_large_rejected_topic_keeps_working$",
     ["message_too_large"]),
    ("librdkafka", "test_confluent", r"test_no_auto_create_when_disabled$", ["unknown_topic_no_autocreate"]),
    ("kafka-python", "test_kafka_python", r"test_round_trip\[(?P<idem>plain|idempotent)-(?P<codec>\w+)\]",
     ["produce_{codec}", "consume_assign", "acks_all"]),
    ("kafka-python", "test_kafka_python", r"test_round_trip\[idempotent-\w+\]", ["idempotent_produce"]),
    ("kafka-python", "test_kafka_python", r"test_metadata$", ["metadata_all_topics"]),
    ("kafka-python", "test_kafka_python", r"test_offsets_api$",
     ["list_offsets_earliest", "list_offsets_latest", "list_offsets_by_time"]),
    ("kafka-python", "test_kafka_python", r"test_admin_create_delete_topics$",
     ["admin_create_topic", "admin_delete_topic"]),
    ("kafka-python", "test_kafka_python", r"test_acks_zero_and_one\[1\]$", ["acks_1"]),
    ("kafka-python", "test_kafka_python", r"test_record_above_message_max_bytes_is_refused_by_the_broker$",
     ["message_too_large"]),
    ("kafka-python", "test_kafka_python", r"test_unknown_topic_is_not_created_when_auto_create_is_off$",
     ["unknown_topic_no_autocreate"]),
    # compat/groups: subscribe() consumers committing synchronously, checked against the data.
    ("librdkafka", "test_groups", r"test_three_members_every_record_once\[classic\]$",
     ["consume_group", "commit_fetch_offsets"]),
    ("kcat", "test_groups", r"test_kcat_balanced_consumer$", ["consume_group"]),
    ("kafka-python", "test_groups", r"test_kafka_python_group_consumer$",
     ["consume_group", "commit_fetch_offsets"]),
    # compat/transactions: confluent-kafka transactional producer, read_committed consumers.
    ("librdkafka", "test_transactions", r"test_committed_is_read_aborted_never$", ["transactions"]),
    ("kafka-python", "test_kafka_python", r"test_transactions_commit_read_abort_skipped$",
     ["transactions"]),
    ("librdkafka", "test_transactions", r"test_consume_transform_produce_commits_offsets_with_the_output$",
     ["transactions_offsets"]),
]

# Diagnoses of failures known to be the broker's, shown next to a cell only while it still FAILs.
_TRAILING = ("broker: librdkafka >= 2.3 sends all-topics Metadata v9+ with a 4-byte placeholder for "
             "the null topics array (librdkafka issue #5049): 3 extra zero bytes at the end. Kafka "
             "ignores trailing request bytes; gregor closes the connection "
             "(\"v13 request has 3 trailing bytes\"), so the client sees a transport failure.")
DIAGNOSES = {
    ("rdkafka", "metadata_all_topics"): _TRAILING,
    ("librdkafka", "metadata_all_topics"): _TRAILING,
    ("sarama", "list_offsets_by_time"):
        "broker: sarama 1.22 writes maxTimestamp = -1 in every batch it produces; Kafka recomputes "
        "a batch's maxTimestamp from its records on append (LogValidator) and gregor does not, so "
        "the time index has no entry and ListOffsets by timestamp answers -1.",
}

RANK = {"fail": 4, "pass": 3, "n/a": 1, "skip": 0}
CELL = {"pass": "pass", "fail": "**FAIL**", "n/a": "n/a", "skip": "skip"}


def normalize(status: str, note: str) -> "tuple[str, str]":
    """A suite's status as a matrix status. "needs-groups" (the broker did not advertise the
    consumer-group APIs) was once an expected gap; the broker advertises them now, so it is a
    failure, never a pass-like cell. A status this script does not know is a failure too."""
    if status == "needs-groups":
        return "fail", f"needs-groups: the broker did not advertise the group APIs. {note}".strip()
    if status not in RANK:
        return "fail", f"unknown status {status!r}. {note}".strip()
    return status, note

# the suites owned here, for --run (each writes its JSON even when some tests fail)
SUITES = [
    ("aiokafka", [str(REPO / ".venv/bin/python"), "-m", "pytest", "compat/aiokafka", "-q", "--timeout=300"]),
    ("kafkajs", ["npm", "--prefix", "compat/kafkajs", "test", "--silent"]),
    ("sarama", ["bash", "compat/go/run.sh"]),
    ("rskafka + rdkafka", ["bash", "compat/rust/run.sh"]),
]


def merge(cells: dict, client: str, feature: str, status: str, test: str, note: str) -> None:
    status, note = normalize(status, note)
    key = (client, feature)
    prev = cells.get(key)
    if prev is None or RANK[status] > RANK[prev["status"]]:
        cells[key] = {"status": status, "test": test, "note": note}


def load_json(cells: dict, versions: dict, sources: list, suites: list) -> None:
    for path in sorted(RESULTS.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            print(f"matrix: skipping {path}: {e}", file=sys.stderr)
            continue
        if "suite" in doc:
            for r in doc.get("checks", {}).values():
                r["status"], r["note"] = normalize(r.get("status", "skip"), r.get("note") or "")
            suites.append(doc)
            sources.append(f"`{path.relative_to(REPO)}` ({doc.get('generated', '?')})")
            continue
        client = doc.get("client")
        if client not in JSON_CLIENTS:
            continue
        versions[client] = doc.get("version", "?")
        sources.append(f"`{path.relative_to(REPO)}` ({doc.get('generated', '?')})")
        for feature, r in doc.get("features", {}).items():
            merge(cells, client, feature, r.get("status", "skip"), r.get("test", ""), r.get("note", ""))


def junit_status(case: ET.Element) -> "tuple[str, str]":
    for tag in ("failure", "error"):
        el = case.find(tag)
        if el is not None:
            return "fail", (el.get("message") or "").splitlines()[0][:200] if el.get("message") else ""
    el = case.find("skipped")
    if el is not None:
        msg = el.get("message") or ""
        if "needs-groups" in msg:
            return normalize("needs-groups", msg[:200])
        if "n/a" in msg:
            return "n/a", msg[:200]
        return "skip", msg[:200]
    return "pass", ""


def load_junit(cells: dict, sources: list) -> None:
    for path in sorted(RESULTS.glob("*.xml")):
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as e:
            print(f"matrix: skipping {path}: {e}", file=sys.stderr)
            continue
        stamp = root.get("timestamp") or next((s.get("timestamp") for s in root.iter("testsuite")
                                               if s.get("timestamp")), "?")
        sources.append(f"`{path.relative_to(REPO)}` ({stamp})")
        for case in root.iter("testcase"):
            module = (case.get("classname") or "").split(".")[-1]
            name = case.get("name") or ""
            status, note = junit_status(case)
            for client, mod, rx, features in JUNIT_MAP:
                if module != mod:
                    continue
                m = re.match(rx, name)
                if not m:
                    continue
                groups = m.groupdict()
                codec = groups.get("codec") or "none"
                for f in features:
                    merge(cells, client, f.format(codec=codec), status, name, note)


def junit_versions(versions: dict) -> None:
    py = REPO / ".venv" / "bin" / "python"
    if py.exists():
        code = ("import importlib.metadata as m\n"
                "for n in ('confluent-kafka','kafka-python'):\n"
                "    try: print(n, m.version(n))\n"
                "    except Exception: print(n, '?')\n"
                "import confluent_kafka as c; print('librdkafka', c.libversion()[0])\n")
        try:
            out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, timeout=30).stdout
            vals = dict(line.split(" ", 1) for line in out.splitlines() if " " in line)
            if "confluent-kafka" in vals:
                versions["librdkafka"] = f"{vals['confluent-kafka']} (librdkafka {vals.get('librdkafka', '?')})"
            if "kafka-python" in vals:
                versions["kafka-python"] = vals["kafka-python"]
        except (OSError, subprocess.SubprocessError):
            pass
    try:
        out = subprocess.run(["kcat", "-V"], capture_output=True, text=True, timeout=10)
        m = re.search(r"Version\s+(\S+).*?librdkafka\s+(?:version\s+)?([0-9][^\s,]*)", out.stdout + out.stderr, re.S)
        if m:
            versions["kcat"] = f"{m.group(1)} (librdkafka {m.group(2)})"
    except (OSError, subprocess.SubprocessError):
        pass


def render_suites(suites: list, footnotes: "list[str]") -> "list[str]":
    """The tools-and-frameworks table: one row per check of each suite."""
    if not suites:
        return []
    lines = ["", "## Kafka's tools and frameworks", "",
             "| Suite | Version | Check | Result |", "|---|---|---|---|"]
    for doc in sorted(suites, key=lambda d: d.get("title", d["suite"])):
        title = doc.get("title", doc["suite"])
        for name, r in doc.get("checks", {}).items():
            status = r.get("status", "skip")
            cell = CELL[status]
            note = r.get("note") or ""
            if status != "pass" and note:
                footnotes.append(f"{title} / `{name}` ({r.get('test', '')}): {note}")
                cell += f" [{len(footnotes)}]"
            lines.append(f"| {title} | {doc.get('version', '?')} | {r.get('label', name)} | {cell} |")
    return lines


def render(cells: dict, versions: dict, sources: list, suites: list) -> str:
    present = [c for c in CLIENTS if any(k[0] == c[0] for k in cells)]
    lines = [
        "# Client compatibility matrix",
        "",
        "Generated by `python3 scripts/matrix.py` from real runs of the compat suites against "
        "`target/debug/gregor`; do not edit by hand.",
        "",
        "Cells: **pass**; **FAIL** (the assertion failed: see the notes); **n/a** (the client has no "
        "such feature or cannot use it against a Kafka 4.x broker); **–** (no test covers it). A suite "
        "that found the consumer-group APIs not advertised (needs-groups) is a **FAIL**.",
        "Every pass checks the data that comes back (keys, values, headers, timestamps, offsets and "
        "per-partition order), not just the absence of errors.",
        "",
        "| Feature | " + " | ".join(label for _c, label in present) + " |",
        "|---|" + "---|" * len(present),
    ]
    footnotes: "list[str]" = []
    for feature, label in FEATURES:
        row = []
        for client, _label in present:
            r = cells.get((client, feature))
            if r is None:
                row.append("–")
                continue
            cell = CELL[r["status"]]
            note = r.get("note") or ""
            if r["status"] == "fail" and (client, feature) in DIAGNOSES:
                note = (note + " — " if note else "") + DIAGNOSES[(client, feature)]
            if r["status"] != "pass" and note:
                footnotes.append(f"{client} / `{feature}` ({r['test']}): {note}")
                cell += f" [{len(footnotes)}]"
            row.append(cell)
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    lines += ["", "Client versions:", ""]
    for client, label in present:
        lines.append(f"- {label}: {versions.get(client, '?')}")
    lines += render_suites(suites, footnotes)
    if footnotes:
        lines += ["", "Notes:", ""]
        lines += [f"{i}. {n}" for i, n in enumerate(footnotes, 1)]
    lines += ["", "Sources: " + ", ".join(sources) + ".", ""]
    return "\n".join(lines)


def run_suites() -> None:
    for name, cmd in SUITES:
        print(f"==> matrix: running {name}: {' '.join(cmd)}", flush=True)
        try:
            rc = subprocess.run(cmd, cwd=REPO, timeout=1200).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        print(f"==> matrix: {name} finished: {rc}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", action="store_true", help="run the aiokafka/kafkajs/Go/Rust suites first")
    ap.add_argument("--stdout", action="store_true", help="print the table instead of writing MATRIX.md")
    args = ap.parse_args()
    if args.run:
        run_suites()
    cells: dict = {}
    versions: dict = {}
    sources: list = []
    suites: list = []
    load_json(cells, versions, sources, suites)
    load_junit(cells, sources)
    junit_versions(versions)
    if not cells and not suites:
        print(f"matrix: no results under {RESULTS}", file=sys.stderr)
        return 2
    text = render(cells, versions, sources, suites)
    if args.stdout:
        print(text)
    else:
        OUT.write_text(text)
        print(f"matrix: wrote {OUT.relative_to(REPO)} ({_dt.datetime.now(_dt.timezone.utc):%Y-%m-%dT%H:%M:%SZ})")
    failed = any(r["status"] == "fail" for r in cells.values()) or any(
        r.get("status") == "fail" for doc in suites for r in doc.get("checks", {}).values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
