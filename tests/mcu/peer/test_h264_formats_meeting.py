"""H.264 subscribers that read only some formats, with real aiortc peers on 127.0.0.1 and the node's
shared transcode (#13 review finding 2): a packetization-mode 0 receiver (a room system) gets no
STAP-A/FU-A and decodes a mode 1 publisher's colour through the transcode; a baseline-only one
decodes a High-profile publisher the same way; one that reads the publisher's format gets its
packets untouched. What each receiver got is read from the RTP packets it was sent."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from mcu.api import PeerSpec
from mcu.bridge.transcode import TranscodePool
from mcu.peer.bounded_stop import close_pc
from mcu.peer.codec_choice import prefer_codecs
from tests.mcu.peer.test_codecs_meeting import (
    H264_SHADE,
    h264_pts,
    ignore,
    main_output,
    shows,
    stream_of,
    viewer,
    with_fmtp_of,
    with_h264_fmtp,
)
from tests.support.media_clients import Client, PatternTrack

pytestmark = pytest.mark.integration

STAP_A, FU_A = 24, 28
SINGLE_NAL = range(1, 24)


def record_packets(client: Client) -> list[tuple[int, int]]:
    """(payload type, NAL unit type of the payload's first byte) of each RTP packet the client's
    video lines receive from now on."""
    seen: list[tuple[int, int]] = []
    for transceiver in client.pc.getTransceivers():
        if transceiver.kind != "video":
            continue
        receiver = transceiver.receiver
        handle = receiver._handle_rtp_packet

        async def recorded(packet: Any, arrival_time_ms: int, handle: Any = handle) -> None:
            if packet.payload:
                seen.append((packet.payload_type, packet.payload[0] & 0x1F))
            await handle(packet, arrival_time_ms)

        receiver._handle_rtp_packet = recorded
    return seen


def nal_types(client: Client, seen: list[tuple[int, int]]) -> set[int]:
    """NAL unit types of the H.264 packets (not RTX) the client got."""
    pts = {int(pt) for pt in h264_pts(client.pc.remoteDescription.sdp)}
    return {nal for pt, nal in seen if pt in pts}


def transcodes(node: Any, meeting: str) -> dict:
    pool = node.meetings[meeting].extension(TranscodePool)
    return pool.stats() if pool is not None else {"started": 0, "transcodes": []}


async def test_a_mode_0_room_system_gets_single_nal_units_of_a_mode_1_publisher_through_the_transcode(
    local_media_node,
):
    node = local_media_node
    pub = Client(
        node, "m", "pub", video=PatternTrack(H264_SHADE), recv_video=False, recv_audio=False, video_codecs=["H264"]
    )
    room = viewer(node, "m", "room", [("42e01f", 0)])
    both = viewer(node, "m", "both", [("42e01f", 0), ("42e01f", 1)])
    clients = [pub, room, both]
    try:
        for client in clients:
            await client.join()
        room_packets, both_packets = record_packets(room), record_packets(both)
        camera = stream_of(node, "m", "pub")
        assert (camera.codec, camera.h264_format) == ("H264", (1, 0x42))  # aiortc offers mode 1 only
        assert await shows(room, H264_SHADE, 0) and await shows(both, H264_SHADE, 0)

        got_room, got_both = nal_types(room, room_packets), nal_types(both, both_packets)
        assert got_room and got_room <= set(SINGLE_NAL), got_room  # no STAP-A (24) nor FU-A (28)
        assert STAP_A in got_both  # the publisher's own aggregation packets (SPS+PPS+IDR)
        to_room, to_both = main_output(node, "m", "room"), main_output(node, "m", "both")
        assert to_room.source is not camera and to_room.source.origin is camera  # the shared transcode
        assert to_both.source is camera  # reads mode 1: untouched, in its mode 1 payload type
        assert to_both.pt == int(h264_pts(both.pc.localDescription.sdp)[1])
        (xc,) = transcodes(node, "m")["transcodes"]
        assert xc["source"] == camera.stream_id and list(xc["targets"]) == ["H264"]
    finally:
        for client in reversed(clients):
            await client.close()


async def test_a_baseline_only_subscriber_decodes_a_high_profile_publisher_through_the_transcode(local_media_node):
    node = local_media_node
    spec = PeerSpec("h", "high", "high", "participant", "fibre", True, {"renegotiate": False, "via": "whip"})
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    prefer_codecs(pc.addTransceiver(PatternTrack(H264_SHADE), direction="sendonly"), "video", ["H264"])
    baseline = viewer(node, "h", "baseline", [("42e01f", 1)])
    high = viewer(node, "h", "high-viewer", [("640c1f", 1)])
    peer = await node.open_peer(spec, ignore)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await peer.handle_offer(with_h264_fmtp(pc.localDescription.sdp, "640c1f", 1))
        await pc.setRemoteDescription(RTCSessionDescription(with_fmtp_of(answer, pc.localDescription.sdp), "answer"))
        for client in (baseline, high):
            await client.join()
        camera = stream_of(node, "h", "high")
        assert camera.h264_format == (1, 0x64)
        assert await shows(baseline, H264_SHADE, 0) and await shows(high, H264_SHADE, 0)
        to_baseline = main_output(node, "h", "baseline")
        assert to_baseline.source is not camera and to_baseline.source.origin is camera
        assert main_output(node, "h", "high-viewer").source is camera  # a High decoder: untouched
        assert transcodes(node, "h")["started"] == 1
    finally:
        for client in (high, baseline):
            await client.close()
        await close_pc(pc, "high")
        await peer.close()
