"""WHIP ingest and WHEP egress (RFC 9725 style) with real aiortc clients over HTTP."""

from __future__ import annotations

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
import pytest

from tests.support.media_clients import PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.integration


async def post_sdp(node, path: str, token: str, sdp: str, ctype: str = "application/sdp"):
    async with node.http.post(
        node.url + path, data=sdp.encode(), headers={"Content-Type": ctype, "Authorization": f"Bearer {token}"}
    ) as r:
        return r.status, r.headers, await r.text()


async def test_whip_publisher_is_seen_by_whep_viewer(media_node):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    status, link = await node.call(
        "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": "OBS phòng họp tỉnh", "role": "chair"}
    )
    # a WHIP publisher (think OBS) sends a sendonly camera + microphone
    pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pub.addTransceiver(ToneTrack(), direction="sendonly")
    pub.addTransceiver(PatternTrack(200), direction="sendonly")
    await pub.setLocalDescription(await pub.createOffer())
    status, headers, answer = await post_sdp(node, f"/whip/{meeting['id']}", link["token"], pub.localDescription.sdp)
    assert status == 201, answer
    assert headers["Content-Type"].startswith("application/sdp") and headers["Location"].startswith("/whip/")
    await pub.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    # a WHEP viewer (recvonly) gets that picture without any renegotiation
    status, view = await node.call(
        "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": "Xem", "role": "viewer"}
    )
    sub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sub.addTransceiver("audio", direction="recvonly")
    sub.addTransceiver("video", direction="recvonly")
    frames = []

    @sub.on("track")
    def on_track(track):
        if track.kind == "video":

            async def pull():
                while True:
                    frame = await track.recv()
                    frames.append(int(frame.to_ndarray(format="rgb24")[60:].mean()))

            import asyncio

            asyncio.ensure_future(pull())

    await sub.setLocalDescription(await sub.createOffer())
    status, headers2, answer2 = await post_sdp(node, f"/whep/{meeting['id']}", view["token"], sub.localDescription.sdp)
    assert status == 201, answer2
    await sub.setRemoteDescription(RTCSessionDescription(answer2, "answer"))
    try:
        assert await wait_for(lambda: len(frames) >= 10, timeout=15), "WHEP viewer got no video"
        assert sum(frames[-5:]) / 5 > 150  # the publisher's bright pattern
        status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        kinds = sorted(p["kind"] for p in live["participants"])
        assert kinds == ["whep", "whip"]
        # a viewer link cannot publish; PATCH takes trickle ICE fragments only (tests/signaling/test_whip_trickle.py)
        status, _, body = await post_sdp(node, f"/whip/{meeting['id']}", view["token"], pub.localDescription.sdp)
        assert status == 403 and "viewer" in body
        async with node.http.patch(
            node.url + headers["Location"], headers={"Authorization": f"Bearer {link['token']}"}
        ) as r:
            assert r.status == 415 and "application/trickle-ice-sdpfrag" in await r.text()
        # DELETE ends the session and the publisher leaves the room
        async with node.http.delete(
            node.url + headers["Location"], headers={"Authorization": f"Bearer {link['token']}"}
        ) as r:
            assert r.status == 200
        status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        assert [p["kind"] for p in live["participants"]] == ["whep"]
    finally:
        await pub.close()
        await sub.close()


async def test_whip_bad_requests(media_node):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    status, _, body = await post_sdp(node, f"/whip/{meeting['id']}", node.operator_token, "v=0\r\n", ctype="text/plain")
    assert status == 415 and "application/sdp" in body
    status, _, body = await post_sdp(node, f"/whip/{meeting['id']}", node.operator_token, "hello")
    assert status == 400 and "v=0" in body
    status, _, body = await post_sdp(node, f"/whip/{meeting['id']}", node.operator_token, "v=0\r\nm=garbage\r\n")
    assert status == 400 and "no usable audio or video" in body
    status, _, body = await post_sdp(node, "/whip/m-khong-co", node.operator_token, "v=0\r\n")
    assert status == 404 and "m-khong-co" in body
    status, _, body = await post_sdp(node, f"/whip/{meeting['id']}", "gb1.x.y", "v=0\r\n")
    assert status == 401
    status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
    assert live["participants"] == []


async def test_whep_composite_view_for_live_streaming(media_node):
    import asyncio

    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    status, link = await node.call(
        "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": "OBS", "role": "chair"}
    )
    pub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pub.addTransceiver(ToneTrack(), direction="sendonly")
    pub.addTransceiver(PatternTrack(200), direction="sendonly")
    await pub.setLocalDescription(await pub.createOffer())
    status, _, answer = await post_sdp(node, f"/whip/{meeting['id']}", link["token"], pub.localDescription.sdp)
    await pub.setRemoteDescription(RTCSessionDescription(answer, "answer"))

    status, view = await node.call(
        "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": "Công chúng", "role": "viewer"}
    )
    status, _, body = await post_sdp(node, f"/whep/{meeting['id']}?view=mosaic", view["token"], "v=0\r\n")
    assert status == 400 and "composite" in body
    sub = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    sub.addTransceiver("audio", direction="recvonly")
    sub.addTransceiver("video", direction="recvonly")
    sizes, levels = [], []

    @sub.on("track")
    def on_track(track):
        async def pull():
            while True:
                frame = await track.recv()
                if track.kind == "video":
                    sizes.append((frame.width, frame.height))
                else:
                    levels.append(abs(frame.to_ndarray()).max())

        asyncio.ensure_future(pull())

    await sub.setLocalDescription(await sub.createOffer())
    status, _, answer2 = await post_sdp(
        node, f"/whep/{meeting['id']}?view=composite", view["token"], sub.localDescription.sdp
    )
    assert status == 201, answer2
    await sub.setRemoteDescription(RTCSessionDescription(answer2, "answer"))
    try:
        assert await wait_for(lambda: len(sizes) >= 10, timeout=20), "no composite frames"
        assert sizes[-1] == (1280, 720)  # the composite, not the publisher's own 160x120 picture
        assert await wait_for(lambda: len(levels) >= 50 and max(levels[-25:]) > 500, timeout=10), "no mixed sound"
    finally:
        await pub.close()
        await sub.close()
