"""Kafka CLI tools suite plumbing.

Each test runs Apache Kafka 4.4.0's own tools (compat/kafka_tools/bin/kafka-*, the same main
classes as Kafka's bin/*.sh, jars from Maven Central) against a real gregor process, one broker
per test module, and checks what the tools print.

`@pytest.mark.check(name, label)` names the row(s) of the tools table a test covers; at the end of
the session every check's outcome goes to compat/results/kafka-tools.json (read by
scripts/matrix.py). A skip whose reason starts with "n/a" is recorded as n/a (a feature Gregor
does not have, where the tool fails as it would against a Kafka broker without it); an xfail
(open broker bug) as fail with the bug as note.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SUITE_DIR = Path(__file__).resolve().parent
REPO_ROOT = SUITE_DIR.parent.parent
sys.path.insert(0, str(REPO_ROOT / "compat"))

from broker import Broker  # noqa: E402

BIN = SUITE_DIR / "bin"
RESULTS_DIR = REPO_ROOT / "compat" / "results"
KAFKA_VERSION = "4.4.0"
# A tool call is a JVM start (~1-2 s); C1 only and the serial GC make short-lived tools start
# faster. The variable is the real kafka-run-class.sh's; the perf tests keep its defaults.
FAST_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -Djava.awt.headless=true"

_CHECKS: "dict[str, dict]" = {}
# Row order in the matrix: as a user meets the tools.
_ORDER = ["topics_", "console_", "groups_", "configs_topics", "configs_brokers", "configs_groups",
          "configs_", "get_offsets", "delete_records", "log_dirs", "transactions_",
          "broker_api_versions", "features_", "producer_perf", "consumer_perf"]


def _order(name: str) -> "tuple[int, str]":
    return next((i for i, p in enumerate(_ORDER) if name.startswith(p)), len(_ORDER)), name
_RANK = {"fail": 4, "pass": 3, "n/a": 2, "skip": 1}


def pytest_configure(config):
    config.addinivalue_line("markers", "check(name, label): a row of the Kafka CLI tools table")


# --------------------------------------------------------------------------- tool runner

@dataclass
class Result:
    args: "list[str]"
    rc: int
    out: str
    err: str

    def lines(self) -> "list[str]":
        return [ln for ln in self.out.splitlines() if ln.strip()]

    def __str__(self) -> str:
        return (f"$ {' '.join(self.args)}\n-> exit {self.rc}\n--- stdout ---\n{self.out}"
                f"\n--- stderr ---\n{self.err}")


class Tools:
    """Runs bin/kafka-* against one broker, as a user would type them."""

    def __init__(self, broker: Broker, workdir: Path):
        self.broker = broker
        self.workdir = workdir

    @property
    def bs(self) -> "list[str]":
        return ["--bootstrap-server", self.broker.bootstrap]

    def run(self, tool: str, *args: str, input: "str | None" = None, timeout: float = 90,
            check: bool = True, fast: bool = True, bootstrap: bool = True) -> Result:
        argv = [str(BIN / tool), *(self.bs if bootstrap else []), *args]
        env = dict(os.environ)
        env.pop("GREGOR_BIN", None)
        if fast:
            env.setdefault("KAFKA_JVM_PERFORMANCE_OPTS", FAST_JVM)
        try:
            p = subprocess.run(argv, input=input if input is not None else "",
                               capture_output=True, text=True, timeout=timeout, env=env,
                               cwd=str(self.workdir))
        except subprocess.TimeoutExpired as e:
            raise AssertionError(
                f"{tool} did not finish within {timeout}s: {' '.join(argv)}\n"
                f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}\n--- broker ---\n"
                f"{self.broker.stderr_tail()}") from None
        res = Result([tool, *argv[1:]], p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            raise AssertionError(f"{res}\n--- broker stderr tail ---\n{self.broker.stderr_tail(40)}")
        return res

    # small helpers used by several modules -------------------------------------------
    def create_topic(self, name: str, partitions: int = 1, *configs: str) -> None:
        args = ["--create", "--topic", name, "--partitions", str(partitions)]
        for c in configs:
            args += ["--config", c]
        r = self.run("kafka-topics", *args)
        assert f"Created topic {name}." in r.out, str(r)

    def end_offsets(self, topic: str, time_spec: str = "-1") -> "dict[int, int]":
        r = self.run("kafka-get-offsets", "--topic", topic, "--time", time_spec)
        return parse_offsets(r.out, topic)


def parse_offsets(out: str, topic: str) -> "dict[int, int]":
    """`topic:partition:offset` lines of kafka-get-offsets."""
    got = {}
    for ln in out.splitlines():
        m = re.fullmatch(rf"{re.escape(topic)}:(\d+):(-?\d*)", ln.strip())
        if m:
            got[int(m.group(1))] = int(m.group(2)) if m.group(2) else None
    return got


def parse_table(out: str, first_col: str) -> "list[dict[str, str]]":
    """Rows of a whitespace-aligned table whose header starts with `first_col` (consumer groups)."""
    rows, header = [], None
    for ln in out.splitlines():
        cells = ln.split()
        if not cells:
            continue
        if cells[0] == first_col:
            header = cells
            continue
        if header and len(cells) == len(header):
            rows.append(dict(zip(header, cells)))
    return rows


def parse_tab_table(out: str) -> "list[dict[str, str]]":
    """Rows of a tab-separated table with a header line (kafka-transactions)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    if not lines:
        return []
    header = [c.strip() for c in lines[0].split("\t") if c.strip()]
    rows = []
    for ln in lines[1:]:
        cells = [c.strip() for c in ln.split("\t")]
        rows.append(dict(zip(header, cells)))
    return rows


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def broker(tmp_path_factory, request):
    b = Broker(tmp_path_factory.mktemp(f"gregor-{request.module.__name__.split('.')[-1]}"))
    b.start()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def tools(broker, tmp_path_factory):
    if not (SUITE_DIR / "build" / "classpath.txt").is_file():
        pytest.fail("compat/kafka_tools/build/classpath.txt missing: run compat/kafka_tools/install.sh")
    return Tools(broker, tmp_path_factory.mktemp("tools"))


