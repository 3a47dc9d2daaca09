"""Helpers shared by the Connect tests: numbered lines, waiting on connector states over REST,
reading FileStreamSink output."""

from __future__ import annotations

import json
import re
from pathlib import Path

from connect import jvm
from connect.kafkautil import wait_for

LINE_RE = re.compile(r"^line-(\d{6})$")


def line(i: int) -> str:
    return f"line-{i:06d}"


def wait_running(worker: jvm.ConnectWorker, name: str, timeout: float = 90.0) -> dict:
    def ok():
        worker.check_alive()
        try:
            st = worker.rest("GET", f"/connectors/{name}/status")
        except (jvm.RestError, OSError):
            return None
        tasks = st.get("tasks", [])
        if st["connector"]["state"] == "RUNNING" and tasks and all(t["state"] == "RUNNING" for t in tasks):
            return st
        failed = [t for t in tasks if t["state"] == "FAILED"]
        if st["connector"]["state"] == "FAILED" or failed:
            raise AssertionError(f"{name} FAILED: {json.dumps(st)[:1500]}")
        return None
    return wait_for(ok, f"{name} connector and tasks RUNNING", timeout=timeout,
                    on_fail=lambda: "\n" + worker.log_tail(40))


def wait_running_herder(worker: jvm.ConnectWorker, timeout: float = 60.0) -> None:
    """GET /connectors answers 200 once the herder has joined the group and read the configs."""
    def ok():
        worker.check_alive()
        try:
            return worker.rest("GET", "/connectors") is not None
        except (jvm.RestError, OSError):
            return False
    wait_for(ok, "the herder to serve /connectors", timeout=timeout, on_fail=lambda: "\n" + worker.log_tail(30))


def sink_lines(path: Path) -> "tuple[list[int], int]":
    """Line numbers in the sink file, in file order, and the count of torn lines.

    A SIGKILL can leave a partly written line (the sink's PrintStream buffer flushed mid-line);
    the task then appends after it.  Every whole `line-NNNNNN` in such a torn line still counts."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return [], 0
    nums, torn = [], 0
    for ln in text.splitlines():
        m = LINE_RE.match(ln)
        if m:
            nums.append(int(m.group(1)))
        elif ln:
            torn += 1
            nums.extend(int(x) for x in re.findall(r"line-(\d{6})(?=line-|$)", ln))
    return nums, torn


def wait_state(worker: jvm.ConnectWorker, name: str, state: str, timeout: float = 60.0) -> dict:
    def ok():
        st = worker.rest("GET", f"/connectors/{name}/status")
        if st["connector"]["state"] == state and (state != "STOPPED" or not st["tasks"]):
            return st
        return None
    return wait_for(ok, f"{name} {state}", timeout=timeout, on_fail=lambda: "\n" + worker.log_tail(30))
