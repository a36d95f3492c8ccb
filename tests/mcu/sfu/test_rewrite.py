"""Pure unit tests: RTP header helpers, per-subscriber rewrite, overflow policy."""

import os
import struct

import pytest
from pylibsrtp import Policy, Session

from mcu.sfu import rtp_header as rh
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output


def rtp(seq, ts, ssrc=0x1111, pt=96, payload=b"\x10\x00\x9d\x01\x2a", marker=0, ext=b""):
    b0 = 0x80 | (0x10 if ext else 0)
    return struct.pack("!BBHII", b0, (marker << 7) | pt, seq, ts, ssrc) + ext + payload


VP8_KEY = b"\x90\x80\x05" + b"\x00\x00\x00"  # X, S, I with 7-bit picture id; P bit 0
VP8_DELTA = b"\x90\x80\x06" + b"\x01\x00\x00"  # P bit 1
VP8_CONT = b"\x80\x80\x05" + b"\x00\x00\x00"  # not a partition start


class FakeSock:
    def __init__(self, fail=False):
        self.sent = []
        self.fail = fail

    def sendto(self, data, addr):
        if self.fail:
            raise BlockingIOError
        self.sent.append(bytes(data))


def make_output(sock, key, ssrc=0xABCD, pt=100, kind="video"):
    out = Output(endpoint_id="s", kind=kind, role="main", ssrc=ssrc, payload_type=pt, clock_rate=90000)
    policy = Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)
    policy.allow_repeat_tx = True  # as aiortc sets it: NACK answers without RTX reuse seqs
    out.bind_transport(Session(policy), sock, ("127.0.0.1", 9))
    return out


def decrypt(key, packets):
    rx = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    return [rx.unprotect(p) for p in packets]


def test_header_helpers():
    ext = bytes((0xBE, 0xDE, 0, 1, 0x10, 0x85, 0, 0))  # id 1, level 5 with V flag
    data = rtp(7, 1000, ext=ext, payload=VP8_KEY)
    ext_start, ext_end, off, end = rh.payload_bounds(data)
    assert (ext_start, ext_end, off, end) == (12, 20, 20, len(data))
    assert rh.audio_level(data, ext_start, ext_end, 1) == 5
    assert rh.audio_level(data, ext_start, ext_end, 2) is None
    assert rh.vp8_keyframe_start(data, off, end)
    d = rtp(8, 1000, payload=VP8_DELTA)
    assert not rh.vp8_keyframe_start(d, 12, len(d))
    c = rtp(9, 1000, payload=VP8_CONT)
    assert not rh.vp8_keyframe_start(c, 12, len(c))
    # H.264: STAP-A with SPS, FU-A start of IDR, non-IDR slice
    stap = bytes([24, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xCE])
    assert rh.h264_keyframe_parts(stap, 0, len(stap))
    assert rh.h264_keyframe_parts(bytes([28, 0x85, 0]), 0, 3)
    assert not rh.h264_keyframe_parts(bytes([28, 0x05, 0]), 0, 3)
    assert not rh.h264_keyframe_parts(bytes([0x41, 0]), 0, 2)
    with pytest.raises(ValueError):
        rh.payload_bounds(b"\x80" * 5)


def test_feedback_roundtrip():
    packet = rh.pli(1, 2) + rh.nack(1, 3, [100, 101, 117, 200]) + rh.fir(1, 4, 9)
    items = rh.parse_feedback(packet)
    assert ("pli", 2) in items and ("fir", 4) in items
    nack = next(i for i in items if i[0] == "nack")
    assert nack[1] == 3 and sorted(nack[2]) == [100, 101, 117, 200]


