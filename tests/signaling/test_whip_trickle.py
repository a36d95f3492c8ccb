"""WHIP/WHEP as third-party tools use them (#13): offers without candidates that trickle theirs by
PATCH (RFC 9725 section 4.3), ETag/If-Match, ICE restart refused in words, full-ICE answers, and
offers of every DTLS setup, codec and RTX shape. Real aiortc peers over 127.0.0.1; what counts is
what the receiving side sees: a WHEP viewer decodes the publisher's colour."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from signaling.api.trickle import TRICKLE
from tests.support.harness import Node
from tests.support.media_clients import PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.integration

SHADE = 200  # the publisher's picture: a flat bright grey


def without_candidates(sdp: str) -> str:
    """The SDP as a client that trickles sends it: no a=candidate, no a=end-of-candidates."""
    keep = [line for line in sdp.splitlines() if not line.startswith(("a=candidate:", "a=end-of-candidates"))]
    return "\r\n".join(keep) + "\r\n"


def fragment(sdp: str, *lines: str) -> str:
    """An RFC 8840 fragment of the offer's ICE credentials, its first media section and ``lines``."""
    ice = [line for line in sdp.splitlines() if line.startswith(("a=ice-ufrag:", "a=ice-pwd:"))][:2]
    first_mid = next(line for line in sdp.splitlines() if line.startswith("a=mid:"))
    return "\r\n".join([*ice, "m=audio 9 UDP/TLS/RTP/SAVPF 0", first_mid, *lines]) + "\r\n"


def candidates_of(sdp: str) -> list[str]:
    mid_lines = sdp.split("m=")[1].splitlines()  # the first media section: BUNDLE's ICE transport
    return [line for line in mid_lines if line.startswith("a=candidate:")]


async def link(node: Node, meeting_id: str, name: str, role: str) -> str:
    status, body = await node.call("POST", f"/api/v1/meetings/{meeting_id}/links", json={"name": name, "role": role})
    assert status == 201, body
    return body["token"]


async def post(node: Node, path: str, token: str, sdp: str):
    headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
    async with node.http.post(node.url + path, data=sdp.encode(), headers=headers) as r:
        return r.status, r.headers, await r.text()


async def patch(node: Node, location: str, token: str, body: str, ctype: str = TRICKLE, if_match: str | None = None):
    headers = {"Content-Type": ctype, "Authorization": f"Bearer {token}"}
    if if_match is not None:
        headers["If-Match"] = if_match
    async with node.http.patch(node.url + location, data=body.encode(), headers=headers) as r:
        return r.status, await r.text()


