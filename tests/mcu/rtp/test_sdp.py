"""A room system's SDP offer read, its codecs chosen and our answer written (mcu.rtp.sdp).

Each answer is read back with the same parser, as the room reads it: one line per offered line, in
order, what we chose and where, RTCP on port + 1, our own keys."""

from __future__ import annotations

import pytest

from mcu.api import MediaError, OfferRefused
from mcu.rtp.sdp import LocalMedia, SdpError, answer_crypto, build_answer, choose, parse_offer
from tests.mcu.rtp.offers import BARESIP, CISCO, KEY_A, POLYCOM, crlf


def answered(offer_text: str, prefs=None, video_codecs=None, address="127.0.0.1"):
    """(chosen, the answer's text, the answer as the room reads it)."""
    offer = parse_offer(offer_text)
    chosen = choose(offer, prefs, video_codecs)
    locals = [
        LocalMedia(40000 + 2 * i, answer_crypto(c.crypto) if c.crypto else None, 1500) if c else None
        for i, c in enumerate(chosen)
    ]
    text = build_answer(offer, chosen, locals, address, session_id=77, version=3)
    return chosen, text, parse_offer(text)


def test_baresip_offer_is_read_and_answered_with_opus_h264_mode_0_and_dtmf():
    offer = parse_offer(BARESIP)
    audio, video = offer.lines
    assert (audio.port, audio.rtcp_port, audio.address, audio.proto) == (10944, 10945, "127.0.0.1", "RTP/AVP")
    assert [f.name for f in audio.formats] == ["PCMU", "G722", "OPUS", "TELEPHONE-EVENT"]
    assert video.formats[0].params == {"packetization-mode": "0", "profile-level-id": "42e01f"}
    assert (video.bandwidth_kbps, video.content, video.label, video.feedback) == (1000, ("main",), "2", ["* nack pli"])
    assert offer.tool == "baresip 1.0.0"

    chosen, text, answer = answered(BARESIP)
    # its telephone-event is /8000 only: kept beside Opus (keys are read at any clock)
    assert [(c.codec, c.format.pt, c.dtmf and c.dtmf.pt) for c in chosen] == [("OPUS", 96, 101), ("H264", 97, None)]
    assert chosen[1].h264 == (0, 0x42)
    assert "m=audio 40000 RTP/AVP 96 101\r\na=rtpmap:96 opus/48000/2\r\n" in text
    assert "a=fmtp:97 profile-level-id=42e01f;packetization-mode=0\r\n" in text
    assert "m=video 40002 RTP/AVP 97\r\nb=AS:1500\r\n" in text and "a=rtcp-fb:* nack pli" in text
    assert text.startswith("v=0\r\no=giaoban 77 3 IN IP4 127.0.0.1\r\ns=giaoban\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n")
    a, v = answer.lines
    assert (a.port, a.rtcp_port, a.direction, v.port, v.rtcp_port, v.direction) == (
        40000, 40001, "sendrecv", 40002, 40003, "sendrecv")  # fmt: skip


def test_the_rooms_codec_list_orders_audio_and_g711_takes_its_dtmf():
    chosen, text, _ = answered(BARESIP, prefs=["H264", "PCMU", "G722"])
    assert (chosen[0].codec, chosen[0].format.pt, chosen[0].dtmf.pt) == ("PCMU", 0, 101)
    assert "m=audio 40000 RTP/AVP 0 101\r\n" in text
    assert "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n" in text
    assert answered(BARESIP, prefs=["G722"])[0][0].codec == "G722"
    assert answered(BARESIP, prefs=["PCMA"])[0][0].codec == "OPUS"  # not offered: the default order


def test_opus_keeps_telephone_event_48000_not_8000():
    offer = crlf("""
        v=0
        c=IN IP4 10.0.0.1
        m=audio 5004 RTP/AVP 111 101 102
        a=rtpmap:111 OPUS/48000/2
        a=rtpmap:101 telephone-event/8000
        a=rtpmap:102 telephone-event/48000
    """)
    chosen, text, _ = answered(offer)
    assert (chosen[0].format.pt, chosen[0].dtmf.pt, chosen[0].dtmf.clock) == (111, 102, 48000)
    assert "m=audio 40000 RTP/AVP 111 102\r\n" in text and "a=rtpmap:102 telephone-event/48000" in text


