"""What a SIP leg does besides media in and out: DTMF, hold and resume, a re-INVITE's codec
change, chair mute, key frames, latching behind a NAT, bad datagrams, the media timeout, the
starting rendition from b=AS, a VP8-only laptop seeing the room's H.264 camera, refusals."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

import mcu.rtp.leg as leg_module
from mcu.api import OfferRefused
from mcu.node import LocalMediaNode
from mcu.rtp.rtcp import sender_report
from mcu.sfu.rtp_header import nack, receiver_report
from tests.mcu.bridge.helpers import MixClient, tone_power
from tests.mcu.rtp.test_leg import RED, Events, is_red, join_room, room_spec
from tests.support.media_clients import PatternTrack, wait_for
from tests.support.rtp_room import RtpRoom

pytestmark = pytest.mark.integration


def heard(room: RtpRoom, hz: float) -> float:
    """Share of the last second of the room's mix at ``hz``."""
    return tone_power(room.pcm(1.0), hz) if room.pcm(1.0).size >= 48000 else 0.0


async def test_dtmf_digits_reach_the_sink_once_per_event(local_media_node):
    events = Events()
    room = RtpRoom(video=False)
    try:
        await join_room(local_media_node, room, events)
        for digit in "1#":
            room.send_dtmf(digit)
            await asyncio.sleep(0.05)
        assert await wait_for(lambda: len(events.of("dtmf")) >= 2, 3)
        await asyncio.sleep(0.2)
        assert [e["digit"] for e in events.of("dtmf")] == ["1", "#"]  # three end packets each: one event
    finally:
        await room.stop()


async def test_hold_stops_our_sending_and_resume_brings_the_composite_back(local_media_node):
    room = RtpRoom()
    try:
        leg = await join_room(local_media_node, room)
        assert await wait_for(lambda: room.frames_decoded > 5 and room.audio_packets > 20, 15)
        answer = await leg.handle_offer(room.offer("sendonly"))  # the room holds the call
        assert "a=recvonly" in answer
        await room.apply_answer(answer)
        await asyncio.sleep(0.3)  # what was on its way
        video, audio = room.video_packets, room.audio_packets
        await asyncio.sleep(1.0)
        assert (room.video_packets, room.audio_packets) == (video, audio)
        assert all(line.discard.packets > 0 for line in leg.lines.values())
        frames = room.frames_decoded
        await room.apply_answer(await leg.handle_offer(room.offer("sendrecv")))
        assert await wait_for(lambda: room.frames_decoded > frames + 5 and room.audio_packets > audio + 20, 10)
    finally:
        await room.stop()


async def test_reinvite_changes_the_audio_codec_and_mute_takes_the_room_out_of_the_mix(local_media_node):
    node = local_media_node
    a, b = RtpRoom(video=False, tone_hz=440), RtpRoom(video=False, audio="G722", tone_hz=880)
    try:
        leg_a = await join_room(node, a, endpoint="a")
        leg_b = await join_room(node, b, endpoint="b")
        assert await wait_for(lambda: heard(b, 440) > 0.3 and heard(a, 880) > 0.3, 10)
        ports = [line.ports.port for line in leg_a.lines.values()]
        a.use_audio("PCMA")
        answer = await leg_a.handle_offer(a.offer())
        assert "a=rtpmap:8 PCMA/8000" in answer
        await a.apply_answer(answer)
        assert [line.ports.port for line in leg_a.lines.values()] == ports  # the answer keeps its ports
        assert leg_a.spec.extra.get("audio_codec") == "PCMA"
        assert await wait_for(lambda: node.meetings["m"].mcu.mixes["a"].stream.codec == "PCMA", 5)
        await asyncio.sleep(1.2)
        assert heard(a, 880) > 0.3 and heard(b, 440) > 0.3  # both ways, in PCMA
        await leg_a.set_muted("audio", True)  # the chair mutes room a
        await asyncio.sleep(1.2)
        assert heard(b, 440) < 0.05
        await leg_b.close()
        await leg_b.close()  # idempotent
        assert all(line.ports.closed for line in leg_b.lines.values()) and "b" not in node.meetings["m"].peers
    finally:
        await a.stop()
        await b.stop()


