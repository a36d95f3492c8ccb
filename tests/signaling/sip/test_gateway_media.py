"""What the chair and the media leg do to a SIP call (#14), observed at room systems (our stack +
RtpRoom): the chair's mute takes a room's tone out of what the other room hears; a room that
sends nothing for the leg's media timeout gets the gateway's BYE; a room whose camera the node cannot
decode yet (no key frame) is asked for one by SIP INFO picture_fast_update. Servers as in test_gateway.py."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import mcu.rtp.leg
from tests.signaling.sip.test_gateway import CHAIR, RoomSystem, _sip_in, sip_node, until
from tests.support.harness import WsClient

pytestmark = pytest.mark.integration
ROOMS = {"room-a": {"allowed_sources": ["127.0.0.1"]}, "room-b": {"allowed_sources": ["127.0.0.1"]}}


def loudness(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(pcm)))) if pcm.size else 0.0


async def test_chair_mute_takes_the_room_out_of_the_mix(tmp_path):
    node, port = await sip_node(tmp_path, ROOMS)
    a, b = RoomSystem(), RoomSystem()
    await a.start()
    await b.start()
    b.media.sending = False  # b listens: what it hears is a's tone or nothing
    chair = None
    try:
        meeting = await node.schedule(CHAIR, ["room-a", "room-b"])
        await a.dial(meeting["dial_number"], port, from_user="room-a")
        await b.dial(meeting["dial_number"], port, from_user="room-b")
        assert await until(lambda: _sip_in(node, meeting["id"], "room-b"))
        await asyncio.sleep(3)
        heard = loudness(b.media.pcm(1.0))
        assert heard > 0.02, f"room-b hears no tone from room-a before the mute ({heard:.4f})"
        chair = await WsClient.connect(node, await node.endpoint_token(CHAIR))
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await chair.send("mute", endpoint_id="room-a", kind="audio", muted=True)
        await asyncio.sleep(2.5)
        muted = loudness(b.media.pcm(1.0))
        assert muted < heard / 10, f"room-a still heard after the chair's mute ({heard:.4f} -> {muted:.4f})"
    finally:
        if chair is not None:
            await chair.close()
        await a.stop()
        await b.stop()
        await node.stop()


async def test_a_silent_room_is_hung_up(tmp_path, monkeypatch):
    monkeypatch.setattr(mcu.rtp.leg, "MEDIA_TIMEOUT_S", 2.0)  # 30 s in service
    node, port = await sip_node(tmp_path, ROOMS)
    room = RoomSystem()
    await room.start()
    try:
        meeting = await node.schedule(CHAIR, ["room-a"])
        call = await room.dial(meeting["dial_number"], port, from_user="room-a")
        assert await until(lambda: _sip_in(node, meeting["id"], "room-a"))
        await asyncio.sleep(3)
        assert not call.ended.is_set(), "hung up while the room was sending"
        room.media.sending = False  # no RTP, and RtpRoom sends no RTCP reports
        await asyncio.wait_for(call.ended.wait(), 10)
        assert call.end_reason == "bye"
        assert await until(lambda: _gone(node, meeting["id"]))
    finally:
        await room.stop()
        await node.stop()


async def _gone(node, meeting_id: str) -> bool:
    return not await _sip_in(node, meeting_id, "room-a")


async def test_a_room_stream_that_needs_a_key_frame_gets_a_sip_info_picture_fast_update(tmp_path):
    """The leg's ``keyframe_wanted`` (the room's camera started without a key frame, so the node
    cannot decode it) reaches the room as SIP INFO with the RFC 5168 media_control XML, beside
    the RTCP PLI/FIR; the room sends its key frame and the INFOs stop (at most one per 2 s)."""
    node, port = await sip_node(tmp_path, ROOMS)
    room = RoomSystem()
    room.media._gop_at = 1  # its camera begins with a P-frame: the node's stream needs a key frame
    infos: list[tuple[str, str]] = []
    await room.start()
    try:
        meeting = await node.schedule(CHAIR, ["room-a"])
        call = await room.stack.dial(
            f"sip:{meeting['dial_number']}@127.0.0.1:{port}", from_user="room-a", sdp=room.media.offer()
        )

        async def on_info(content_type: str, body: str) -> None:
            infos.append((content_type, body))

        call.on_info = on_info  # before its media starts: the first INFO is not missed
        await room.media.apply_answer(await call.wait_answered(timeout=15))
        assert await until(lambda: _true(bool(infos)), 10), "no SIP INFO asked the room for a key frame"
        content_type, body = infos[0]
        assert content_type.split(";")[0].strip().lower() == "application/media_control+xml"
        assert "<media_control>" in body and "<picture_fast_update/>" in body, body
        assert room.media.keyframe_requests >= 1  # the RTCP PLI/FIR came too; the room restarts its GOP
        await asyncio.sleep(3)
        settled = len(infos)
        await asyncio.sleep(3)
        assert len(infos) == settled, infos  # the key frame arrived: no more asking
    finally:
        await room.stop()
        await node.stop()


async def _true(value: bool) -> bool:
    return value
