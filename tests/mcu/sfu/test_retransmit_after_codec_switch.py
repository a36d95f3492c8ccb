"""A NACK for a packet sent before a codec switch is answered in the payload type it first went out
with (#13): the subscriber's depacketizer picks the codec by payload type, so the old packet in the
new codec's type would be fed to the wrong decoder. Pure unit test: Output and Stream, no socket."""

from __future__ import annotations

import struct
import time

import pytest

from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output

VP8_PT, VP8_RTX, H264_PT, H264_RTX = 96, 97, 102, 103
VP8_KEY = b"\x90\x80\x05" + b"\x00\x00\x00"  # X, S, I with 7-bit picture id; P bit 0
IDR = b"\x65" + bytes(20)  # an H.264 single NAL unit: an IDR slice


class _Sent(Output):
    """An output whose plain packets are kept (no SRTP session needed for the rewrite)."""

    def __init__(self, rtx: bool) -> None:
        super().__init__(
            endpoint_id="s",
            kind="video",
            role="main",
            ssrc=0xABCD,
            payload_type=VP8_PT,
            clock_rate=90000,
            rtx_ssrc=0xDCBA if rtx else None,
            rtx_payload_type=VP8_RTX if rtx else None,
            payload_types={"VP8": (VP8_PT, VP8_RTX if rtx else None), "H264": (H264_PT, H264_RTX if rtx else None)},
        )
        self.ready = True
        self.sent: list[bytes] = []

    def send_plain(self, packet: bytes) -> bool:
        self.sent.append(packet)
        return True


def _rtp(seq: int, ts: int, pt: int, payload: bytes) -> bytes:
    return struct.pack("!BBHII", 0x80, 0x80 | pt, seq, ts, 0x1111) + payload


def _live_on(out: Output, stream: Stream, packets: list[bytes]) -> None:
    """``out`` forwards ``stream`` from its first packet up to its last (what the router does)."""
    for p in packets:
        stream.on_rtp(p)
    first, last = (struct.unpack_from("!H", p, 2)[0] for p in (packets[0], packets[-1]))
    out.use_codec(stream.codec)
    out.source, stream.fwd_time, stream.last_seq, stream.last_ts = stream, time.monotonic(), first, 0
    out.admit(first, 0, time.monotonic())
    stream.last_seq = last


@pytest.mark.parametrize("rtx", [False, True], ids=["plain", "rtx"])
def test_a_nack_after_a_switch_to_h264_resends_the_vp8_packet_as_vp8(rtx: bool):
    vp8 = Stream(stream_id="v", endpoint_id="p", kind="video", source="camera", codec="VP8", clock_rate=90000)
    h264 = Stream(stream_id="h", endpoint_id="q", kind="video", source="camera", codec="H264", clock_rate=90000)
    out = _Sent(rtx)
    old = [_rtp(1000 + i, 0, 100, VP8_KEY + bytes([i])) for i in range(3)]
    _live_on(out, vp8, old)
    lost = (1001 + out.seq_off) & 0xFFFF  # the 2nd VP8 packet, as the subscriber numbered it
    out.freeze()
    out.source = None  # detached: the switch to the H.264 source sets its payload types
    _live_on(out, h264, [_rtp(5000 + i, 0, 101, IDR) for i in range(3)])
    assert out.pt == H264_PT

    assert out.retransmit([lost]) == 1
    resent = out.sent[-1]
    if rtx:
        assert resent[1] & 0x7F == VP8_RTX  # RFC 4588: the VP8 line's RTX type, the OSN inside
        assert struct.unpack_from("!I", resent, 8)[0] == 0xDCBA
        assert struct.unpack_from("!H", resent, 12)[0] == lost and resent[14:] == old[1][12:]
    else:
        assert resent[1] & 0x7F == VP8_PT
        assert struct.unpack_from("!H", resent, 2)[0] == lost and resent[12:] == old[1][12:]

    new_lost = (5001 + out.seq_off) & 0xFFFF  # a packet of the current epoch keeps the new types
    assert out.retransmit([new_lost]) == 1
    assert out.sent[-1][1] & 0x7F == (H264_RTX if rtx else H264_PT)
