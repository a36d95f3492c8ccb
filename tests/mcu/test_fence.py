"""mcu.fence: the installed aiortc, aioice and pylibsrtp have every private hook, and a missing
one stops the node at start with a message that names the library, version, hook and range."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from aiortc import RTCDtlsTransport

from mcu import fence
from mcu.node import LocalMediaNode

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_installed_libraries_have_every_hook():
    fence.check()


def test_a_missing_hook_names_library_version_hook_and_tested_range(monkeypatch):
    monkeypatch.delattr(RTCDtlsTransport, "_handle_rtp_data")
    with pytest.raises(fence.FenceError) as failure:
        fence.check()
    message = str(failure.value)
    assert f"aiortc {version('aiortc')} (tested {fence.TESTED['aiortc']})" in message
    assert "RTCDtlsTransport._handle_rtp_data(data, arrival_time_ms)" in message
    assert "aioice" not in message and "pylibsrtp" not in message  # only what is missing
    assert "mcu/fence.py" in message


def test_a_missing_binding_is_reported_not_raised_at_import(monkeypatch):
    monkeypatch.setattr(fence, "_ffi", None)
    with pytest.raises(fence.FenceError, match=rf"pylibsrtp {re.escape(version('pylibsrtp'))} .*srtp_protect"):
        fence.check()


async def test_the_media_node_does_not_start_without_its_hooks(monkeypatch):
    monkeypatch.delattr(RTCDtlsTransport, "_handle_rtcp_data")
    with pytest.raises(fence.FenceError, match="_handle_rtcp_data"):
        await LocalMediaNode(ice_host=None).start()


def test_pyproject_pins_the_tested_ranges():
    declared = {}
    for requirement in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]:
        name, _, spec = re.match(r"([A-Za-z0-9_.-]+)(\S*)", requirement).group(1, 0, 2)
        declared[name] = spec
    assert {name: declared.get(name) for name in fence.TESTED} == fence.TESTED
    for name, tested in fence.TESTED.items():
        assert fence.within(version(name), tested), f"installed {name} {version(name)} is not in {tested}"


def test_within_reads_lower_and_upper_bounds():
    assert fence.within("1.16.0", ">=1.9,<1.17")
    assert not fence.within("1.17.0", ">=1.9,<1.17")
    assert not fence.within("1.8.2", ">=1.9,<1.17")
    assert fence.within("1.0.0rc1", ">=0.10,<1.1")
