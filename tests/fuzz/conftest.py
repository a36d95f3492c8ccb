"""Fuzz fixtures: one real node per test with media, limits opened wide enough that the fuzz
itself is not throttled (the limits have their own tests), and the count of distinct inputs."""

from __future__ import annotations

from typing import AsyncIterator

import pytest

from tests.fuzz.support import Checker, report
from tests.support.harness import Node, start_node

WIDE_LIMITS = {
    "ws_rate_per_s": 10_000.0,
    "ws_burst": 10_000,
    "failed_logins_per_address": 100_000,
    "whip_sessions_per_token": 1000,
    "whep_sessions_per_token": 1000,
    "whip_sessions_per_meeting": 1000,
    "whep_sessions_per_meeting": 1000,
}
REPORT = "fuzz_inputs.json"


@pytest.fixture
async def fuzz_node(tmp_path) -> AsyncIterator[Node]:
    node = await start_node(tmp_path / "data", media="local", limits=WIDE_LIMITS)
    yield node
    await node.stop()


@pytest.fixture
def checker(fuzz_node, caplog) -> Checker:
    return Checker(fuzz_node, caplog)


@pytest.fixture(scope="session", autouse=True)
def _fuzz_report(tmp_path_factory, request):
    yield
    path = tmp_path_factory.getbasetemp() / REPORT
    counts = report(path)
    request.config.stash[_REPORT_KEY] = (path, counts)


_REPORT_KEY = pytest.StashKey[tuple]()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _REPORT_KEY in config.stash:
        path, counts = config.stash[_REPORT_KEY]
        parts = ", ".join(f"{k} {v}" for k, v in counts.items() if k != "total")
        terminalreporter.write_line(f"fuzz: {counts['total']} distinct inputs ({parts}); written to {path}")