def test_switch_keeps_seq_and_ts_continuous_and_starts_on_keyframe():
    key = os.urandom(30)
    sock = FakeSock()
    out = make_output(sock, key)
    a = Stream(stream_id="a", endpoint_id="a", kind="video", source="camera", codec="VP8", clock_rate=90000)
    b = Stream(stream_id="b", endpoint_id="b", kind="video", source="camera", codec="VP8", clock_rate=90000)
    a.add_output(out)
    a.on_rtp(rtp(10, 5000, ssrc=1, payload=VP8_DELTA))  # not a key frame: waits
    assert sock.sent == []
    a.on_rtp(rtp(11, 8000, ssrc=1, payload=VP8_KEY))
    a.on_rtp(rtp(12, 8000, ssrc=1, payload=VP8_CONT, marker=1))
    a.on_rtp(rtp(13, 11000, ssrc=1, payload=VP8_DELTA))
    assert len(sock.sent) == 3
    a.remove_output(out)
    b.add_output(out)
    b.on_rtp(rtp(40000, 777, ssrc=2, payload=VP8_DELTA))  # waits for b's key frame
    b.on_rtp(rtp(40001, 3777, ssrc=2, payload=VP8_KEY))
    b.on_rtp(rtp(40002, 6777, ssrc=2, payload=VP8_DELTA))
    plain = decrypt(key, sock.sent)
    hdr = [struct.unpack_from("!BBHII", p) for p in plain]
    seqs = [h[2] for h in hdr]
    assert all(h[4] == 0xABCD and h[1] & 0x7F == 100 for h in hdr)
    assert [(s - seqs[0]) & 0xFFFF for s in seqs] == [0, 1, 2, 3, 4]
    tss = [h[3] for h in hdr]
    assert tss[1] == tss[0] and (tss[2] - tss[1]) & 0xFFFFFFFF == 3000
    assert 0 < (tss[3] - tss[2]) & 0xFFFFFFFF < 90000  # forward, by about the elapsed time
    assert (tss[4] - tss[3]) & 0xFFFFFFFF == 3000
    assert plain[3][12:] == VP8_KEY  # the new source starts with its key frame


def test_stalled_subscriber_drops_without_affecting_others():
    key = os.urandom(30)
    good, bad = FakeSock(), FakeSock(fail=True)
    s = Stream(
        stream_id="a", endpoint_id="a", kind="audio", source="mic", codec="OPUS", clock_rate=48000, audio_level_id=1
    )
    o1 = make_output(good, key, ssrc=5, pt=111, kind="audio")
    o2 = make_output(bad, key, ssrc=6, pt=111, kind="audio")
    s.add_output(o1)
    s.add_output(o2)
    ext = bytes((0xBE, 0xDE, 0, 1, 0x10, 30, 0, 0))
    for i in range(50):
        s.on_rtp(rtp(i, i * 960, pt=109, ext=ext, payload=b"opus"))
    assert len(good.sent) == 50 and o2.dropped == 50 and o1.dropped == 0
    assert s.take_level() == 30


def test_nack_answered_from_cache_with_rtx():
    key = os.urandom(30)
    sock = FakeSock()
    out = Output(
        endpoint_id="s",
        kind="video",
        role="main",
        ssrc=7,
        payload_type=100,
        clock_rate=90000,
        rtx_ssrc=8,
        rtx_payload_type=101,
    )
    out.bind_transport(Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND)), sock, None)
    s = Stream(stream_id="a", endpoint_id="a", kind="video", source="camera", codec="VP8", clock_rate=90000)
    s.add_output(out)
    s.on_rtp(rtp(100, 0, payload=VP8_KEY))
    s.on_rtp(rtp(101, 0, payload=VP8_CONT + b"abc"))
    lost = (101 + out.seq_off) & 0xFFFF
    assert out.retransmit([lost, (lost + 500) & 0xFFFF]) == 1
    rtx = decrypt(key, sock.sent)[-1]
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", rtx)
    assert ssrc == 8 and b1 & 0x7F == 101
    assert struct.unpack_from("!H", rtx, 12)[0] == lost and rtx[14:] == VP8_CONT + b"abc"


def test_new_subscriber_gets_cached_keyframe_at_once():
    key = os.urandom(30)
    s = Stream(stream_id="a", endpoint_id="a", kind="video", source="camera", codec="VP8", clock_rate=90000)
    first = make_output(FakeSock(), key, ssrc=1)
    s.add_output(first)
    s.on_rtp(rtp(500, 9000, payload=VP8_KEY))
    s.on_rtp(rtp(501, 9000, payload=VP8_CONT, marker=1))
    s.on_rtp(rtp(502, 12000, payload=VP8_DELTA))
    sock = FakeSock()
    late = make_output(sock, key, ssrc=2)
    s.add_output(late)  # joins between key frames: replay from the cache, no waiting
    assert late.live and len(sock.sent) == 3
    plain = decrypt(key, sock.sent)
    assert plain[0][12:] == VP8_KEY
    s.on_rtp(rtp(503, 15000, payload=VP8_DELTA))
    seqs = [struct.unpack_from("!H", p, 2)[0] for p in decrypt(key, sock.sent)]
    assert [(x - seqs[0]) & 0xFFFF for x in seqs] == [0, 1, 2, 3]


