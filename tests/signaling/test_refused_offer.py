"""A refused SDP offer on /ws leaves the session able to negotiate (#11 hardening).

A room terminal whose first offer is refused (400: a BUNDLE group naming a missing mid, no
a=setup, no usable media) sends a good offer next on the same WebSocket, without reconnecting:
it gets an answer, its media reaches a second participant, and the media node holds one peer
for it. Before the fix the refused offer left a half-applied aiortc peer behind, and every later
offer on that WebSocket was refused too.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.harness import WsClient
from tests.support.media_clients import Client, PatternTrack, ToneTrack, WsPeerBridge, offer_sdp, wait_for

pytestmark = pytest.mark.integration


def _bundle_naming_a_missing_mid(sdp: str) -> str:
    return "\r\n".join(
        "a=group:BUNDLE 9 0 1" if line.startswith("a=group:BUNDLE") else line for line in sdp.split("\r\n")
    )


BAD_OFFERS = {
    "bundle_names_a_missing_mid": (_bundle_naming_a_missing_mid, "BUNDLE"),
    "no_dtls_setup": (lambda sdp: sdp.replace("a=setup:actpass\r\n", ""), "offer"),
    "no_usable_media": (lambda sdp: sdp.replace("a=sendrecv", "a=inactive"), "no usable"),
}


class BadOfferFirst(WsPeerBridge):
    """Joins, sends one bad offer and reads its 400, then lets the client offer for real."""

    def __init__(self, ws: WsClient, meeting_id: str, bad_sdp: str) -> None:
        super().__init__(ws, meeting_id)
        self.bad_sdp = bad_sdp
        self.refusal: dict | None = None

    async def open_peer(self, spec, on_event):
        await self.ws.send("join", meeting_id=self.meeting_id)
        await self.ws.expect("joined")
        await self.ws.send("offer", sdp=self.bad_sdp)
        self.refusal = await self.ws.expect("error", timeout=10)
        self._on_event = on_event
        self._reader = asyncio.create_task(self._read())  # after the refusal: one reader at a time
        return self


@pytest.mark.parametrize("case", sorted(BAD_OFFERS))
async def test_a_good_offer_after_a_refused_one_on_the_same_websocket_is_served(media_node, case):
    node = media_node
    district, commune = "hg-meo-vac", node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    meeting = await node.schedule(chair=district, invited=["tier:commune@hg-meo-vac"])
    spoil, says = BAD_OFFERS[case]
    pc, sdp = await offer_sdp()
    await pc.close()
    clients = []
    try:
        ws = await WsClient.connect(node, await node.endpoint_token(commune))
        await ws.expect("welcome")
        bridge = BadOfferFirst(ws, meeting["id"], spoil(sdp))
        room = Client(bridge, meeting["id"], commune, video=PatternTrack(30), audio=ToneTrack())
        clients.append(room)
        await room.join()  # the bad offer is refused, then the client's real offer is answered
        assert bridge.refusal["code"] == "offer_refused" and says in bridge.refusal["message"], bridge.refusal
        chair_ws = await WsClient.connect(node, await node.endpoint_token(district))
        await chair_ws.expect("welcome")
        chair = Client(
            WsPeerBridge(chair_ws, meeting["id"]), meeting["id"], district, video=PatternTrack(220), audio=ToneTrack()
        )
        clients.append(chair)
        await chair.join()
        # what the receiving end observes: the chair decodes the commune's dark picture
        assert await wait_for(lambda: len(chair.video_frames()) >= 5, timeout=15), "the chair got no video"
        assert sum(v for _, v in chair.video_frames()[-5:]) / 5 < 100
        assert await wait_for(lambda: len(room.video_frames()) >= 5, timeout=15), "the commune got no video"
        peers = [p for p in node.ctx.media.peers if p.endpoint_id == commune]
        assert len(peers) == 1, f"the refused offer's peer is still held: {len(peers)} peers"
    finally:
        for c in clients:
            await c.close()
    assert await wait_for(lambda: not node.ctx.media.peers, timeout=10), "peers left after every client closed"


async def test_a_refused_offer_that_breaks_an_established_peer_ends_in_media_reset(media_node):
    """A renegotiation offer that aiortc half-applies before refusing it: the peer cannot
    negotiate any more, so the client gets the refusal, then media_reset, and its next offer on
    the same WebSocket gets a fresh peer (answered)."""
    node = media_node
    commune = node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0].id
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tier:commune@hg-meo-vac"])
    ws = await WsClient.connect(node, await node.endpoint_token(commune))
    pcs = []
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        await ws.expect("joined")
        for spoil in (None, BAD_OFFERS["no_dtls_setup"][0], None):
            pc, sdp = await offer_sdp()
            pcs.append(pc)
            await ws.send("offer", sdp=spoil(sdp) if spoil else sdp)
            if spoil is None:
                assert (await ws.expect("answer", timeout=10))["sdp"].startswith("v=0")
                assert await wait_for(lambda: [p for p in node.ctx.media.peers if p.endpoint_id == commune], timeout=5)
                continue
            assert (await ws.expect("error", timeout=10))["code"] == "offer_refused"
            reset = await ws.expect("media_reset", timeout=10)
            assert "offer again" in reset["reason"], reset
            assert await wait_for(lambda: not node.ctx.media.peers, timeout=5), "the broken peer is still held"
        assert len([p for p in node.ctx.media.peers if p.endpoint_id == commune]) == 1
    finally:
        await ws.close()
        for pc in pcs:
            await pc.close()
