"""Reading a trickle ICE PATCH body (RFC 8840 fragment) for a WHIP/WHEP session (#13)."""

from __future__ import annotations

import pytest

from signaling.api.trickle import MAX_CANDIDATES, offer_ice, parse_fragment
from signaling.errors import ApiError

OFFER = "\r\n".join(
    [
        "v=0",
        "a=group:BUNDLE a v",
        "m=audio 9 UDP/TLS/RTP/SAVPF 111",
        "a=mid:a",
        "a=ice-ufrag:uf1",
        "a=ice-pwd:pw1pw1pw1pw1pw1pw1pw1pw1",
        "m=video 9 UDP/TLS/RTP/SAVPF 96",
        "a=mid:v",
        "a=ice-ufrag:uf1",
        "a=ice-pwd:pw1pw1pw1pw1pw1pw1pw1pw1",
    ]
)
CAND = "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host"
ICE = offer_ice(OFFER)


def test_candidates_go_to_the_section_their_mid_names():
    frag = parse_fragment(f"a=ice-ufrag:uf1\r\nm=video 9 RTP/AVP 0\r\na=mid:v\r\na={CAND}\r\n", ICE)
    assert frag.candidates == [{"candidate": CAND, "sdpMid": "v", "sdpMLineIndex": 1}]
    assert not frag.end and not frag.restarts(ICE)


def test_a_candidate_outside_a_section_belongs_to_the_first_bundled_one():
    frag = parse_fragment(f"a={CAND}\na=end-of-candidates\n", ICE)
    assert frag.candidates == [{"candidate": CAND, "sdpMid": "a", "sdpMLineIndex": 0}] and frag.end


def test_end_of_candidates_alone_is_a_fragment():
    frag = parse_fragment("m=audio 9 RTP/AVP 0\r\na=mid:a\r\na=end-of-candidates\r\n", ICE)
    assert frag.end and frag.candidates == []


def test_new_credentials_are_an_ice_restart():
    assert parse_fragment("a=ice-ufrag:uf2\r\na=ice-pwd:pw2pw2pw2pw2pw2pw2pw2pw2\r\n", ICE).restarts(ICE)
    assert parse_fragment("a=ice-pwd:other-password-000000\r\n", ICE).restarts(ICE)
    assert not parse_fragment("a=ice-ufrag:uf1\r\na=end-of-candidates\r\n", ICE).restarts(ICE)


@pytest.mark.parametrize(
    "body, words",
    [
        ("", "has no a=candidate, a=end-of-candidates or ICE credentials"),
        ("hello world\r\n", "has no a=candidate"),
        ("a=candidate:garbage\r\n", "is malformed"),
        (
            f"m=video 9 RTP/AVP 0\r\na=mid:x\r\na={CAND}\r\n",
            "a=mid:x is not a media section of the offer (its mids: a, v)",
        ),
        (f"a={CAND}\r\n" * (MAX_CANDIDATES + 1), f"send at most {MAX_CANDIDATES}"),
    ],
)
def test_what_cannot_be_served_is_a_400_in_words(body, words):
    with pytest.raises(ApiError) as err:
        parse_fragment(body, ICE)
    assert err.value.status == 400 and words in err.value.message, err.value.message


def test_an_offer_without_mids_takes_no_candidates():
    with pytest.raises(ApiError, match="needs an a=mid"):
        parse_fragment(f"a={CAND}\r\n", offer_ice("v=0\r\nm=audio 9 RTP/AVP 0\r\n"))
