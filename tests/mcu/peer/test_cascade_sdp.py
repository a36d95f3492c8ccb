"""What a cascade link writes into its SDP and how the origin reads it back (pure)."""

from mcu.peer.cascade_sdp import NOBODY, add_content, encode_label, msid_labels

OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 1 1 IN IP4 0.0.0.0",
        "s=-",
        "t=0 0",
        "m=video 9 UDP/TLS/RTP/SAVPF 97",
        "a=mid:0",
        "a=sendonly",
        "a=msid:{a} track-a",
        "m=audio 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:1",
        "a=sendonly",
        "a=msid:{b} track-b",
        "m=video 9 UDP/TLS/RTP/SAVPF 97",
        "a=mid:2",
        "a=recvonly",
        "",
    ]
)


def test_labels_round_trip_any_endpoint_id():
    odd = "xã Lũng Cú/1 %"
    sdp = OFFER.format(a=encode_label(odd), b=encode_label(None))
    assert " " not in encode_label(odd) and len(encode_label("x" * 20)) == 20
    assert msid_labels(sdp) == {"0": odd, "1": None}
    assert encode_label(None) == NOBODY == encode_label("")


def test_content_lands_after_the_right_mid_only():
    sdp = add_content(OFFER.format(a="-", b="-"), {"2": "composite", "0": "slides"})
    lines = sdp.split("\r\n")
    assert lines[lines.index("a=mid:2") + 1] == "a=content:composite"
    assert lines[lines.index("a=mid:0") + 1] == "a=content:slides"
    assert lines[lines.index("a=mid:1") + 1] == "a=sendonly"
    assert add_content(OFFER, {}) == OFFER
