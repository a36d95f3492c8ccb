"""A server offer that arrives right behind the answer to the terminal's own offer.

The server answers the terminal's offer and, when the meeting needs more m-lines (another
speaker), sends its own offer at once. The terminal must apply its answer first: taking the
server's offer while its own is still open fails ("Cannot handle offer in signaling state
have-local-offer", seen in 2 of 19 agent joins by an outside audit).
"""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection, RTCSessionDescription
import pytest

from endpoints.agent.media import MeetingPeer
from endpoints.agent.oplog import OpLog
from endpoints.agent.sources import Sources
from tests.support.media_clients import PatternTrack

pytestmark = pytest.mark.integration


async def test_a_server_offer_right_behind_the_answer_is_answered(tmp_path):
    sent: list[tuple[str, dict]] = []

    async def send(type_: str, **fields) -> None:
        sent.append((type_, fields))

    sources = Sources("test", "none", (160, 120), fps=10)
    peer = MeetingPeer("m-1", sources, send, OpLog(tmp_path, "hg-test"), on_failed=lambda reason: None)
    server = RTCPeerConnection()
    try:
        starting = asyncio.create_task(peer.start())
        for _ in range(200):
            if sent:
                break
            await asyncio.sleep(0.01)
        assert sent and sent[0][0] == "offer"
        await server.setRemoteDescription(RTCSessionDescription(sent[0][1]["sdp"], "offer"))
        await server.setLocalDescription(await server.createAnswer())
        answer = server.localDescription.sdp
        server.addTransceiver(PatternTrack(100), direction="sendonly")  # another speaker's picture
        await server.setLocalDescription(await server.createOffer())

        peer.on_answer(answer)  # the two messages back to back, as the reader delivers them
        await peer.on_offer(server.localDescription.sdp)
        await starting
        assert [t for t, _ in sent] == ["offer", "answer"], sent
        await server.setRemoteDescription(RTCSessionDescription(sent[1][1]["sdp"], "answer"))
        assert peer.pc.signalingState == "stable"
    finally:
        await peer.close()
        await server.close()
        sources.stop()
