"""SDES-SRTP keys (mcu.rtp.sdes) and the plain RTP session (mcu.fence.plain_rtp_session).

What a room system's a=crypto line says is read back from the text we write; packets protected
with one side's key are read by a session keyed from the other side's SDP line; and the plain
session's in-place protect, the SFU's fast path, leaves every byte and the length as they were."""

from __future__ import annotations

import base64
import os

import pytest
from pylibsrtp import Error as SrtpError

from mcu.fence import new_length_cell, plain_rtp_session, srtp_buffer
from mcu.rtp.sdes import Crypto, answer_crypto, inbound_session, outbound_session, parse_crypto
from mcu.sfu.srtp_out import protect

KEY = bytes(range(30))
INLINE = base64.b64encode(KEY).decode()


def rtp(seq: int, payload: bytes = b"\x55" * 160, ssrc: int = 0x1234) -> bytes:
    return (
        bytes([0x80, 0x00])
        + seq.to_bytes(2, "big")
        + (seq * 160).to_bytes(4, "big")
        + ssrc.to_bytes(4, "big")
        + payload
    )


@pytest.mark.parametrize("suite", ["AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32"])
def test_each_side_reads_what_the_other_keyed_in_its_sdp_line(suite):
    room_line = Crypto(1, suite, os.urandom(30))
    offered = parse_crypto(room_line.attribute().split(":", 1)[1])
    assert offered == room_line and offered.usable
    ours = answer_crypto(offered)
    assert (ours.tag, ours.suite) == (1, suite) and ours.key != offered.key and len(ours.key) == 30
    answered = parse_crypto(ours.attribute().split(":", 1)[1])  # what the room reads of our answer

    room_out, our_in = outbound_session(room_line), inbound_session(offered)
    our_out, room_in = outbound_session(ours), inbound_session(answered)
    for seq in range(1, 6):
        sent = rtp(seq)
        protected = room_out.protect(sent)
        assert protected != sent and len(protected) == len(sent) + (10 if suite.endswith("80") else 4)
        assert our_in.unprotect(protected) == sent
        assert room_in.unprotect(our_out.protect(rtp(seq, b"\x66" * 160, 0x99))) == rtp(seq, b"\x66" * 160, 0x99)
    with pytest.raises(SrtpError):  # the other direction's key does not read it
        inbound_session(answered).unprotect(room_out.protect(rtp(9)))


def test_lifetime_is_read_and_mki_or_session_parameters_are_refused_in_words():
    assert parse_crypto(f"2 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^31").lifetime == 2**31
    assert parse_crypto(f"2 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|1048576").lifetime == 1048576
    cases = {
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|2^20|1:4": "master key identifier (MKI 1:4)",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}|1:4": "master key identifier",
        f"1 AES_256_CM_HMAC_SHA1_80 inline:{INLINE}": "suite AES_256_CM_HMAC_SHA1_80 is not one we take",
        f"1 AEAD_AES_128_GCM inline:{INLINE}": "not one we take",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE} UNENCRYPTED_SRTCP": "session parameters (UNENCRYPTED_SRTCP)",
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64": "not base64",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(bytes(16)).decode()}": "16 bytes, not 30",
        f"x AES_CM_128_HMAC_SHA1_80 inline:{INLINE}": "tag 'x' is not a number",
        "1 AES_CM_128_HMAC_SHA1_80": "no key parameters",
        f"1 AES_CM_128_HMAC_SHA1_80 uri:{INLINE}": "not inline:",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE};inline:{INLINE}": "several keys",
        "": "tag '' is not a number",
    }
    for value, problem in cases.items():
        crypto = parse_crypto(value)
        assert not crypto.usable and problem in crypto.problem, (value, crypto.problem)
        with pytest.raises(ValueError, match="cannot key a session"):
            inbound_session(crypto)


def test_plain_session_leaves_the_packet_and_its_length_unchanged_on_the_fast_path():
    session = plain_rtp_session()
    mv, cdata, ctx = srtp_buffer(session)  # as Output.bind_transport holds it
    length = new_length_cell()
    for seq in (1, 2, 2, 3, 65535, 0):  # a resent sequence number too (NACK)
        packet = rtp(seq, os.urandom(1200))
        mv[: len(packet)] = packet
        length[0] = len(packet)
        assert protect(ctx, cdata, length) == 0
        assert length[0] == len(packet)
        assert bytes(mv[: length[0]]) == packet
    assert session.protect(rtp(7)) == rtp(7)
