"""mcu.fence: the installed aiortc, aioice and pylibsrtp have every private hook, and a missing
one stops the node at start with a message that names the library, version, hook and range."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from aiortc import RTCCertificate, RTCDtlsTransport, RTCIceGatherer, RTCIceTransport
from aiortc.rtcdtlstransport import SRTP_PROFILES
from OpenSSL import SSL

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


def test_internal_modules_an_upgrade_moved_are_reported_not_raised_at_import(monkeypatch):
    for module in INTERNAL_MODULES:
        monkeypatch.setitem(sys.modules, module, None)  # importing it now raises ImportError
    spec = importlib.util.spec_from_file_location("fence_after_an_upgrade", fence.__file__)
    moved = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(moved)  # a fresh copy of mcu.fence: its import does not fail
    with pytest.raises(moved.FenceError) as failure:
        moved.check()
    message = str(failure.value)
    assert f"aiortc {version('aiortc')} (tested {fence.TESTED['aiortc']})" in message
    assert f"aioice {version('aioice')} (tested {fence.TESTED['aioice']})" in message
    for hook in (
        "clock.current_ntp_time()",
        "rtcrtpreceiver.NackGenerator.missing",
        "mdns.MDnsProtocol.datagram_received(data, addr)",
        "turn.UDP_SOCKET_BUFFER_SIZE",
        "_binding.lib.srtp_protect",
    ):
        assert hook in message


def test_sender_reports_read_aiortcs_ntp_clock():
    from aiortc.clock import current_ntp_time

    before = current_ntp_time()
    assert before <= fence.ntp_time() <= current_ntp_time()


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


def suites(certificate: RTCCertificate) -> list[str]:
    """The DTLS cipher suites a transport with this certificate offers (and accepts)."""
    return SSL.Connection(certificate._create_ssl_context(SRTP_PROFILES)).get_cipher_list()


def test_a_transport_offers_the_rsa_suites_beside_aiortcs_ecdsa_ones():
    certificate, other = RTCCertificate.generateCertificate(), RTCCertificate.generateCertificate()
    dtls = RTCDtlsTransport(RTCIceTransport(RTCIceGatherer()), [certificate])
    # aiortc as installed offers only ECDHE-ECDSA: a server with an RSA certificate finds no shared cipher
    assert not [suite for suite in suites(certificate) if suite.startswith("ECDHE-RSA")]
    fence.offer_rsa_suites(dtls)
    fence.offer_rsa_suites(dtls)  # again (another transport of the same connection): no change
    widened = suites(certificate)
    for key in ("ECDSA", "RSA"):
        assert f"ECDHE-{key}-AES128-GCM-SHA256" in widened and f"ECDHE-{key}-AES128-SHA" in widened
    assert widened.index("ECDHE-ECDSA-AES128-GCM-SHA256") < widened.index("ECDHE-RSA-AES128-SHA")
    assert not [suite for suite in suites(other) if suite.startswith("ECDHE-RSA")]  # only this transport's


def test_within_reads_lower_and_upper_bounds():
    assert fence.within("1.16.0", ">=1.9,<1.17")
    assert not fence.within("1.17.0", ">=1.9,<1.17")
    assert not fence.within("1.8.2", ">=1.9,<1.17")
    assert fence.within("1.0.0rc1", ">=0.10,<1.1")


# the private names the fence reaches; nowhere else in the product may read or write them
PRIVATE = {
    "_handle_rtp_data",
    "_handle_rtcp_data",
    "_tx_srtp",
    "_connection",
    "_nominated",
    "_ssrc",
    "_rtx_ssrc",
    "_stream_id",
    "_send_rtcp_nack",
    "_queue",
    "_buffer",
    "_cdata",
    "_srtp",
    *fence._SENDER_REPORT,
    fence._NACK_GENERATOR,
    fence._RTX_SSRC,
    fence._ACTIVE_SSRC,
    fence._LOCAL_CERTIFICATE,
    fence._SSL_CONTEXT,
}
LIBRARIES = ("aiortc", "aioice", "pylibsrtp")
# internal modules of those libraries that only the fence imports (guarded)
INTERNAL_MODULES = ("aiortc.clock", "aiortc.rtcrtpreceiver", "aioice.mdns", "aioice.turn", "pylibsrtp._binding")


def _private_uses(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in PRIVATE
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{path}:{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.Constant) and node.value in PRIVATE:  # getattr/setattr by name
            found.append(f"{path}:{node.lineno}: {node.value!r}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:  # ``from aiortc import clock`` imports aiortc.clock
                modules = [node.module or ""] + [f"{node.module}.{alias.name}" for alias in node.names]
            found += [
                f"{path}:{node.lineno}: import {m}"
                for m in modules
                if m in INTERNAL_MODULES
                or (m.split(".")[0] in LIBRARIES and any(part.startswith("_") for part in m.split(".")))
            ]
    return found


def test_no_other_module_reaches_the_private_hooks():
    root = PYPROJECT.parent
    sources = [p for package in ("mcu", "signaling", "endpoints") for p in (root / package).rglob("*.py")]
    offenders = [use for path in sources if path != root / "mcu" / "fence.py" for use in _private_uses(path)]
    assert not offenders, "private internals reached outside mcu/fence.py:\n" + "\n".join(offenders)


async def test_negotiated_codecs_replace_those_aiortc_computed():
    from aiortc import RTCPeerConnection, RTCRtpCodecParameters

    pc = RTCPeerConnection()  # no socket until a description is set
    transceiver = pc.addTransceiver("video")
    h264 = RTCRtpCodecParameters("video/H264", 90000, payloadType=120, parameters={"profile-level-id": "4d001f"})
    fence.set_negotiated_codecs(transceiver, [h264])
    assert transceiver._codecs == [h264]
    await pc.close()
