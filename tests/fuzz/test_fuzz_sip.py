"""Fuzz the SIP stack's listener (#14): anyone who can reach the SIP port can send it anything.

Inputs, seeded and bounded (tests/fuzz/support.draw): well-formed requests a room system sends
(INVITE with SDP, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REGISTER) with 1-4 of their lines dropped,
doubled, cut, swapped for junk or hostile text, CRLF turned into LF, Content-Length changed, and raw
bytes; sent over UDP (one datagram each) and over TCP (one connection each) to a real SipStack on
127.0.0.1 whose on_invite answers some INVITEs and rejects the rest. For each one:

* the listener raises nothing (no "error" count, no ERROR log record);
* whatever comes back parses with the stack's own strict parser as a response (a 400 may
  lack or copy the request's own bad From, To or Call-ID);
* every 40 inputs, and after the last, it still answers OPTIONS over UDP and TCP.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import strategies as st

from signaling.sip.stack import SipStack
from signaling.sip.wire import BadMessage, parse
from signaling.sip_settings import SipSettings
from tests.fuzz.strategies import nasty_text
from tests.fuzz.support import Failures, draw, record
from tests.signaling.sip.conftest import GENEROUS, audio_sdp
from tests.signaling.sip.raw import RawPeer, request
from tests.signaling.sip.test_stack_wire import options_ok

pytestmark = pytest.mark.integration
UDP_INPUTS, TCP_INPUTS = 360, 90
COPIED_FAULTS = {f"{w} {h}" for w in ("Missing", "Bad") for h in ("From", "To", "Call-ID")}
METHODS = ["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "UPDATE", "REGISTER", "PRACK"]
JUNK_LINES = [
    "Content-Length: -1",
    "Content-Length: 99999999",
    "Content-Length: 1e3",
    "l: 5",
    "CSeq: 4294967296 INVITE",
    "CSeq: INVITE",
    "Via: SIP/2.0/UDP",
    "Via: SIP/3.0/UDP 127.0.0.1;branch=",
    "To: <sip:>",
    'From: "" <tel:>',
    "Call-ID: ",
    "Max-Forwards: -5",
    "Session-Expires: 0",
    "Session-Expires: 1;refresher=both",
    "Require: 100rel, foo",
    "RAck: x y z",
    "Authorization: Digest username=",
    'Authorization: Digest realm="\\',
    "Contact: *",
    "Content-Type: application/sdp; charset=\x00",
    "Record-Route: <sip:a;lr>, <",
    " folded continuation",
    "\t",
    ":",
    "NoColonHere",
    "X-" + "a" * 5000,
    "Via: SIP/2.0/TCP [::1]:5060;branch=z9hG4bK;rport=abc",
]


@st.composite
def sip_inputs(draw_: st.DrawFn, transport: str) -> bytes:
    kind = draw_(st.sampled_from(["mutated", "mutated", "mutated", "bytes"]))
    if kind == "bytes":
        return draw_(st.binary(min_size=1, max_size=600))
    method = draw_(st.sampled_from(METHODS))
    peer = RawPeer()
    peer.name, peer.port = transport, 40000
    body = audio_sdp() if method in ("INVITE", "UPDATE") and draw_(st.booleans()) else ""
    tag = draw_(st.sampled_from(["", "", "nosuch"]))
    lines = request(
        method, ("127.0.0.1", 5060), peer, call_id=f"fz{draw_(st.integers(0, 3))}", to_tag=tag, body=body
    ).split("\r\n")
    for _ in range(draw_(st.integers(1, 4))):
        i = draw_(st.integers(0, len(lines) - 1))
        op = draw_(st.sampled_from(["drop", "double", "cut", "junk", "nasty", "length"]))
        if op == "drop":
            del lines[i]
        elif op == "double":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: draw_(st.integers(0, max(0, len(lines[i]) - 1)))]
        elif op == "junk":
            lines.insert(i, draw_(st.sampled_from(JUNK_LINES)))
        elif op == "nasty":
            name = lines[i].split(":")[0] if ":" in lines[i] else "X-Nasty"
            lines[i] = f"{name}: {draw_(nasty_text())}"
        else:
            lines = [ln for ln in lines if not ln.lower().startswith("content-length")]
            lines.insert(1, f"Content-Length: {draw_(st.integers(0, 2000))}")
        if not lines:
            lines = [""]
    text = "\r\n".join(lines)
    if draw_(st.integers(0, 9)) == 0:
        text = text.replace("\r\n", "\n")
    return text.encode("utf-8", "surrogatepass")


async def test_fuzzed_sip_never_breaks_the_listener(caplog):
    caplog.set_level(logging.INFO)

    async def on_invite(call):
        if int(call.call_id[2]) % 2:
            call.reject(486, "Busy Here")
        else:
            await call.answer(audio_sdp())

    stack = SipStack(SipSettings(enabled=True, host="127.0.0.1", port=0), on_invite, limits=GENEROUS)
    await stack.start()
    failures = Failures()
    try:
        udp = await RawPeer.udp(stack.addresses["udp"])
        with failures:
            for n, data in enumerate(draw(sip_inputs("udp"), UDP_INPUTS)):
                record("sip-udp", data)
                with failures.on(data):
                    udp.send(data)
                    await asyncio.sleep(0.002)
                    if n % 40 == 39:
                        await options_ok(stack)
            for n, data in enumerate(draw(sip_inputs("tcp"), TCP_INPUTS)):
                record("sip-tcp", data)
                with failures.on(data):
                    tcp = await RawPeer.stream(stack.addresses["tcp"])
                    tcp.send(data)
                    await asyncio.sleep(0.01)
                    tcp.close()
                    if n % 40 == 39:
                        await options_ok(stack, "tcp")
            await asyncio.sleep(0.3)
            for raw in udp.raw:
                with failures.on(raw):
                    try:
                        parse(raw)
                    except BadMessage as e:  # a refusal copies the request's own missing or bad header
                        if e.reason not in COPIED_FAULTS or not raw.startswith(b"SIP/2.0 400 "):
                            raise AssertionError(f"the stack sent what its parser refuses ({e.reason})") from None
            with failures.on("after the last input"):
                await options_ok(stack)
                await options_ok(stack, "tcp")
                assert stack.counts["error"] == 0, dict(stack.counts)
                errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
                assert not errors, [r.getMessage()[:200] for r in errors[:3]]
        udp.close()
    finally:
        await stack.stop()
