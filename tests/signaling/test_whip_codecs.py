"""WHIP offers in one codec against the meeting's video codecs, over HTTP (#13): an H.264-only
publisher is answered in H.264 (it used to get 400 with aiortc's text), and an offer in none of the
meeting's codecs gets 400 with both lists in words."""

from __future__ import annotations

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from mcu.peer.bounded_stop import close_pc
from mcu.peer.codec_choice import prefer_codecs
from tests.support.media_clients import PatternTrack, ToneTrack

pytestmark = pytest.mark.integration


async def whip_offer(node, meeting_id: str, codec: str) -> tuple[int, str]:
    """POST a WHIP offer (microphone + a camera in ``codec`` only); (status, body)."""
    link = await node.join_link(meeting_id, name="Bộ mã hoá phần cứng", role="chair")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver(ToneTrack(), direction="sendonly")
        prefer_codecs(pc.addTransceiver(PatternTrack(120), direction="sendonly"), "video", [codec])
        await pc.setLocalDescription(await pc.createOffer())
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {link['token']}"}
        url = f"{node.url}/whip/{meeting_id}"
        async with node.http.post(url, data=pc.localDescription.sdp.encode(), headers=headers) as r:
            return r.status, await r.text()
    finally:
        await close_pc(pc, "whip")


async def test_an_h264_only_whip_publisher_is_answered_in_h264(media_node):
    meeting = await media_node.schedule(chair="hg-ubnd", invited=["tier:district"])
    status, answer = await whip_offer(media_node, meeting["id"], "H264")
    assert status == 201, answer
    video = answer.split("m=video")[1]
    assert "H264/90000" in video and "VP8/90000" not in video


async def test_an_offer_in_none_of_the_meetings_codecs_gets_400_naming_both(media_node):
    meeting = await media_node.schedule(chair="hg-ubnd", invited=["tier:district"], video_codecs=["VP8"])
    status, body = await whip_offer(media_node, meeting["id"], "H264")
    assert status == 400
    assert "the offer's video codecs are H264; this meeting takes VP8" in body
    assert "aiortc" not in body and "description send parameters" not in body
