"""Pure unit tests of the MCU path: (de)packetizing, policy, rendition hysteresis, feedback."""

import struct
import time
from fractions import Fraction

import av
import numpy as np
import pytest

from mcu.sfu import rtp_header as rh
from mcu.bridge.depacketize import Vp8Assembler, opus_payload
from mcu.bridge.packetize import VP8_MAX_PAYLOAD, Packetizer
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output
from mcu.bridge.rendition_policy import SFU_ONLY, RenditionController, media_mode, start_rendition
from mcu.api import PeerSpec


def vp8_frames(n: int = 3, size: int = 320) -> list[tuple[bytes, bool]]:
    ctx = av.CodecContext.create("libvpx", "w")
    ctx.width, ctx.height, ctx.pix_fmt = size, size * 3 // 4, "yuv420p"
    ctx.time_base = Fraction(1, 30)
    ctx.bit_rate = 2_000_000
    ctx.options = {"deadline": "realtime", "lag-in-frames": "0"}
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        img = rng.integers(0, 255, (ctx.height, ctx.width, 3), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [(bytes(p), p.is_keyframe) for p in ctx.encode(frame)]
    return out


def test_vp8_packetize_then_assemble_round_trip():
    frames = vp8_frames()
    assert len(frames[0][0]) > 2 * VP8_MAX_PAYLOAD  # several packets per frame
    pk, asm = Packetizer(), Vp8Assembler()
    got = []
    for i, (data, key) in enumerate(frames):
        packets = pk.vp8(data, i * 3000)
        assert rh.vp8_keyframe_start(packets[0], 12, len(packets[0])) == key
        assert rh.vp8_picture_id(packets[0], 12) == rh.vp8_picture_id(packets[-1], 12) >= 0
        assert [p[1] >> 7 for p in packets] == [0] * (len(packets) - 1) + [1]  # marker last
        for p in packets:
            f = asm.push(p)
            if f is not None:
                got.append(f)
    assert [(f.payload, f.keyframe, f.timestamp) for f in got] == [(d, k, i * 3000) for i, (d, k) in enumerate(frames)]


def test_assembler_drops_a_frame_with_a_hole_until_the_next_keyframe():
    frames = vp8_frames(3)
    pk, asm = Packetizer(), Vp8Assembler()
    key = pk.vp8(frames[0][0], 0)
    assert [asm.push(p) for p in key][-1] is not None
    delta = pk.vp8(frames[1][0], 3000)
    lost = [asm.push(p) for i, p in enumerate(delta) if i != len(delta) // 2]
    assert lost == [None] * len(lost) and asm.need_keyframe and asm.dropped == 1
    later = pk.vp8(frames[2][0], 6000)
    assert [asm.push(p) for p in later][-1] is None  # a delta after a hole is useless
    again = pk.vp8(frames[0][0], 9000)
    assert [asm.push(p) for p in again][-1].keyframe and not asm.need_keyframe


def test_opus_payload_reads_the_rfc6464_level():
    packet = struct.pack("!BBHII", 0x90, 111, 7, 960, 1) + rh.audio_level_extension(1, 33) + b"\x78opus"
    assert opus_payload(packet, 1) == (b"\x78opus", 7, 960, 33)
    assert opus_payload(packet, 0)[3] is None


def spec(link, **extra):
    return PeerSpec("m", "e", "e", "participant", link, True, extra)


def test_policy_defaults_by_link_and_overrides():
    assert media_mode(spec("fibre")) == "sfu"
    assert media_mode(spec("thin")) == media_mode(spec("mobile")) == "mcu"
    assert media_mode(spec("thin"), SFU_ONLY) == "sfu"
    assert media_mode(spec("fibre", media_mode="both")) == "both"
    with pytest.raises(ValueError):
        media_mode(spec("fibre", media_mode="all"))
    assert [start_rendition(spec(x)) for x in ("fibre", "thin", "mobile")] == ["720p", "360p", "180p"]


def test_start_rendition_reads_the_edge_key_of_either_version():
    assert start_rendition(spec("fibre", start_rendition="180p")) == "180p"
    assert start_rendition(spec("fibre", start_tier="180p")) == "180p"  # an edge node before #12
    assert start_rendition(spec("thin", start_rendition="720p", start_tier="180p")) == "720p"
    assert start_rendition(spec("thin", start_rendition="4k")) == "360p"  # unknown: the link class's


def test_rendition_controller_hysteresis():
    c = RenditionController("360p", since=0.0)
    assert c.update(2.0, 200, None) == "360p"  # holding after the (initial) switch
    for t in (3.0, 3.5):
        assert c.update(t, 40, None) == "360p"  # bad for less than DOWN_AFTER (1 s)
    assert c.update(4.0, 40, None) == "180p"
    assert c.update(7.5, 60, None) == "180p"
    for t in range(8, 18):
        assert c.update(float(t), 2, None) == "180p"  # clean, but less than 10 s
    assert c.update(18.0, 2, None) == "360p"
    # below 180p: audio only; a clean period probes the smallest video rendition again
    c = RenditionController("180p", since=0.0)
    assert [c.update(t, 60, None) for t in (3.0, 5.0, 6.0)] == ["180p", "180p", "audio"]
    assert c.update(20.0, 0, None) == "audio" and c.update(30.0, 0, None) == "180p"
    # a REMB estimate below the rendition's bitrate counts when some loss confirms it
    c = RenditionController("720p", since=0.0)
    assert [c.update(t, 0, 500_000) for t in (3.0, 6.0)] == ["720p", "720p"]
    assert [c.update(t, 8, 500_000) for t in (7.0, 8.0)] == ["720p", "360p"]
    # going up waits for headroom in the estimate
    assert all(c.update(10.0 + t, 0, 1_000_000) == "360p" for t in range(15))


def test_remb_is_parsed_per_ssrc():
    items = rh.parse_feedback(rh.remb(1, 345_678, [11, 22]))
    assert [(i[0], i[1]) for i in items] == [("remb", 11), ("remb", 22)]
    assert abs(items[0][2] - 345_678) / 345_678 < 0.01


class _Sent(Output):
    def __init__(self) -> None:
        super().__init__(endpoint_id="s", kind="video", role="composite", ssrc=5, payload_type=96, clock_rate=90000)
        self.ready = True
        self.sent: list[bytes] = []

    def send_plain(self, packet: bytes) -> bool:
        self.sent.append(packet)
        return True


def _stream(name: str) -> Stream:
    return Stream(stream_id=name, endpoint_id="mcu", kind="video", source="composite", codec="VP8", clock_rate=90000)


def test_nack_after_a_switch_is_answered_from_the_previous_source_once():
    old, new = _stream("mcu:360p"), _stream("mcu:180p")
    pk_old, pk_new = Packetizer(), Packetizer()
    out = _Sent()
    frames = vp8_frames(1, 160)
    old_packets = pk_old.vp8(frames[0][0], 0)
    for p in old_packets:
        old.on_rtp(p)
    first = struct.unpack_from("!H", old_packets[0], 2)[0]
    out.source, old.fwd_time, old.last_seq, old.last_ts = old, time.monotonic(), first, 0
    out.admit(first, 0, time.monotonic())
    old.last_seq = struct.unpack_from("!H", old_packets[-1], 2)[0]
    lost_out = (first + out.seq_off + 1) & 0xFFFF  # the 2nd packet, as the subscriber saw it
    out.freeze()
    new_packets = pk_new.vp8(frames[0][0], 0)
    for p in new_packets:
        new.on_rtp(p)
    out.source = new
    out.admit(struct.unpack_from("!H", new_packets[0], 2)[0], 0, time.monotonic())
    assert out.retransmit([lost_out]) == 1
    resent = out.sent[-1]
    assert struct.unpack_from("!H", resent, 2)[0] == lost_out
    assert resent[16:] == old_packets[1][16:]  # the old rendition's packet, not the new one's
    assert out.retransmit([lost_out]) == 0  # repeated NACK within RESEND_INTERVAL: not resent
    assert out.nacked == 1
