"""A SIP leg that makes the offer (an INVITE without SDP, as Cisco CUCM and Expressway send): its
offer reaches the sink as an event, the room's answer goes to handle_answer, media flows both ways."""

from __future__ import annotations

import pytest

from mcu.api import MediaError
from mcu.rtp.offer import parse_offer
from tests.mcu.rtp.test_leg import RED, Events, is_red, room_spec
from tests.support.media_clients import wait_for
from tests.support.rtp_room import RtpRoom

pytestmark = pytest.mark.integration


async def test_the_leg_offers_and_the_rooms_answer_brings_media_both_ways(local_media_node):
    events = Events()
    room = RtpRoom(colour=RED)
    try:
        await room.start()
        leg = await local_media_node.open_peer(room_spec(rtp_offer="127.0.0.1"), events)
        assert await wait_for(lambda: events.of("offer"), 5)
        offer = parse_offer(events.of("offer")[0]["sdp"])
        assert [m.kind for m in offer.lines] == ["audio", "video"] and offer.address == "127.0.0.1"
        assert {f.name for f in offer.lines[0].formats} >= {"PCMU", "PCMA", "G722", "OPUS", "TELEPHONE-EVENT"}
        assert [f.name for f in offer.lines[1].formats][:2] == ["H264", "H264"]
        with pytest.raises(MediaError):
            await leg.handle_answer(room.offer().split("m=video")[0])  # one m-line: not an answer to ours
        await room.apply_answer(events.of("offer")[0]["sdp"])  # the room reads where we receive
        await leg.handle_answer(room.offer())  # its answer: PCMU and H.264, as its ACK carries them
        assert await wait_for(lambda: room.frames_decoded > 5 and is_red(room.picture), 15)  # its own camera
        assert await wait_for(lambda: room.audio_packets > 10, 5)
        assert [s.source for s in leg.streams.values()] == ["mic", "camera"]
    finally:
        await room.stop()
