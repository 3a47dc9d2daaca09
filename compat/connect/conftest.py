"""Connect / MirrorMaker 2 suite plumbing.

`@pytest.mark.check(suite, name, label)` names the row of the tools-and-frameworks table a test
covers (suite "connect" -> compat/results/connect.json, "mirrormaker2" ->
compat/results/mirrormaker2.json, both read by scripts/matrix.py).  A test may add a note to its
row (shown for non-pass rows, and kept in the JSON for pass rows too) with the `note` fixture.
When a test fails, the tails of the JVM logs of the workers it touched are attached to the report.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from connect.jvm import KAFKA_VERSION, live_jvms

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
SUITES = {"connect": "Kafka Connect", "mirrormaker2": "MirrorMaker 2"}
_RANK = {"fail": 4, "pass": 3, "n/a": 1, "skip": 0}
_CHECKS: "dict[str, dict[str, dict]]" = {}
_ORDER: "dict[str, list[str]]" = {}
_LABELS: "dict[tuple[str, str], str]" = {}
_NOTES = pytest.StashKey[list]()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "check(suite, name, label): the results-table row (suite, check) this test covers")


def pytest_collection_modifyitems(session, config, items):
    # rows appear in the order of the tests, even if a later test covers the same check
    for item in items:
        m = item.get_closest_marker("check")
        if m is not None:
            suite, name = m.args[0], m.args[1]
            order = _ORDER.setdefault(suite, [])
            if name not in order:
                order.append(name)
            label = m.kwargs.get("label") or (m.args[2] if len(m.args) > 2 else "")
            if label:
                _LABELS.setdefault((suite, name), label)


@pytest.fixture
def note(request):
    """note("text"): a remark for this test's row in the results JSON."""
    notes: "list[str]" = []
    request.node.stash[_NOTES] = notes
    return notes.append


def _status(rep) -> "tuple[str, str]":
    if hasattr(rep, "wasxfail") and not rep.passed:
        # a known, reported broker bug (xfail): the matrix shows it as a failure
        return "fail", f"expected failure: {rep.wasxfail}"[:300]
    if rep.passed:
        return "pass", ""
    if rep.failed:
        text = (rep.longreprtext or "").strip()
        lines = [ln for ln in text.splitlines() if ln.startswith("E ")]
        msg = (lines[0][1:].strip() if lines else (text.splitlines() or [""])[-1])
        return "fail", msg[:300]
    reason = ""
    if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3:
        reason = str(rep.longrepr[2])
    reason = reason.removeprefix("Skipped: ")
    if reason.startswith("n/a"):
        return "n/a", reason
    return "skip", reason


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed:
        for jvm in live_jvms(item):
            rep.sections.append((f"{jvm.name} log tail ({jvm.log_path})", jvm.log_tail(60)))
    marker = item.get_closest_marker("check")
    if marker is None:
        return rep
    if rep.when == "call" or (rep.when in ("setup", "teardown") and not rep.passed):
        suite, name = marker.args[0], marker.args[1]
        label = _LABELS.get((suite, name), name)
        status, note = _status(rep)
        extra = "; ".join(item.stash.get(_NOTES, []))
        if extra:
            note = f"{note}; {extra}" if note else extra
        prev = _CHECKS.setdefault(suite, {}).get(name)
        if prev is None or _RANK[status] > _RANK[prev["status"]]:
            _CHECKS[suite][name] = {"status": status, "test": item.name, "note": note, "label": label}
    return rep


def pytest_sessionfinish(session, exitstatus):
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    for suite, checks in _CHECKS.items():
        order = _ORDER.get(suite, [])
        ordered = {k: checks[k] for k in order if k in checks}
        doc = {"suite": suite, "title": SUITES.get(suite, suite), "version": KAFKA_VERSION,
               "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "checks": ordered}
        out = RESULTS_DIR / f"{suite}.json"
        tmp = out.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, out)