def publisher(audio: bool = True, codecs: tuple[str, ...] = ()) -> RTCPeerConnection:
    """A sendonly publisher (think OBS or a hardware encoder); ``codecs``: only these video codecs."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if audio:
        pc.addTransceiver(ToneTrack(), direction="sendonly")
    video = pc.addTransceiver(PatternTrack(SHADE), direction="sendonly")
    if codecs:
        wanted = {f"video/{c}".lower() for c in codecs} | {"video/rtx"}
        video.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() in wanted]
        )
    return pc


class Viewer:
    """A WHEP viewer that records the mean brightness of the frames it decodes."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        self.shades: list[float] = []
        self.first_frame_at = 0.0
        self._tasks: list[asyncio.Task] = []
        self.pc.on("track", self._on_track)

    def _on_track(self, track) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.ensure_future(self._pull(track)))

    async def _pull(self, track) -> None:
        while True:
            frame = await track.recv()
            self.first_frame_at = self.first_frame_at or time.monotonic()
            self.shades.append(float(frame.to_ndarray(format="rgb24")[16:].mean()))  # below the moving mark

    async def watch(self, node: Node, meeting_id: str, token: str) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, _, answer = await post(node, f"/whep/{meeting_id}", token, self.pc.localDescription.sdp)
        assert status == 201, answer
        await self.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    async def sees_the_publisher(self, timeout: float = 15) -> bool:
        return await wait_for(
            lambda: len(self.shades) >= 5 and all(abs(s - SHADE) < 25 for s in self.shades[-3:]), timeout
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await self.pc.close()


async def test_an_offer_without_candidates_connects_through_patch(media_node):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(node, meeting["id"], "Bộ mã hoá phần cứng", "chair")
    pub, viewer = publisher(), Viewer()
    try:
        await pub.setLocalDescription(await pub.createOffer())
        offer = pub.localDescription.sdp
        status, headers, answer = await post(node, f"/whip/{meeting['id']}", token, without_candidates(offer))
        assert status == 201, answer
        location, etag = headers["Location"], headers["ETag"]
        assert etag.startswith('"') and headers["Accept-Patch"] == TRICKLE
        # full ICE: all our candidates and their end in the answer, never ice-lite
        assert "a=ice-lite" not in answer and "a=end-of-candidates" in answer and candidates_of(answer)
        # the publisher learns ours only from its checks' answers: the PATCH alone must connect it
        await pub.setRemoteDescription(RTCSessionDescription(without_candidates(answer), "answer"))

        theirs = candidates_of(offer)
        status, body = await patch(node, location, token, fragment(offer, *theirs), if_match='"0000"')
        assert status == 412 and etag.strip('"') in body, body
        status, body = await patch(node, location, token, fragment(offer, *theirs), ctype="application/sdp")
        assert status == 415 and TRICKLE in body, body
        status, body = await patch(node, location, token, fragment(offer, *theirs).replace("a=mid:0", "a=mid:7"))
        assert status == 400 and "a=mid:7 is not a media section" in body, body
        restart = fragment(offer, *theirs).replace("a=ice-ufrag:", "a=ice-ufrag:new")
        status, body = await patch(node, location, token, restart, if_match="*")
        assert status == 422 and "ICE restart is not supported" in body, body
        status, body = await patch(node, "/whip/" + meeting["id"] + "/whip-0000", token, fragment(offer, *theirs))
        assert status == 404, body

        status, body = await patch(node, location, token, fragment(offer, *theirs), if_match=etag)
        assert status == 204 and body == "", body
        status, body = await patch(node, location, token, fragment(offer, "a=end-of-candidates"), if_match="*")
        assert status == 204, body

        await viewer.watch(node, meeting["id"], await link(node, meeting["id"], "Xem", "viewer"))
        assert await viewer.sees_the_publisher(), viewer.shades[-5:]
    finally:
        await pub.close()
        await viewer.close()


async def test_patch_of_another_clients_session_is_forbidden(media_node):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(node, meeting["id"], "A", "participant")
    other = await link(node, meeting["id"], "B", "participant")
    pub = publisher()
    try:
        await pub.setLocalDescription(await pub.createOffer())
        status, headers, answer = await post(node, f"/whip/{meeting['id']}", token, pub.localDescription.sdp)
        assert status == 201, answer
        status, body = await patch(node, headers["Location"], other, fragment(answer, "a=end-of-candidates"))
        assert status == 403 and "another client" in body, body
    finally:
        await pub.close()


# Offer shapes third-party publishers send. Served by the media node's negotiation (helper A, #13)
# and DTLS roles (helper C1, #13); the setup: rewrites change only what the offer says.
SHAPES = {
    "actpass": ({}, None),
    "passive": ({}, "passive"),
    "active": ({}, "active"),
    "no-audio": ({"audio": False}, None),
    "vp8-only": ({"codecs": ("VP8",)}, None),
    "h264-only": ({"codecs": ("H264",)}, None),
}


@pytest.mark.parametrize("shape", list(SHAPES))
async def test_offer_shapes_of_third_party_publishers_are_served(media_node, shape):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    options, setup = SHAPES[shape]
    pub, viewer = publisher(**options), Viewer()
    try:
        await pub.setLocalDescription(await pub.createOffer())
        offer = pub.localDescription.sdp
        assert "a=ssrc-group:FID" in offer and "rtx/90000" in offer  # RTX, as browsers and GStreamer send it
        if setup:
            offer = offer.replace("a=setup:actpass", f"a=setup:{setup}")
        token = await link(node, meeting["id"], "OBS", "chair")
        status, _, answer = await post(node, f"/whip/{meeting['id']}", token, offer)
        assert status == 201, answer
        assert "a=ice-lite" not in answer and candidates_of(answer)
        wanted = {"passive": "active", "active": "passive"}.get(setup or "", None)
        if wanted:
            assert f"a=setup:{wanted}" in answer, answer
        await pub.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        created = time.monotonic()
        await viewer.watch(node, meeting["id"], await link(node, meeting["id"], "Xem", "viewer"))
        assert await viewer.sees_the_publisher(), viewer.shades[-5:]
        print(f"{shape}: first viewer frame {viewer.first_frame_at - created:.2f} s after the WHIP 201")
    finally:
        await pub.close()
        await viewer.close()


async def test_an_offer_outside_the_meetings_codecs_is_refused_in_words(media_node):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"], video_codecs=["vp8"])
    assert meeting["video_codecs"] == ["VP8"], meeting
    pub = publisher(codecs=("H264",))
    try:
        await pub.setLocalDescription(await pub.createOffer())
        token = await link(node, meeting["id"], "OBS", "chair")
        status, _, body = await post(node, f"/whip/{meeting['id']}", token, pub.localDescription.sdp)
        assert status == 400 and "H264" in body and "VP8" in body, body
        print("refusal:", body)
        status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        assert live["participants"] == [] and not node.ctx.media.peers
    finally:
        await pub.close()
