"""Shared pytest fixtures for the real-client compatibility suites.

Fixtures
--------
broker          a started gregor on a free 127.0.0.1 port with a fresh data dir.
                Extra command-line flags come from `@pytest.mark.broker_args(...)`.
broker_factory  call it (optionally with extra args) to start more brokers.

Every broker is SIGKILLed at teardown.  When a test fails, the tail of each of
its brokers' stderr is attached to the failure report.
"""

from __future__ import annotations

import pytest

from broker import Broker

_BROKERS = pytest.StashKey[list]()


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "broker_args(*args): extra command-line flags for the `broker` fixture")


@pytest.fixture
def broker_factory(request, tmp_path_factory):
    brokers: "list[Broker]" = []
    request.node.stash[_BROKERS] = brokers

    def make(*extra_args: str, start: bool = True) -> Broker:
        workdir = tmp_path_factory.mktemp(f"gregor{len(brokers)}")
        b = Broker(workdir, extra_args=list(extra_args), name=f"broker{len(brokers)}")
        brokers.append(b)
        if start:
            b.start()
        return b

    yield make
    for b in brokers:
        b.close()


@pytest.fixture
def broker(request, broker_factory) -> Broker:
    marker = request.node.get_closest_marker("broker_args")
    args = [str(a) for a in marker.args] if marker else []
    return broker_factory(*args)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    if rep.failed and rep.when in ("setup", "call", "teardown"):
        for b in item.stash.get(_BROKERS, []):
            rep.sections.append(
                (f"gregor stderr tail ({b.name} {b.bootstrap}, data {b.data_dir})",
                 b.stderr_tail(80)))
    return rep