def test_polycom_offer_skips_g7221_h263_and_bfcp_and_answers_slides():
    chosen, text, answer = answered(POLYCOM)
    assert [c and (c.codec, c.format.pt, c.slides) for c in chosen] == [
        ("G722", 9, False), ("H264", 109, False), ("H264", 109, True), None, None]  # fmt: skip
    assert chosen[0].dtmf.pt == 101 and chosen[1].h264 == (1, 0x64)
    # high profile offered: its profile-level-id is repeated (RFC 6184 8.2.2), the mode too
    assert "a=fmtp:109 profile-level-id=640020;packetization-mode=1\r\n" in text
    assert "a=fmtp:109 profile-level-id=42e01f;packetization-mode=1\r\n" in text  # the slides line
    assert "a=rtcp-fb:* ccm fir\r\na=rtcp-fb:* nack pli\r\na=content:main\r\na=label:1\r\n" in text
    assert "a=content:slides\r\na=label:3\r\n" in text
    assert [(m.kind, m.port, m.proto, m.tokens) for m in answer.lines[3:]] == [
        ("application", 0, "TCP/BFCP", ["*"]), ("application", 0, "RTP/AVP", ["100"])]  # fmt: skip
    offer = parse_offer(POLYCOM)
    assert offer.bandwidth_kbps == 2048 and offer.lines[1].bandwidth_kbps == 1920
    assert [f.name for f in offer.lines[0].formats][:2] == ["G7221", "G7221"]


def test_cisco_srtp_offer_takes_the_first_suite_we_speak_and_answers_with_our_own_key():
    chosen, text, answer = answered(CISCO, address="2001:db8::1")
    audio, video, slides = chosen[:3]
    assert (audio.codec, audio.crypto.tag, audio.crypto.suite) == ("G722", 2, "AES_CM_128_HMAC_SHA1_80")
    assert audio.crypto.lifetime == 2**48
    assert (video.codec, video.format.pt, video.h264, video.crypto.tag) == ("H264", 126, (1, 0x64), 2)
    assert slides.slides and chosen[3] is None
    assert "c=IN IP6 2001:db8::1\r\n" in text and "m=audio 40000 RTP/SAVP 9 101\r\n" in text
    for line, offered in zip(answer.lines[:3], (audio, video, slides)):
        (ours,) = line.crypto
        assert ours.usable and (ours.tag, ours.suite) == (offered.crypto.tag, offered.crypto.suite)
        assert ours.key != offered.crypto.key
    offer = parse_offer(CISCO)
    assert (offer.lines[0].rtcp_port, offer.lines[0].rtcp_address) == (2327, "2001:db8::20")
    assert offer.lines[0].bandwidth_kbps == 128 and offer.lines[1].rtcp_mux
    assert "a=rtcp-mux" not in text and "a=rtcp:40003\r\n" in text  # RTCP stays on port + 1
    assert "MKI" in offer.lines[1].crypto[0].problem


def test_no_common_audio_is_refused_naming_what_was_offered_and_what_we_take():
    offer = parse_offer(
        crlf("""
        v=0
        c=IN IP4 10.0.0.1
        m=audio 5004 RTP/AVP 18 4 101
        a=rtpmap:101 telephone-event/8000
        m=video 5006 RTP/AVP 96
        a=rtpmap:96 H264/90000
    """)
    )
    with pytest.raises(OfferRefused) as refused:
        choose(offer, None, None)
    assert isinstance(refused.value, MediaError)
    assert str(refused.value) == (
        "the offer's audio is G729/8000, G723/8000 on RTP/AVP; we take OPUS/48000/2, G722/8000, PCMU/8000, "
        "PCMA/8000 on RTP/AVP or RTP/SAVP (SDES AES_CM_128_HMAC_SHA1_80 or _32)"
    )