def test_speaker_detector_hysteresis():
    from mcu.meeting.speaker import SpeakerDetector

    d = SpeakerDetector()
    assert d.tick({"a": 20.0, "b": 127.0}, 0.0) == "a"
    assert d.tick({"a": 20.0, "b": 15.0}, 0.25) is None  # b must stay louder for a while
    changed = [d.tick({"a": 60.0, "b": 15.0}, 0.25 * i) for i in range(2, 8)]
    assert "b" in changed and d.speaker == "b"
    assert d.tick({"b": 15.0}, 3.0) is None and d.speaker == "b"
    d.forget("b")
    assert d.speaker is None


def test_loss_on_the_way_in_is_nacked_and_rtx_restored():
    key = os.urandom(30)
    nacks = []
    s = Stream(
        stream_id="a",
        endpoint_id="a",
        kind="video",
        source="camera",
        codec="VP8",
        clock_rate=90000,
        send_nack=lambda st, seqs: nacks.append(list(seqs)),
    )
    s.ssrc = 0x1111
    sock = FakeSock()
    out = make_output(sock, key, ssrc=9)
    s.add_output(out)
    s.on_rtp(rtp(10, 0, payload=VP8_KEY))
    s.on_rtp(rtp(13, 3000, payload=VP8_DELTA))  # 11 and 12 lost upstream
    assert nacks == [[11, 12]]
    # a subscriber NACKs 11 too: not in the cache, and already asked for: no second NACK
    out.retransmit([(11 + out.seq_off) & 0xFFFF])
    assert nacks == [[11, 12]]
    # the publisher's RTX for 11 (OSN + payload, its own SSRC and payload type)
    rtx_packet = struct.pack("!BBHII", 0x80, 97, 500, 0, 0x2222) + struct.pack("!H", 11) + b"late"
    s.on_rtx(rtx_packet)
    assert s.rtx_received == 1 and s.late == 1
    plain = decrypt(key, sock.sent)
    restored = plain[-1]
    seq = struct.unpack_from("!H", restored, 2)[0]
    assert seq == (11 + out.seq_off) & 0xFFFF and restored[12:] == b"late"
    assert restored[1] & 0x7F == out.pt
    assert s.cached(11) is not None


def vp8(pid, key):
    return bytes((0x90, 0x80, 0x80 | (pid >> 8), pid & 0xFF, 0x00 if key else 0x01, 0, 0))


def test_vp8_picture_ids_continuous_across_switch():
    key = os.urandom(30)
    sock = FakeSock()
    out = make_output(sock, key)
    a = Stream(stream_id="a", endpoint_id="a", kind="video", source="camera", codec="VP8", clock_rate=90000)
    b = Stream(stream_id="b", endpoint_id="b", kind="video", source="camera", codec="VP8", clock_rate=90000)
    a.add_output(out)
    a.on_rtp(rtp(1, 0, payload=vp8(32760, True)))
    a.on_rtp(rtp(2, 3000, payload=vp8(32761, False)))
    a.on_rtp(rtp(3, 6000, payload=vp8(32762, False)))  # wraps at 2^15 downstream too
    a.remove_output(out)
    b.add_output(out)
    b.on_rtp(rtp(900, 0, payload=vp8(5, True)))
    b.on_rtp(rtp(901, 3000, payload=vp8(6, False)))
    pids = [struct.unpack_from("!H", p, 14)[0] & 0x7FFF for p in decrypt(key, sock.sent)]
    assert [(x - pids[0]) & 0x7FFF for x in pids] == [0, 1, 2, 3, 4]
    # a NACK answer carries the same rewritten picture id as the original
    assert out.retransmit([(901 + out.seq_off) & 0xFFFF]) == 1
    resent = decrypt(key, sock.sent[-1:])[0]
    assert struct.unpack_from("!H", resent, 14)[0] & 0x7FFF == pids[-1]
