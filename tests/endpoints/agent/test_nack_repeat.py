"""The agent repeats NACKs for still-missing video packets (aiortc alone asks only once)."""

from __future__ import annotations

import asyncio

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtp import RtcpRtpfbPacket
import pytest

from endpoints.agent.nack_repeat import repeat_nacks
from mcu.peer.ice import pin_host_addresses
from tests.support.media_clients import PatternTrack, wait_for

pytestmark = pytest.mark.integration


async def test_missing_packets_are_nacked_again_and_again():
    pin = pin_host_addresses(["127.0.0.1"])
    sender, receiver = (
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
        RTCPeerConnection(RTCConfiguration(iceServers=[])),
    )
    nacked: list[list[int]] = []
    try:
        sender.addTransceiver(PatternTrack(90), direction="sendonly")
        frames = []

        @receiver.on("track")
        def on_track(track):
            async def pull():
                while True:
                    frames.append(await track.recv())

            asyncio.ensure_future(pull())

        await sender.setLocalDescription(await sender.createOffer())
        await receiver.setRemoteDescription(sender.localDescription)
        await receiver.setLocalDescription(await receiver.createAnswer())
        await sender.setRemoteDescription(receiver.localDescription)
        assert await wait_for(lambda: len(frames) >= 3, timeout=10)

        rtp_sender = sender.getSenders()[0]
        original = rtp_sender._handle_rtcp_packet

        async def spy(packet):
            if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == 1:
                nacked.append(list(packet.lost))
                return  # never repaired: the hole stays, as when the retransmission is lost too
            await original(packet)

        rtp_sender._handle_rtcp_packet = spy
        gen = receiver.getTransceivers()[0].receiver._RTCRtpReceiver__nack_generator
        hole = (gen.max_seq - 10) % 65536
        gen.missing.add(hole)  # a hole whose one NACK was lost on the way
        await asyncio.sleep(0.3)
        assert not any(hole in lost for lost in nacked)  # aiortc alone never asks again
        task = asyncio.ensure_future(repeat_nacks(receiver, interval_s=0.05))
        assert await wait_for(lambda: sum(hole in lost for lost in nacked) >= 3, timeout=5)
        task.cancel()
    finally:
        await sender.close()
        await receiver.close()
        pin.release()
