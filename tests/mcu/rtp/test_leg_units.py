"""The SIP leg's I/O-free parts: RTCP it writes and reads, DTMF events, the room's audio as Opus
with levels, whom it may latch to, the rendition a bandwidth takes."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from mcu.audio.telephony import TelephonyEncoder
from mcu.audio.codec import make_frame
from mcu.bridge.depacketize import opus_payload
from mcu.rtp.video_caps import answered_baseline, decodable_rendition, fitting_rendition, rendition_ceiling_bps
from mcu.rtp.ports import RtpPorts, address_problem, may_latch_anywhere
from mcu.rtp.room_audio import LEVEL_ID, DtmfReceiver, RoomMic
from mcu.rtp.rtcp import (
    ReceptionTiming,
    sdes_cname,
    sender_report,
    sender_report_times,
    tmmbn,
    tmmbr_limits,
    tmmbr_requests,
)
from mcu.sfu.rtp_header import FEEDBACK_RR, parse_feedback

pytestmark = pytest.mark.unit


def rtp(pt: int, seq: int, ts: int, payload: bytes, marker: bool = False) -> bytes:
    return struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq, ts, 0x1234) + payload


def test_sender_report_carries_the_blocks_the_room_reads():
    packet = sender_report(7, 0x0102030405060708, 90000, 100, 120000, [(0xABC, 26, 3, 5000)])
    assert packet[1] == 200 and len(packet) == 28 + 24 and (packet[0] & 0x1F) == 1
    assert struct.unpack_from("!QIII", packet, 8) == (0x0102030405060708, 90000, 100, 120000)
    assert parse_feedback(packet) == [(FEEDBACK_RR, 0xABC, 26)]
    cname = sdes_cname(7, "room@giaoban")
    assert len(cname) % 4 == 0 and cname[1] == 202 and b"room@giaoban" in cname


def test_report_blocks_carry_jitter_lsr_and_dlsr():
    timing = ReceptionTiming(8000)
    for n in range(50):  # 20 ms packets, every other one 10 ms late
        timing.packet(n * 160, n * 0.02 + (0.01 if n % 2 else 0))
    sr = sender_report(9, 0x0001_2345_6789_0000, 0, 1, 1, [])
    assert sender_report_times(sr) == [(9, 0x23456789)]
    timing.sender_report(0x23456789, 100.0)
    jitter, lsr, dlsr = timing.block_tail(100.5)
    assert 60 < jitter <= 80 and lsr == 0x23456789 and dlsr == 32768  # jitter tends to 80 (10 ms)
    packet = sender_report(7, 0, 0, 0, 0, [(5, 0, 0, 100, jitter, lsr, dlsr)])
    assert struct.unpack_from("!IIIIII", packet, 28) == (5, 0, 100, jitter, 0x23456789, 32768)


def test_tmmbr_is_read_as_a_bitrate_cap():
    exp, mantissa = 4, 40_000  # 640 kbit/s
    fci = struct.pack("!II", 0xBEEF, exp << 26 | mantissa << 9 | 40)
    packet = struct.pack("!BBHII", 0x83, 205, 4, 1, 0) + fci
    assert tmmbr_limits(packet) == [(0xBEEF, 640_000)]
    ack = tmmbn(0xBEEF, tmmbr_requests(packet))  # the bounding set: the requester (SSRC 1) and its limit
    assert ack[0] & 0x1F == 4 and ack[1] == 205 and ack[12:] == struct.pack("!I", 1) + fci[4:]
    assert tmmbr_limits(b"\x80\xc9\x00") == [] and tmmbr_limits(bytes(40)) == []


def test_dtmf_one_digit_per_event_despite_three_end_packets():
    dtmf = DtmfReceiver()
    got = []
    for ts, event in ((1000, 5), (2000, 11)):
        for end in (False, False, True, True, True):
            got.append(dtmf.push(rtp(101, 1, ts, struct.pack("!BBH", event, (0x80 if end else 0) | 10, 800))))
    assert [d for d in got if d] == ["5", "#"]
    assert dtmf.push(rtp(101, 1, 3000, b"\x05")) is None  # too short
    assert dtmf.push(rtp(101, 1, 3000, struct.pack("!BBH", 99, 0x80, 800))) is None  # not a digit


def test_the_rooms_pcmu_becomes_opus_with_its_level():
    mic = RoomMic("room", "room/mic", "PCMU")
    encoder = TelephonyEncoder("PCMU")
    t = np.arange(960 * 10) / 48000
    tone = (np.sin(2 * np.pi * 440 * t) * 0.5).astype(np.float32)
    got: list[bytes] = []
    mic.stream.add_tap(got.append)
    for i in range(10):
        mic.push(rtp(0, i, i * 160, encoder.encode_frame(make_frame(tone[i * 960 : (i + 1) * 960]))))
    assert len(got) >= 8
    parsed = opus_payload(got[-1], LEVEL_ID)
    assert parsed is not None and parsed[3] is not None and parsed[3] < 15  # -dBov of a loud tone
    assert mic.stream.codec == "OPUS" and mic.stream.packets == len(got)


def test_whom_a_leg_may_latch_to():
    assert may_latch_anywhere("192.168.1.20") and may_latch_anywhere("10.0.0.5") and may_latch_anywhere("100.64.1.1")
    assert may_latch_anywhere("0.0.0.0")
    assert not may_latch_anywhere("127.0.0.1") and not may_latch_anywhere("81.2.69.160")


def test_addresses_a_leg_never_sends_to():
    public = {"81.2.69.1"}
    assert address_problem("224.0.0.5", public) == "a multicast address"
    assert address_problem("ff02::1", public) == "a multicast address"
    assert address_problem("255.255.255.255", public) == "a broadcast or reserved address"
    assert address_problem("127.0.0.1", public) == "a loopback address"
    assert address_problem("127.0.0.1", {"0.0.0.0"}) == "a loopback address"
    assert address_problem("127.0.0.1", {"127.0.0.1"}) is None  # we are on loopback too (tests)
    assert address_problem("81.2.69.1", public) == "this server's own address"
    assert address_problem("0.0.0.0", public) is None  # the old hold: nothing is sent
    assert address_problem("192.168.1.20", public) is None and address_problem("81.2.69.160", public) is None


def test_nothing_is_sent_before_the_room_proves_its_address():
    audio = RtpPorts("127.0.0.1", "a")
    video = RtpPorts("127.0.0.1", "v", audio.proven)  # the leg's lines share what proved itself
    audio.accept = video.accept = lambda data, rtcp: True
    audio.expect("81.2.69.160", 4000, 4001, srtp=False)
    video.expect("81.2.69.160", 4002, 4003, srtp=False)
    assert audio.rtp_to == ("81.2.69.160", 4000)
    assert (audio.rtp_dest, audio.rtcp_dest, video.rtp_dest) == (None, None, None)
    audio.received(rtp(0, 1, 160, b"\x00" * 160), ("81.2.69.160", 4000), rtcp=False)
    assert audio.rtp_dest == ("81.2.69.160", 4000) and audio.rtcp_dest == ("81.2.69.160", 4001)
    assert video.rtp_dest == ("81.2.69.160", 4002)  # a camera that is off still gets the composite


def test_a_reinvite_with_the_same_address_keeps_the_latch():
    ports = RtpPorts("127.0.0.1", "x")
    ports.accept = lambda data, rtcp: True
    packet = rtp(0, 1, 160, b"\x00" * 160)
    ports.expect("192.168.1.9", 6000, 6001, srtp=False)  # behind a NAT
    ports.received(packet, ("81.2.69.7", 7000), rtcp=False)
    ports.expect("192.168.1.9", 6000, 6001, srtp=False)  # the session refresh 15 min later
    assert ports.latched_rtp and ports.rtp_dest == ("81.2.69.7", 7000)
    ports.received(packet, ("81.2.69.99", 7000), rtcp=False)  # a stranger may not latch again
    assert ports.foreign == 1 and ports.rtp_dest == ("81.2.69.7", 7000)


def test_the_rendition_that_fits_a_bandwidth():
    assert [fitting_rendition(k) for k in (2000, 1200, 600, 300, 50)] == ["720p", "720p", "360p", "180p", "180p"]


def test_latching_rules_of_a_port_pair():
    ports = RtpPorts("127.0.0.1", "x")  # not opened: only its bookkeeping
    ports.accept = lambda data, rtcp: True
    packet = rtp(0, 1, 160, b"\x00" * 160)
    ports.expect("81.2.69.160", 4000, 4001, srtp=False)  # a public address: only that host may latch
    ports.received(packet, ("81.2.69.99", 4000), rtcp=False)
    assert ports.foreign == 1 and not ports.latched_rtp
    ports.received(packet, ("81.2.69.160", 5004), rtcp=False)  # its host, another port (a NAT's): taken
    assert ports.latched_rtp and ports.rtp_to == ("81.2.69.160", 5004)
    ports.received(packet, ("81.2.69.160", 4000), rtcp=False)  # latched: nothing else
    assert ports.foreign == 2
    ports.received(b"\x80", ("81.2.69.160", 5004), rtcp=False)
    assert ports.garbage == 1
    ports.expect("0.0.0.0", 4000, 4001, srtp=False)  # held the old way: where it sends stays
    assert ports.rtp_to == ("81.2.69.160", 5004) and ports.latched_rtp
    ports.expect("192.168.1.9", 6000, 6001, srtp=False)  # moved behind a NAT: any host may latch, once
    assert not ports.latched_rtp and ports.rtp_to == ("192.168.1.9", 6000)
    ports.received(packet, ("81.2.69.7", 7000), rtcp=False)
    assert ports.rtp_to == ("81.2.69.7", 7000) and ports.rtcp_to == ("81.2.69.7", 7001)


def test_a_muted_rooms_silence_is_neither_decoded_nor_encoded():
    mic = RoomMic("room", "room/mic", "PCMU")
    got: list[bytes] = []
    mic.stream.add_tap(got.append)
    for i in range(10):
        mic.push(rtp(0, i, i * 160, b"\xff" * 160))
    assert len(got) == 10 and mic._decoder.calls == 0
    parsed = opus_payload(got[-1], LEVEL_ID)
    assert parsed is not None and parsed[3] == 127 and len(set(p[24:] for p in got)) == 1  # one silence packet


@pytest.mark.parametrize(
    "fmtp, rendition",
    [
        ({"profile-level-id": "42e00d"}, "180p"),  # CIF, level 1.3
        ({"profile-level-id": "42e015"}, "180p"),  # level 2.1: 792 macroblocks, 360p needs 920
        ({"profile-level-id": "42e01e"}, "360p"),  # 4CIF, level 3.0
        ({"profile-level-id": "42e01f"}, "720p"),
        ({"profile-level-id": "640028"}, "720p"),
        ({"profile-level-id": "42e01e", "max-fs": "3600"}, "360p"),  # 720p at 30 fps needs 108000 MB/s
        ({"profile-level-id": "42e01e", "max-fs": "3600", "max-mbps": "108000"}, "720p"),
        ({"profile-level-id": "42e00a"}, "180p"),  # too small for any: the smallest
    ],
)
def test_the_largest_composite_a_rooms_h264_level_decodes(fmtp, rendition):
    assert decodable_rendition(fmtp) == rendition


def test_the_answered_h264_level_is_never_above_the_offered_one():
    levels = [answered_baseline({"profile-level-id": p}) for p in ("42e00d", "42801e", "42e028", "42f00b", "4d001f")]
    assert levels == ["42e00d", "42e01e", "42e01f", "42f00b", "42e01f"]
    assert rendition_ceiling_bps("720p") is None and rendition_ceiling_bps("360p") < 1_200_000 * 1.3