async def test_keyframes_both_ways(local_media_node):
    events = Events()
    room = RtpRoom()
    try:
        leg = await join_room(local_media_node, room, events)
        assert await wait_for(lambda: room.frames_decoded > 5, 15)
        leg.streams["1"].request_keyframe()  # a subscriber of its camera lost a picture
        assert await wait_for(lambda: room.keyframe_requests >= 1, 3)  # RTCP PLI + FIR reached the room
        assert await wait_for(lambda: len(events.of("keyframe_wanted")) == 1, 3)  # and the gateway (SIP INFO)
        composite = leg.outputs["1"].source
        before = composite.keyframes
        await asyncio.sleep(0.5)
        await leg.request_keyframe()  # SIP INFO picture_fast_update
        assert await wait_for(lambda: composite.keyframes > before, 3)
    finally:
        await room.stop()


async def test_the_rooms_rtcp_reaches_the_composite_output(local_media_node):
    room = RtpRoom(srtp=True)
    try:
        leg = await join_room(local_media_node, room)
        assert await wait_for(lambda: room.frames_decoded > 5, 15)
        out = leg.outputs["1"]
        ssrc = room.media_ssrc["video"]
        assert ssrc == out.ssrc
        tmmbr = struct.pack("!BBHIIII", 0x83, 205, 4, 1, 0, ssrc, 4 << 26 | 31_250 << 9 | 40)  # 500 kbit/s
        room.send_rtcp("video", receiver_report(1, [(ssrc, 64, 10, 1000)]) + tmmbr)
        assert await wait_for(lambda: out.fraction_lost == 64 and out.remb == 500_000, 3)
        assert await wait_for(lambda: any(b"\x84\xcd" in p for p in room.rtcp_in), 3)  # TMMBN came back
        assert await wait_for(lambda: any(p[1] == 200 for p in room.rtcp_in), 3)  # and sender reports
        room.send_rtcp("video", receiver_report(1, []) + nack(1, ssrc, [room.last_seq["video"]]))
        assert await wait_for(lambda: out.retransmitted >= 1, 3)
    finally:
        await room.stop()


async def test_latching_behind_a_nat_and_datagrams_from_elsewhere(local_media_node):
    room = RtpRoom(sdp_port_offset=100)  # its SDP names a port it does not send from
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        leg = await join_room(local_media_node, room)
        assert await wait_for(lambda: room.frames_decoded > 5 and room.audio_packets > 10, 15)  # latched
        video = leg.lines[1]
        assert video.ports.latched_rtp and video.ports.rtp_to == ("127.0.0.1", room.ports["video"])
        port = video.ports.port
        for junk in (b"", b"\x80", bytes(2000), b"\x80\x60" + bytes(30), b"\x00" * 40):
            stranger.sendto(junk, ("127.0.0.1", port))
            stranger.sendto(junk, ("127.0.0.1", port + 1))
        audio = leg.lines[0].ports
        broken = struct.pack("!BBHII", 0x90, 0, 1, 1, 1) + b"\xbe\xde\x00\x64"  # an extension past the end
        room.socks["audio", False].transport.sendto(broken, ("127.0.0.1", audio.port))  # from the room itself
        frames = room.frames_decoded
        await asyncio.sleep(0.5)
        assert video.ports.foreign + video.ports.garbage >= 8, video.ports.stats()
        assert audio.errors == 1, audio.stats()
        assert await wait_for(lambda: room.frames_decoded > frames + 3, 5)  # undisturbed
    finally:
        stranger.close()
        await room.stop()


async def test_media_timeout_when_the_room_goes_silent(local_media_node, monkeypatch):
    monkeypatch.setattr(leg_module, "MEDIA_TIMEOUT_S", 1.5)
    events = Events()
    room = RtpRoom(video=False)
    try:
        await join_room(local_media_node, room, events)
        await asyncio.sleep(2.0)
        assert not events.of("media_timeout")
        room.sending = False
        assert await wait_for(lambda: len(events.of("media_timeout")) == 1, 5)
    finally:
        await room.stop()


async def test_a_room_without_camera_takes_no_tile_until_its_first_picture(local_media_node):
    dark, lit = RtpRoom(camera=False), RtpRoom(colour=RED)
    try:
        leg = await join_room(local_media_node, dark, endpoint="dark")
        assert [s.source for s in leg.streams.values()] == ["mic"]  # its video line only receives
        await join_room(local_media_node, lit, endpoint="lit")
        assert await wait_for(lambda: dark.frames_decoded > 5 and is_red(dark.picture), 15)  # one tile: all red
        assert [s.source for s in leg.streams.values()] == ["mic"]
    finally:
        await dark.stop()
        await lit.stop()


