"""Seeded hostile UDP datagrams for the receive paths (the media node's and the agent's ports):
empty, one byte, and STUN, DTLS and RTP/RTCP look-alikes whose headers lie about their lengths."""

from __future__ import annotations

import random
import struct

STUN_COOKIE = 0x2112A442


def stun_like(rng: random.Random) -> bytes:
    """A STUN header with a (mostly) matching length and attributes of bogus lengths."""
    attrs = b""
    for _ in range(rng.randrange(4)):
        # PRIORITY (4 bytes), USERNAME, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT...
        kind = rng.choice((0x0024, 0x0006, 0x0020, 0x0008, 0x8028, 0x0009, 0x8029, 0x0001))
        value = rng.randbytes(rng.randrange(9))
        attrs += struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)
    length = len(attrs) if rng.random() < 0.8 else rng.randrange(65536)
    method = rng.choice((0x0001, 0x0101, 0x0111, 0x0003, rng.randrange(0x4000)))
    return struct.pack("!HHI", method, length, STUN_COOKIE) + rng.randbytes(12) + attrs


def dtls_like(rng: random.Random) -> bytes:
    """A DTLS record header (content type 20-25) with a bogus length and garbage body."""
    head = struct.pack(
        "!BHH6sH",
        rng.choice((20, 21, 22, 23, 25, rng.randrange(20, 64))),
        rng.choice((0xFEFD, 0xFEFF, rng.randrange(65536))),
        rng.randrange(3),
        rng.randbytes(6),
        rng.randrange(65536),
    )
    return (head + rng.randbytes(rng.randrange(200)))[: rng.choice((1, 5, 12, 13, 40, 300))]


def rtp_like(rng: random.Random) -> bytes:
    """An RTP/RTCP header: truncated, CSRC count and extension length past the end, or an
    RTCP packet type with a length field that lies."""
    b0 = 0x80 | rng.randrange(64)
    b1 = rng.choice((rng.randrange(256), rng.randrange(192, 209), 96, 111))
    body = struct.pack("!BBH", b0, b1, rng.randrange(65536)) + rng.randbytes(rng.randrange(40))
    if rng.random() < 0.3:  # extension header claiming 65535 words
        body = body[:12].ljust(12, b"\0") + b"\xbe\xde\xff\xff" + rng.randbytes(rng.randrange(8))
    return body[: rng.choice((2, 4, 8, 11, 12, 13, len(body)))]


def hostile(rng: random.Random) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:
        return b""
    if kind == 1:
        return rng.randbytes(1)
    if kind == 2:
        return stun_like(rng)
    if kind == 3:
        return dtls_like(rng)
    if kind in (4, 5):
        return rtp_like(rng)
    return rng.randbytes(rng.choice((2, 7, 19, 20, 64, 1200, 1500)))
