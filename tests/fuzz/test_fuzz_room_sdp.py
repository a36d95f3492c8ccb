"""Fuzz the SDP reader of SIP room systems (mcu.rtp.sdp, #14): a room's offer reaches it straight
from an INVITE, a 200 (delayed-offer dial-out) or a re-INVITE, from any address that can send UDP.

Inputs, seeded and bounded (tests/fuzz/support.draw): the offers of baresip 1.0, a Polycom-style and
a Cisco-style SDES system (tests/mcu/rtp/offers.py) with 1-4 lines broken, dropped, doubled or cut
(strategies.sdp_mutations, with room-system junk lines added here), their lines and that junk
recombined in any order, and hostile text. For each one:

* ``parse_offer`` and ``choose`` raise nothing but ``SdpError`` / ``OfferRefused`` (both
  ``MediaError``), whose message is one line of printable text of bounded length (it becomes the
  SIP 488's Warning);
* an offer that is taken is answered: ``build_answer`` does not raise, and the answer reads back
  with the same parser, one line per offered line in order, port 0 exactly where nothing was chosen.

Pure computation (no socket, no thread): marked unit, though it lives with the fuzz layer.
"""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from mcu.api import OfferRefused
from mcu.rtp.sdp import LocalMedia, SdpError, answer_crypto, build_answer, choose, parse_offer
from tests.fuzz.strategies import SDP_JUNK, nasty_text, sdp_mutations
from tests.fuzz.support import Failures, draw, record
from tests.mcu.rtp.offers import BARESIP, CISCO, KEY_A, POLYCOM

pytestmark = pytest.mark.unit
PER_BASE = 400  # inputs per base offer: ~4 s in all on a loaded core
MAX_MESSAGE = 700
ROOM_JUNK = [
    "m=audio 5004/2 RTP/SAVPF 0 101",
    "m=video 0 RTP/SAVP 96",
    "m=application 5070 TCP/BFCP *",
    "m=video 5006 RTP/AVP 128",
    "m=audio 65536 RTP/AVP 0",
    "c=IN IP6 ::1",
    "c=IN IP6 fe80::1%eth0",
    "c=IN IP4 224.2.1.1/127/3",
    "c=IN IP4 ::1",
    "a=rtcp:0",
    "a=rtcp:99999",
    "a=rtcp:5005 IN IP4 not-an-ip",
    "a=rtcp-mux",
    "a=inactive",
    "a=recvonly",
    "a=content:slides",
    "a=content:",
    "a=label:\u202e",
    "a=rtpmap:96 H264/90000",
    "a=rtpmap:96 opus/48000/2/9",
    "a=rtpmap:101 telephone-event/48000",
    "a=rtpmap:0 G729/8000",
    "a=rtpmap:96 VP8/²",
    "a=fmtp:96 packetization-mode=1;profile-level-id=640zz8",
    "a=fmtp:96 packetization-mode=²;profile-level-id=42e01f",
    "a=fmtp:96 ;;=;profile-level-id",
    "a=fmtp:101 0-16",
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}",
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:{KEY_A}|2^99|1:4",
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|²",
    "a=crypto:999999999999 AES_CM_128_HMAC_SHA1_80 inline:",
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:ä==",
    "b=TIAS:999999999999999",
    "b=AS:²",
    "a=ptime:0",
    "a=sendonly",
]


def room_sdp(base: str) -> st.SearchStrategy[str]:
    junk = SDP_JUNK + ROOM_JUNK
    mutated = sdp_mutations(base).flatmap(
        lambda text: st.lists(st.sampled_from(junk), max_size=3).map(
            lambda extra: text + "".join(f"{j}\r\n" for j in extra)
        )
    )
    # the base's session part and first m-line, then its other lines and room junk in any order:
    # well-formed offers that reach the choice and the answer in many shapes
    lines = [line for line in base.split("\r\n") if line]
    first_m = next(i for i, line in enumerate(lines) if line.startswith("m="))
    head = "".join(f"{line}\r\n" for line in lines[: first_m + 1])
    recombined = st.lists(st.sampled_from(lines[first_m + 1 :] + ROOM_JUNK), min_size=3, max_size=40).map(
        lambda picked: head + "".join(f"{line}\r\n" for line in picked)
    )
    hostile = st.one_of(nasty_text(200).map(lambda s: "v=0\r\n" + s), nasty_text(200))
    return st.one_of(mutated, mutated, recombined, recombined, hostile)


def answer_of(text: str) -> str | None:
    """The answer to ``text``, or None when it is refused in words; asserts the invariants."""
    try:
        offer = parse_offer(text)
        chosen = choose(offer, ["H264", "G722", "PCMU"], ["VP8", "H264"])
    except (SdpError, OfferRefused) as refused:
        message = str(refused)
        assert message.isprintable() and 0 < len(message) <= MAX_MESSAGE, message
        return None
    locals = [
        LocalMedia(30000 + 2 * i, answer_crypto(c.crypto) if c.crypto else None, 1200) if c else None
        for i, c in enumerate(chosen)
    ]
    answer = build_answer(offer, chosen, locals, "::1" if len(text) % 2 else "127.0.0.1")
    lines = parse_offer(answer).lines
    assert len(lines) == len(offer.lines)
    for line, pick, offered in zip(lines, chosen, offer.lines):
        assert (line.kind, line.proto) == (offered.kind, offered.proto)
        assert line.port == (30000 + 2 * line.index if pick else 0)
        if pick:
            assert line.formats[0].pt == pick.format.pt and line.rtcp_port == line.port + 1
            assert not line.secure or (len(line.crypto) == 1 and line.crypto[0].usable)
    return answer


@pytest.mark.parametrize("name, base", [("baresip", BARESIP), ("polycom", POLYCOM), ("cisco", CISCO)])
def test_room_offers_are_answered_or_refused_in_words(name, base):
    answered = 0
    with Failures() as failures:
        for text in draw(room_sdp(base), PER_BASE):
            record("room_sdp", text)
            with failures.on(text):
                answered += answer_of(text) is not None
    assert 0 < answered < PER_BASE, f"the generator reaches both answers and refusals ({answered} answered)"
