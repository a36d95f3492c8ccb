"""The server's renegotiation offer keeps the ids and payload types a browser chose first (#17)."""

from __future__ import annotations

from mcu.peer.negotiation import MLine, describe
from mcu.peer.renegotiation import NegotiatedIds, answer_for_aiortc

MID, LEVEL, ABS = (
    "urn:ietf:params:rtp-hdrext:sdes:mid",
    "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    ("http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"),
)
SESSION = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {mids}\r\n"
ICE = "c=IN IP4 0.0.0.0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=rtcp-mux\r\n"


def audio(mid: str, direction: str, opus: int, exts: dict[str, int]) -> str:
    lines = f"m=audio 9 UDP/TLS/RTP/SAVPF {opus}\r\n{ICE}a=mid:{mid}\r\na={direction}\r\n"
    lines += "".join(f"a=extmap:{i} {uri}\r\n" for uri, i in exts.items())
    return lines + f"a=rtpmap:{opus} opus/48000/2\r\na=fmtp:{opus} minptime=10;useinbandfec=1\r\n"


def video(
    mid: str, direction: str, vp8: int, rtx: int, exts: dict[str, int], h264: tuple[int, int] | None = None
) -> str:
    pts = f"{vp8} {rtx}" + (f" {h264[0]} {h264[1]}" if h264 else "")
    lines = f"m=video 9 UDP/TLS/RTP/SAVPF {pts}\r\n{ICE}a=mid:{mid}\r\na={direction}\r\n"
    lines += "".join(f"a=extmap:{i} {uri}\r\n" for uri, i in exts.items())
    lines += f"a=rtpmap:{vp8} VP8/90000\r\na=rtcp-fb:{vp8} nack pli\r\na=rtpmap:{rtx} rtx/90000\r\na=fmtp:{rtx} apt={vp8}\r\n"
    if h264:
        lines += f"a=rtpmap:{h264[0]} H264/90000\r\n"
        lines += f"a=fmtp:{h264[0]} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
        lines += f"a=rtpmap:{h264[1]} rtx/90000\r\na=fmtp:{h264[1]} apt={h264[0]}\r\n"
    return lines


# Chromium's first offer: its own ids (audio level 1, abs-send-time 2, mid 4) and payload types
BROWSER = {LEVEL: 1, ABS: 2, MID: 4}
FIRST_OFFER = (
    SESSION.format(mids="0 1") + audio("0", "sendrecv", 111, BROWSER) + video("1", "sendrecv", 96, 97, BROWSER)
)
# our answer (aiortc echoes the ids and payload types the browser offered)
FIRST_ANSWER = (
    SESSION.format(mids="0 1")
    + audio("0", "sendrecv", 111, {MID: 4, LEVEL: 1})
    + video("1", "sendrecv", 96, 97, {MID: 4, ABS: 2})
)
# what aiortc's createOffer then writes: its tables' ids (mid 1, level 2, abs 3) and payload types
AIORTC = {"audio": {MID: 1, LEVEL: 2}, "video": {MID: 1, ABS: 3}}
REOFFER = (
    SESSION.format(mids="0 1 2")
    + audio("0", "sendrecv", 96, AIORTC["audio"])
    + video("1", "sendrecv", 97, 98, AIORTC["video"], h264=(99, 100))
    + video("2", "sendonly", 97, 98, AIORTC["video"], h264=(99, 100))
)


def kept() -> tuple[dict[str, MLine], str]:
    """The re-offer after the first negotiation, read back per mid, and its text."""
    ids = NegotiatedIds()
    ids.learn(FIRST_OFFER, FIRST_ANSWER)
    sdp = ids.keep(REOFFER)
    return describe(sdp), sdp


def extmaps(sdp: str, mid: str) -> dict[str, int]:
    section = sdp.split(f"a=mid:{mid}\r\n")[1].split("m=")[0]
    return {
        line.split(" ")[1]: int(line.split(" ")[0][9:]) for line in section.splitlines() if line.startswith("a=extmap:")
    }


def test_a_renegotiation_offer_carries_the_browsers_extension_ids_on_every_line():
    _, sdp = kept()
    assert extmaps(sdp, "0") == {MID: 4, LEVEL: 1}
    assert extmaps(sdp, "1") == {MID: 4, ABS: 2}
    assert extmaps(sdp, "2") == {MID: 4, ABS: 2}  # the new slides line too: one id space (BUNDLE)


def test_existing_lines_keep_their_negotiated_codecs_and_new_lines_take_free_payload_types():
    lines, sdp = kept()
    assert list(lines) == ["0", "1", "2"]  # mids unchanged
    assert lines["0"].payload_types == {"OPUS": (111, None)}
    assert lines["1"].payload_types == {"VP8": (96, 97)}  # as negotiated, no H264 added
    # the new line: VP8 reuses 96/97; H264 keeps aiortc's 99 (free) but its RTX 100 too, and
    # aiortc's own VP8 97 no longer means VP8 anywhere in the offer
    assert lines["2"].payload_types == {"VP8": (96, 97), "H264": (99, 100)}
    assert "a=rtpmap:98 " not in sdp


def test_a_new_extension_gets_an_id_nobody_has():
    ids = NegotiatedIds()
    ids.learn(FIRST_OFFER.replace(f"a=extmap:2 {ABS}\r\n", ""), FIRST_ANSWER.replace(f"a=extmap:2 {ABS}\r\n", ""))
    sdp = ids.keep(REOFFER)
    assert extmaps(sdp, "2") == {MID: 4, ABS: 2}  # 1 (level) and 4 (mid) are taken: 2 is the first free
    assert extmaps(sdp, "1")[ABS] == extmaps(sdp, "2")[ABS]


def test_later_negotiations_never_change_a_learned_id():
    ids = NegotiatedIds()
    ids.learn(FIRST_OFFER, FIRST_ANSWER)
    ids.learn(REOFFER, REOFFER)  # even a description carrying other ids (it cannot, after keep)
    assert ids.extension_ids == {LEVEL: 1, ABS: 2, MID: 4}
    assert extmaps(ids.keep(REOFFER), "2") == {MID: 4, ABS: 2}


def test_an_answer_with_a_high_profile_h264_is_given_to_aiortc_with_a_format_it_has():
    high = FIRST_ANSWER.replace("a=rtpmap:96 VP8/90000", "a=rtpmap:96 H264/90000").replace(
        "a=rtcp-fb:96 nack pli", "a=fmtp:96 packetization-mode=1;profile-level-id=640c1f"
    )
    assert "640c1f" not in answer_for_aiortc(high)
    assert describe(answer_for_aiortc(high))["1"].payload_types == {"H264": (96, 97)}
