"""Where a SIP leg sends, and what the room's offer may ask: nothing before the room's first valid
packet (symmetric RTP), no multicast or broadcast c=, the latch kept through a re-INVITE that
repeats the room's address."""

from __future__ import annotations

import asyncio

import pytest

from mcu.api import OfferRefused
from tests.mcu.rtp.test_leg import Events, room_spec
from tests.support.media_clients import wait_for
from tests.support.rtp_room import RtpRoom

pytestmark = pytest.mark.integration


async def test_nothing_reaches_the_sdp_address_before_the_room_sends(local_media_node):
    room = RtpRoom()  # its SDP names its own sockets: a forged INVITE would name a victim's
    try:
        await room.start()
        leg = await local_media_node.open_peer(room_spec(), Events())
        answer = await leg.handle_offer(room.offer())
        room.sending = False  # a victim never sends: it only receives what we send
        await room.apply_answer(answer)
        await asyncio.sleep(1.5)
        assert (room.audio_packets, room.video_packets, room.rtcp_packets) == (0, 0, 0)
        room.sending = True  # its first valid packet proves the address
        assert await wait_for(lambda: room.frames_decoded > 3 and room.audio_packets > 10, 15)
    finally:
        await room.stop()


@pytest.mark.parametrize("address", ["224.1.2.3", "255.255.255.255", "240.0.0.9"])
async def test_a_multicast_or_broadcast_address_is_refused(local_media_node, address):
    room = RtpRoom(video=False)
    try:
        await room.start()
        leg = await local_media_node.open_peer(room_spec(), Events())
        offer = room.offer().replace("c=IN IP4 127.0.0.1", f"c=IN IP4 {address}")
        with pytest.raises(OfferRefused, match="multicast|broadcast"):
            await leg.handle_offer(offer)
        await leg.close()
    finally:
        await room.stop()


async def test_a_cif_room_gets_a_composite_its_level_decodes(local_media_node):
    room = RtpRoom(h264_profile="42e00d")  # level 1.3: CIF at most
    try:
        await room.start()
        leg = await local_media_node.open_peer(room_spec(), Events())
        answer = await leg.handle_offer(room.offer())
        assert "profile-level-id=42e00d" in answer  # never above the offered level
        await room.apply_answer(answer)
        assert await wait_for(lambda: room.frames_decoded > 5, 15)
        assert room.picture.shape[:2] == (180, 320)
        assert local_media_node.meetings["m"].mcu.rendition_of("room") == "180p"
    finally:
        await room.stop()


def origin(sdp: str) -> tuple[str, str]:
    fields = next(line for line in sdp.split("\r\n") if line.startswith("o=")).split()
    return fields[1], fields[2]


async def test_the_origin_goes_on_from_the_calls_and_rises_only_when_the_answer_changes(local_media_node):
    room = RtpRoom(video=False)
    try:
        await room.start()
        leg = await local_media_node.open_peer(room_spec(sdp_origin=[777, 4]), Events())  # a lobby sent 4
        first = await leg.handle_offer(room.offer())
        assert origin(first) == ("777", "5")
        assert await leg.handle_offer(room.offer()) == first  # a session refresh: the same SDP, the same version
        assert origin(await leg.handle_offer(room.offer("sendonly"))) == ("777", "6")  # hold: a new answer
        await leg.close()
    finally:
        await room.stop()


async def test_an_audio_only_leg_answers_video_with_port_0(local_media_node):
    room = RtpRoom()
    try:
        await room.start()
        leg = await local_media_node.open_peer(room_spec(audio_only=True), Events())
        answer = await leg.handle_offer(room.offer())
        assert "\r\nm=video 0 RTP/AVP " in answer and [line.kind for line in leg.lines.values()] == ["audio"]
        await room.apply_answer(answer)
        assert await wait_for(lambda: room.audio_packets > 10, 10)
        assert room.video_packets == 0
    finally:
        await room.stop()