async def test_bandwidth_picks_the_starting_rendition(local_media_node):
    room = RtpRoom(bandwidth_kbps=600)
    try:
        await join_room(local_media_node, room)
        assert await wait_for(lambda: room.picture is not None, 15)
        assert local_media_node.meetings["m"].mcu.rendition_of("room") == "360p"
        assert room.picture.shape[:2] == (360, 640)
    finally:
        await room.stop()


async def test_a_vp8_laptop_sees_the_rooms_h264_camera_transcoded(local_media_node):
    laptop = MixClient(local_media_node, "m", "laptop", video=PatternTrack(200), video_codecs=["VP8"])
    room = RtpRoom(colour=RED)
    try:
        await laptop.join()
        await join_room(local_media_node, room)
        assert await wait_for(lambda: laptop.track("main") is not None, 15)
        main = laptop.track("main")
        assert await wait_for(lambda: main.id in laptop.latest and is_red(laptop.picture(main)), 15)
        out = next(o for o in local_media_node.meetings["m"].peers["laptop"].outputs.values() if o.role == "main")
        assert out.source.codec == "VP8" and out.source.origin.stream_id == "room/camera"
    finally:
        await room.stop()
        await laptop.close()


async def test_a_node_that_encodes_only_vp8_sends_the_room_a_vp8_composite():
    node = LocalMediaNode(ice_host="127.0.0.1", encode_codecs=("VP8",))
    await node.start()
    room = RtpRoom(offer_vp8=True, camera=False)
    try:
        await room.start()
        leg = await node.open_peer(room_spec(), Events())
        answer = await leg.handle_offer(room.offer())
        assert "a=rtpmap:97 VP8/90000" in answer and "H264" not in answer
        await room.apply_answer(answer)
        assert await wait_for(lambda: room.frames_decoded > 3, 15)
        assert room.composite_codec == "VP8"
    finally:
        await room.stop()
        await node.stop()


async def test_an_offer_without_a_common_audio_codec_is_refused_in_words(local_media_node):
    leg = await local_media_node.open_peer(room_spec(), Events())
    offer = "v=0\r\no=r 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\n"
    with pytest.raises(OfferRefused, match="G729"):
        await leg.handle_offer(offer)
    await leg.close()
    assert "m" not in local_media_node.meetings  # the leg left: the meeting it opened is gone


def report_block_about(packets: list[bytes], ssrc: int) -> tuple[int, ...] | None:
    """(jitter, LSR, DLSR) of the last report block about ``ssrc`` in the leg's SR/RR packets."""
    found = None
    for p in packets:
        start = {200: 28, 201: 8}.get(p[1])
        for i in range(p[0] & 0x1F if start else 0):
            block = struct.unpack_from("!IIIIII", p, start + 24 * i)
            if block[0] == ssrc:
                found = block[3:]
    return found


async def test_report_blocks_let_the_room_measure_its_round_trip_and_b_as_is_what_we_take(local_media_node):
    room = RtpRoom(bandwidth_kbps=600)
    try:
        await room.start()
        leg = await local_media_node.open_peer(room_spec(), Events())
        answer = await leg.handle_offer(room.offer())
        assert "m=video" in answer and answer.split("m=video")[1].split("\r\n")[1] == "b=AS:1500"  # its camera's cap
        await room.apply_answer(answer)
        assert await wait_for(lambda: leg.lines[1].received.ssrc == room.ssrc["video"], 10)
        room.send_rtcp("video", sender_report(room.ssrc["video"], 0x0001_2345_6789_0000, 0, 10, 1000, []))
        assert await wait_for(lambda: (report_block_about(room.rtcp_in, room.ssrc["video"]) or (0, 0))[1], 5)
        jitter, lsr, dlsr = report_block_about(room.rtcp_in, room.ssrc["video"])
        assert lsr == 0x23456789 and 0 < dlsr < 2 * 65536  # sent within 2 s of the room's SR
        assert jitter < 90000  # in clock units: under a second on 127.0.0.1
    finally:
        await room.stop()