# --------------------------------------------------------------------------- results

def _status(rep) -> "tuple[str, str]":
    if hasattr(rep, "wasxfail"):
        if rep.skipped:  # xfail: an open broker bug
            return "fail", f"expected failure (open bug): {rep.wasxfail}"[:400]
        return "pass", ""
    if rep.passed:
        return "pass", ""
    if rep.failed:
        text = (rep.longreprtext or "").strip().splitlines()
        note = next((ln for ln in text if ln.startswith("E ")), text[-1] if text else "")
        return "fail", note[:400]
    reason = ""
    if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3:
        reason = str(rep.longrepr[2])
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith("n/a"):
        return "n/a", reason.removeprefix("n/a:").strip()
    return "skip", reason


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    markers = list(item.iter_markers("check"))
    if not markers:
        return rep
    if rep.when == "call" or (rep.when in ("setup", "teardown") and not rep.passed):
        status, note = _status(rep)
        for m in markers:
            name, label = m.args
            prev = _CHECKS.get(name)
            if prev is None or _RANK[status] > _RANK[prev["status"]]:
                entry = {"status": status, "test": item.name, "label": label}
                if note:
                    entry["note"] = note
                _CHECKS[name] = entry
    return rep


def pytest_sessionfinish(session, exitstatus):
    if not _CHECKS:
        return
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "kafka-tools.json"
    doc = {"suite": "kafka-tools", "title": "Kafka CLI tools", "version": KAFKA_VERSION,
           "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "checks": dict(sorted(_CHECKS.items(), key=lambda kv: _order(kv[0])))}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, out)
