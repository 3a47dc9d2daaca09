"""Fixtures of the multi-process cluster suite (compat/cluster/).

Fixtures
--------
cluster_factory  call it (size=3, extra args) to get a started `cluster.Cluster` of real gregor
                 processes in this test's tmp dir; every node is SIGKILLed at teardown.
cluster          a started 3-node cluster (combined nodes, broker.session.timeout.ms=2000).
timings          record(name, seconds): measured durations, printed at the end of the run in a
                 "cluster timings" section (they go into the issue note).

When a test fails, the stderr tail of every node of its clusters is attached to the report.
"""

from __future__ import annotations

import pytest

from cluster import Cluster

_CLUSTERS = pytest.StashKey[list]()
_TIMINGS: "list[tuple[str, str, float]]" = []


@pytest.fixture
def cluster_factory(request, tmp_path_factory):
    clusters: "list[Cluster]" = []
    request.node.stash[_CLUSTERS] = clusters

    def make(size: int = 3, *extra_args: str, start: bool = True) -> Cluster:
        c = Cluster(tmp_path_factory.mktemp(f"cluster{len(clusters)}"), size=size,
                    extra_args=list(extra_args))
        clusters.append(c)
        if start:
            c.start()
        return c

    yield make
    for c in clusters:
        c.close()


@pytest.fixture
def cluster(cluster_factory, timings) -> Cluster:
    c = cluster_factory(3)
    timings("cluster start-up, first spawn -> all 3 nodes ready", c.startup_s)
    return c


@pytest.fixture
def timings(request):
    def record(name: str, seconds: float) -> None:
        _TIMINGS.append((request.node.name, name, seconds))
    return record


def pytest_terminal_summary(terminalreporter):
    if not _TIMINGS:
        return
    terminalreporter.section("cluster timings")
    for test, name, s in _TIMINGS:
        terminalreporter.write_line(f"{s * 1000:9.0f} ms  {name}  [{test}]")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed and rep.when in ("setup", "call", "teardown"):
        for c in item.stash.get(_CLUSTERS, []):
            for i, n in c.nodes.items():
                rep.sections.append(
                    (f"gregor node {i} stderr tail ({n.bootstrap}, data {n.data_dir})",
                     n.stderr_tail(60)))
    return rep
