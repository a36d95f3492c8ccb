"""Codec choice per m-line and the offers refused in words (mcu.peer.codec_choice, negotiation):
SDP text in, answer codecs or the client's sentence out; no I/O."""

from __future__ import annotations

import pytest
from aiortc import sdp as aiosdp
from aiortc.exceptions import InvalidStateError, OperationError

from mcu.node import LocalMediaNode
from mcu.peer.codec_choice import (
    answer_codecs,
    offer_for_aiortc,
    plan_answer,
    served_video_codecs,
)
from mcu.peer.negotiation import NegotiationError, describe, explain
from mcu.sfu.subscriber import Output

ICE = "a=ice-ufrag:Ufrg\r\na=ice-pwd:passwordpasswordpassword12\r\n"
FINGERPRINT = "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"


def section(kind: str, mid: str, formats: list[tuple[int, str, str]], *, ice: bool = True, mux: bool = True) -> str:
    """One m-section: ``formats`` are (payload type, rtpmap encoding, fmtp or "")."""
    lines = [f"m={kind} 9 UDP/TLS/RTP/SAVPF {' '.join(str(pt) for pt, _, _ in formats)}", "c=IN IP4 0.0.0.0"]
    lines += [f"a=mid:{mid}", "a=sendrecv"] + (["a=rtcp-mux"] if mux else [])
    for pt, encoding, fmtp in formats:
        lines.append(f"a=rtpmap:{pt} {encoding}")
        if fmtp:
            lines.append(f"a=fmtp:{pt} {fmtp}")
        if kind == "video" and not encoding.startswith("rtx"):
            lines += [f"a=rtcp-fb:{pt} nack", f"a=rtcp-fb:{pt} nack pli", f"a=rtcp-fb:{pt} transport-cc"]
    return "\r\n".join(lines) + "\r\n" + (ICE if ice else "") + FINGERPRINT


def offer(*sections: str) -> str:
    mids = " ".join(s.split("a=mid:")[1].split("\r\n")[0] for s in sections)
    return f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {mids}\r\n" + "".join(sections)


def h264(pt: int, profile: str = "42e01f", mode: int = 1) -> tuple[int, str, str]:
    return pt, "H264/90000", f"level-asymmetry-allowed=1;packetization-mode={mode};profile-level-id={profile}"


OPUS = section("audio", "0", [(111, "opus/48000/2", "minptime=10;useinbandfec=1")])
CHROME_VIDEO = [(96, "VP8/90000", ""), (97, "rtx/90000", "apt=96"), h264(102), (103, "rtx/90000", "apt=102")]


def plan(text: str, video: list[str] | None = None) -> dict:
    return plan_answer(aiosdp.SessionDescription.parse(text), served_video_codecs(video))


def refusal(text: str, video: list[str] | None = None) -> str:
    with pytest.raises(NegotiationError) as refused:
        plan(text, video)
    return str(refused.value)


def test_the_answer_lists_the_offered_codecs_in_the_meetings_order_with_their_rtx():
    text = offer(OPUS, section("video", "1", list(reversed(CHROME_VIDEO))))  # the offer prefers H.264
    chosen = plan(text, ["VP8", "H264"])["1"]
    assert [(c.name, c.payloadType) for c in chosen] == [("VP8", 96), ("rtx", 97), ("H264", 102), ("rtx", 103)]
    assert [c.name for c in plan(text, ["H264", "VP8"])["1"]] == ["H264", "rtx", "VP8", "rtx"]
    assert [c.name for c in plan(text, ["H264"])["1"]] == ["H264", "rtx"]
    assert [c.name for c in plan(text)["0"]] == ["opus"]


def test_the_answer_echoes_the_offered_fmtp_and_keeps_only_the_feedback_the_router_uses():
    media = aiosdp.SessionDescription.parse(offer(section("video", "0", [h264(125, "640c1f", 0)]))).media[0]
    [codec] = answer_codecs(media, ["H264"])
    assert codec.payloadType == 125
    assert codec.parameters["profile-level-id"] == "640c1f" and str(codec.parameters["packetization-mode"]) == "0"
    assert {(f.type, f.parameter) for f in codec.rtcpFeedback} == {("nack", None), ("nack", "pli")}


# the issue's list, x264enc's constrained baseline (42c01f: GStreamer's WHIP publishers) and level 4.0
ISSUE_PROFILES = ("42e01f", "42001f", "42001e", "4d001f", "640c1f")


@pytest.mark.parametrize("profile", ISSUE_PROFILES + ("42c01f", "42e028", "640028"))
@pytest.mark.parametrize("mode", [0, 1])
def test_every_h264_format_of_the_issue_is_served(profile, mode):
    assert [c.name for c in plan(offer(section("video", "0", [h264(100, profile, mode)])))["0"]] == ["H264"]


def test_an_h264_offer_with_no_fmtp_is_constrained_baseline_mode_0_and_served():
    assert [c.name for c in plan(offer(section("video", "0", [(100, "H264/90000", "")])))["0"]] == ["H264"]


def test_codecs_none_of_which_are_served_are_refused_naming_both_lists():
    text = offer(section("video", "0", [(98, "H265/90000", ""), (45, "AV1/90000", ""), (99, "rtx/90000", "apt=98")]))
    assert refusal(text) == "the offer's video codecs are H265, AV1; this meeting takes VP8, H264"
    vp8_only = offer(section("video", "0", [(96, "VP8/90000", "")]))
    assert refusal(vp8_only, ["H264"]) == "the offer's video codecs are VP8; this meeting takes H264"