def test_srtp_audio_without_a_usable_key_is_refused_naming_the_key():
    offer = parse_offer(
        crlf(f"""
        v=0
        c=IN IP4 10.0.0.1
        m=audio 5004 RTP/SAVP 0
        a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|2^20|1:4
        a=crypto:2 AES_256_CM_HMAC_SHA1_80 inline:{KEY_A}
    """)
    )
    with pytest.raises(
        OfferRefused, match=r"PCMU/8000 on RTP/SAVP without a key we can use \(a=crypto:1 it uses a master"
    ):
        choose(offer, None, None)
    with pytest.raises(OfferRefused, match="the offer has no m=audio line"):
        choose(parse_offer("v=0\r\nc=IN IP4 10.0.0.1\r\nm=video 5006 RTP/AVP 31\r\n"), None, None)


def test_video_without_a_common_codec_goes_audio_only_and_vp8_when_it_is_all():
    def offer(video: str) -> str:
        return crlf("v=0\nc=IN IP4 10.0.0.1\nm=audio 5004 RTP/AVP 8\n" + video)

    h264_only = "m=video 5006 RTP/AVP 96 97\na=rtpmap:96 H264/90000\na=fmtp:96 profile-level-id=64001f;packetization-mode=2\na=rtpmap:97 H264/90000\na=fmtp:97 profile-level-id=58001f"
    chosen, text, answer = answered(offer(h264_only))
    assert chosen[1] is None and "m=video 0 RTP/AVP 96\r\n" in text and chosen[0].codec == "PCMA"
    assert chosen[0].dtmf is None and "m=audio 40000 RTP/AVP 8\r\n" in text
    both = "m=video 5006 RTP/AVP 100 96\na=rtpmap:100 VP8/90000\na=rtpmap:96 H264/90000"
    assert answered(offer(both))[0][1].codec == "H264"  # no fmtp: constrained baseline, mode 0
    assert answered(offer(both), prefs=["VP8"])[0][1].codec == "VP8"  # the room's order
    assert answered(offer(both), video_codecs=["VP8"])[0][1].codec == "VP8"  # the meeting's codecs
    vp8 = "m=video 5006 RTP/AVP 100\na=rtpmap:100 VP8/90000"
    chosen, text, _ = answered(offer(vp8))
    assert chosen[1].codec == "VP8" and "a=rtpmap:100 VP8/90000\r\na=rtcp:40003\r\n" in text
    assert answered(offer(vp8), video_codecs=["H264"])[0][1] is None


@pytest.mark.parametrize(
    "offered, session, answered_direction",
    [("sendonly", "", "recvonly"), ("recvonly", "", "sendonly"), ("inactive", "", "inactive"),
     ("", "a=sendonly", "recvonly"), ("sendrecv", "a=inactive", "sendrecv"), ("", "", "sendrecv"),
     ("c=IN IP4 0.0.0.0", "", "recvonly"), ("c=IN IP4 0.0.0.0\na=recvonly", "", "inactive")],
)  # fmt: skip
def test_direction_is_answered_per_rfc_3264_old_style_hold_too(offered, session, answered_direction):
    media = offered if offered.startswith("c=") else f"a={offered}" if offered else ""
    text = crlf(f"v=0\nc=IN IP4 10.0.0.1\n{session}\nm=audio 5004 RTP/AVP 0\n{media}")
    chosen, _, answer = answered(text)
    assert chosen[0].direction == answer.lines[0].direction == answered_direction


