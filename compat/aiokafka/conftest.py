"""aiokafka suite plumbing: `@pytest.mark.feature(...)` names the matrix features a test
covers; at the end of the session the outcome of each feature is written to
compat/results/aiokafka.json (read by scripts/matrix.py).

A skip whose reason starts with "n/a" is recorded as that status. A skip whose reason starts with
"needs-groups" (the broker did not advertise the consumer-group APIs) is turned into a failure,
both in pytest's own report and in the JSON: the broker advertises them, so finding them missing
is a bug, not a pass-like gap.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
_OUTCOMES: "dict[str, dict]" = {}
_RANK = {"fail": 4, "pass": 3, "n/a": 1, "skip": 0}


def pytest_configure(config):
    config.addinivalue_line("markers", "feature(*names): matrix features this test covers")


def _skip_reason(rep) -> str:
    reason = ""
    if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3:
        reason = str(rep.longrepr[2])
    return reason.removeprefix("Skipped: ")


def _status(rep) -> "tuple[str, str]":
    if rep.passed:
        return "pass", ""
    if rep.failed:
        return "fail", (rep.longreprtext or "").strip().splitlines()[-1][:300] if rep.longreprtext else ""
    reason = _skip_reason(rep)
    if reason.startswith("n/a"):
        return "n/a", reason
    return "skip", reason


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.skipped and _skip_reason(rep).startswith("needs-groups"):
        rep.outcome = "failed"
        rep.longrepr = f"{_skip_reason(rep)} (the broker advertises the group APIs: this is a failure)"
    marker = item.get_closest_marker("feature")
    if marker is None:
        return rep
    # record the call phase, or a setup/teardown failure / setup skip
    if rep.when == "call" or (rep.when in ("setup", "teardown") and not rep.passed):
        status, note = _status(rep)
        for name in marker.args:
            prev = _OUTCOMES.get(name)
            # a feature covered by several tests is a fail if any failed, pass if any passed
            if prev is None or _RANK[status] > _RANK[prev["status"]]:
                _OUTCOMES[name] = {"status": status, "test": item.name, "note": note}
    return rep


def pytest_sessionfinish(session, exitstatus):
    if not _OUTCOMES:
        return
    try:
        import aiokafka
        version = aiokafka.__version__
    except Exception:  # pragma: no cover
        version = "?"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "aiokafka.json"
    doc = {"client": "aiokafka", "version": version,
           "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "features": dict(sorted(_OUTCOMES.items()))}
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp, out)