def test_an_h264_profile_outside_the_list_is_refused_naming_the_profile_and_the_ones_taken():
    # High 4:4:4 (f4), a level above 5.2, and a packetization mode that does not exist
    formats = [h264(100, "f4001f", 1), h264(102, "42e0ff", 1), h264(101, "42e01f", 2)]
    assert refusal(offer(section("video", "0", formats))) == (
        "the offer's video codecs are H264 (profile-level-id f4001f, packetization-mode 1), "
        "H264 (profile-level-id 42e0ff, packetization-mode 1), "
        "H264 (profile-level-id 42e01f, packetization-mode 2); this meeting takes VP8, H264 "
        "(H264 of baseline, constrained baseline, main or high profile, packetization-mode 0 or 1)"
    )


def test_audio_other_than_opus_is_refused():
    pcmu = section("audio", "0", [(0, "PCMU/8000", ""), (8, "PCMA/8000", "")])
    assert refusal(offer(pcmu)) == "the offer's audio codecs are PCMU, PCMA; this server takes OPUS"


def test_an_offer_without_audio_or_video_is_refused():
    data = "m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n" + ICE + FINGERPRINT
    assert refusal(offer(data)) == "the offer has no audio or video m-line (m=audio, m=video): offer at least one"


def test_missing_ice_credentials_mid_or_rtcp_mux_are_refused_naming_the_line():
    no_ice = offer(OPUS, section("video", "1", CHROME_VIDEO, ice=False))
    assert refusal(no_ice) == (
        "the offer's m=video line (a=mid:1) has no ICE credentials: a=ice-ufrag and a=ice-pwd are required"
    )
    no_mux = offer(section("video", "v", CHROME_VIDEO, mux=False))
    assert refusal(no_mux) == "the offer's m=video line (a=mid:v) has no a=rtcp-mux: RTP and RTCP must share one port"
    no_mid = offer(OPUS).replace("a=mid:0\r\n", "").replace("a=group:BUNDLE 0\r\n", "")
    assert refusal(no_mid) == "the offer's m=audio line has no a=mid: every m-line needs one (BUNDLE)"


def test_aiortc_is_shown_every_served_h264_format_as_one_it_knows_and_nothing_else_changes():
    video = [(96, "VP8/90000", ""), h264(100, "4d001f", 0), (101, "H264/90000", ""), h264(104, "f4001f")]
    text = offer(OPUS, section("video", "1", video))
    shown = offer_for_aiortc(text, plan(text))
    known = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
    assert f"a=fmtp:100 {known}" in shown and f"a=fmtp:101 {known}" in shown
    assert "4d001f" not in shown
    assert "a=fmtp:104 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f" in shown  # not served
    rewritten = ("a=fmtp:100 ", "a=fmtp:101 ")
    assert [line for line in shown.splitlines() if not line.startswith(rewritten)] == [
        line for line in text.splitlines() if not line.startswith(rewritten)
    ]


def test_served_video_codecs_follow_the_meeting_and_ignore_unknown_names():
    assert served_video_codecs(["h264", "AV1", "vp8", "H264"]) == ["H264", "VP8"]
    assert served_video_codecs(None) == ["VP8", "H264"]
    assert served_video_codecs(["AV1"]) == ["VP8", "H264"]  # nothing known: the default


def test_a_line_reads_as_every_codec_with_its_payload_types_the_first_one_sent():
    [line] = describe(offer(section("video", "1", CHROME_VIDEO))).values()
    assert (line.codec, line.payload_type, line.rtx_payload_type) == ("VP8", 96, 97)
    assert line.payload_types == {"VP8": (96, 97), "H264": (102, 103)}


def test_an_output_forwards_any_codec_its_line_negotiated_in_that_codecs_payload_type():
    out = Output(
        endpoint_id="s",
        kind="video",
        role="main",
        ssrc=1,
        payload_type=96,
        clock_rate=90000,
        rtx_payload_type=97,
        codec="VP8",
        payload_types={"VP8": (96, 97), "H264": (102, 103)},
    )
    assert out.accepts("H264") and out.accepts("VP8") and not out.accepts("AV1")
    out.use_codec("H264")
    assert (out.pt, out.rtx_pt, out.profile) == (102, 103, (102, 0))
    only_h264 = Output(
        endpoint_id="s", kind="video", role="main", ssrc=2, payload_type=102, clock_rate=90000, codec="H264"
    )
    assert only_h264.accepts("H264") and not only_h264.accepts("VP8")


def test_aiortcs_refusals_reach_the_client_as_sentences_never_its_own_text():
    said = explain("offer", OperationError("Failed to set remote video description send parameters"), "e")
    assert said == "the offer offers no codec this server forwards"
    assert explain("answer", ValueError("Media sections in answer do not match offer"), "e").startswith(
        "the answer's m-lines are not those of the offer"
    )
    generic = explain("offer", InvalidStateError("RTCPeerConnection internals: KeyError 'x'"), "e")
    assert "internals" not in generic and generic.startswith("the offer could not be applied")


def test_the_node_takes_the_codecs_it_may_encode_and_refuses_unknown_ones():
    assert LocalMediaNode(encode_codecs=("h264",)).encode_codecs == ("H264",)
    assert LocalMediaNode().encode_codecs == ("VP8", "H264")
    with pytest.raises(ValueError, match="encode_codecs must be some of VP8, H264"):
        LocalMediaNode(encode_codecs=("VP9",))
    with pytest.raises(ValueError):
        LocalMediaNode(encode_codecs=())
