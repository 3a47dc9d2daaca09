"""Fixtures of the fault-injection suite (compat/fault/).

fault_summaries  a list each run appends its summary to; at the end of the session a "fault
                 runs" section prints every run's seed, verdict, counts and liveness figures
                 (time from a leader kill to the first produce on the new leader, heal to full
                 ISR), the figures issue 12's note asks for.
"""

from __future__ import annotations

import pytest

_SUMMARIES: "list[dict]" = []


@pytest.fixture
def fault_summaries() -> "list[dict]":
    return _SUMMARIES


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}s"


def pytest_terminal_summary(terminalreporter):
    if not _SUMMARIES:
        return
    w = terminalreporter.write_line
    terminalreporter.section("fault runs")
    for s in _SUMMARIES:
        bad = {k: v for k, v in s["counts"].items() if v}
        w(f"{s['mode']} seed={s['seed']} {'PASS' if s['passed'] else 'FAIL'} "
          f"{bad or 'all counts 0'} ops={s['operations']}")
        live = s["liveness"]
        fo = [_fmt(x["kill_to_first_produce_s"]) for x in live["leader_kill_to_first_produce"]]
        isr = [_fmt(x["heal_to_full_isr_s"]) for x in live["heal_to_full_isr"]]
        w(f"    leader kill -> first produce on new leader: {fo or 'no leader kill'}")
        w(f"    heal -> full ISR per fault: {isr}; final heal -> full ISR: "
          f"{_fmt(live['final_heal_to_full_isr_s'])}")
        w(f"    kept: {s['kept']}")