def test_disabled_lines_and_extra_lines_are_refused_in_place():
    text = crlf("""
        v=0
        c=IN IP4 10.0.0.1
        m=audio 0 RTP/AVP 0
        m=audio 5004 RTP/AVP 0
        m=audio 5008 RTP/AVP 8
        m=video 5006/2 RTP/AVPF 96
        a=rtpmap:96 VP8/90000
        m=video 5010 RTP/AVP 96
        a=rtpmap:96 VP8/90000
    """)
    chosen, answer_text, answer = answered(text)
    assert [c and c.codec for c in chosen] == [None, "PCMU", None, "VP8", None]
    assert [m.port for m in answer.lines] == [0, 40002, 0, 40006, 0]
    assert answer.lines[3].proto == "RTP/AVPF"


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "the SDP is empty"),
        ("o=- 1 1 IN IP4 1.2.3.4\r\n", r"line 1 \('o=- 1 1 IN IP4 1.2.3.4'\): an SDP starts with v=0"),
        ("v=0\r\nhello\r\n", r"line 2 \('hello'\) is not of the form x=value"),
        (
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 70000 RTP/AVP 0\r\n",
            r"line 3 \(m=audio 70000 RTP/AVP 0\): the port '70000'",
        ),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP\r\n", "line 3 .* an m-line is"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 0 x\r\n", "line 3 .*payload types 0-127"),
        ("v=0\r\nc=IN IP4 1.2.3.300\r\n", r"line 2 \(c=IN IP4 1.2.3.300\): '1.2.3.300' is not an IP address"),
        ("v=0\r\nc=IN IP6 1.2.3.4\r\n", "line 2 .*the address is not IP6"),
        ("v=0\r\nm=audio 5004 RTP/AVP 0\r\n", r"line 2 \(m=audio\): no c= line gives its address"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\n", "no m-line"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5004 RTP/AVP 0\r\na=rtcp:abc\r\n", "line 4 .*RTCP port"),
        ("v=0\r\n" + "a=x\r\n" * 1000, "1002 lines, more than 1000"),
        ("v=0\r\n" + "a=" + "x" * 40000, "characters, more than 32768"),
        ("v=0\r\nc=IN IP4 1.2.3.4\r\n" + "m=audio 5004 RTP/AVP 0\r\n" * 17, "line 19: more than 16 m-lines"),
    ],
)
def test_unreadable_offers_are_refused_naming_the_line(text, message):
    with pytest.raises(SdpError, match=message):
        parse_offer(text)


def test_what_we_do_not_need_is_ignored_not_refused():
    offer = parse_offer(
        "v=0\nc=IN IP4 1.2.3.4\nb=X-YZ:12\nb=AS:abc\nz=odd\nm=audio 5004 RTP/AVP 0 96\n"
        "a=rtpmap:96 broken\na=fmtp:x y\na=ptime:huge\na=crypto:junk\nb=TIAS:64000\nb=AS:80\n"
    )
    (audio,) = offer.lines
    assert [f.name for f in audio.formats] == ["PCMU", ""] and audio.bandwidth_kbps == 64
    assert offer.bandwidth_kbps is None and not audio.crypto[0].usable
    assert choose(offer, None, None)[0].codec == "PCMU"


def test_build_answer_needs_one_entry_per_line_and_our_key_on_srtp_lines():
    offer = parse_offer(CISCO)
    chosen = choose(offer, None, None)
    with pytest.raises(ValueError, match="one chosen and one local entry"):
        build_answer(offer, chosen, [], "127.0.0.1")
    with pytest.raises(ValueError, match="needs our a=crypto"):
        build_answer(offer, chosen, [LocalMedia(4000) if c else None for c in chosen], "127.0.0.1")


def test_the_refusal_is_one_printable_line_fit_for_a_warning_header():
    offer = "v=0\r\nc=IN IP4 10.0.0.1\r\n" + "".join(
        f'm=audio {5000 + i} RTP/AVP 96\r\na=rtpmap:96 X"\\\u00e9{"Z" * 30}/8000\r\n' for i in range(16)
    )
    with pytest.raises(OfferRefused) as refused:
        choose(parse_offer(offer), None, None)
    message = str(refused.value)
    assert message.startswith("the offer's audio is X??")
    assert '"' not in message and "\\" not in message and message.isascii() and len(message) < 500
    with pytest.raises(SdpError, match=r"line 2 .*holds a NUL or a lone CR") as bad:
        parse_offer("v=0\r\ns=a\rb\r\n")
    assert str(bad.value).isprintable()


def test_a_slides_line_is_never_the_camera():
    base = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 5004 RTP/AVP 0\r\n"
    bad_main = (
        "m=video 5006 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=2\r\na=content:main\r\n"
    )
    slides = "m=video 5008 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\na=content:slides\r\n"
    chosen = choose(parse_offer(base + bad_main + slides), None, None)
    assert chosen[1] is None and chosen[2] is not None and chosen[2].slides
    camera = "m=video 5010 RTP/AVP 98\r\na=rtpmap:98 VP8/90000\r\n"
    chosen = choose(parse_offer(base + slides + camera + slides), None, None)
    assert [c and (c.codec, c.slides) for c in chosen] == [("PCMU", False), ("H264", True), ("VP8", False), None]
