"""VP8 and H.264 in one meeting, with real aiortc peers on 127.0.0.1: each publisher's stream is
forwarded untouched in its own codec to a subscriber that accepts both, H.264 offers in the other
profiles and packetization mode 0 are answered with their own fmtp, and refusals are sentences."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from mcu.api import PeerSpec
from mcu.peer.bounded_stop import close_pc
from mcu.peer.codec_choice import prefer_codecs
from mcu.peer.negotiation import NegotiationError
from tests.support.media_clients import Client, PatternTrack, wait_for

pytestmark = pytest.mark.integration

VP8_SHADE, H264_SHADE = 60, 200


def main_output(node, meeting: str, endpoint: str):
    return next(o for o in node.meetings[meeting].peers[endpoint].outputs.values() if o.role == "main")


def stream_of(node, meeting: str, endpoint: str):
    return next(s for s in node.meetings[meeting].peers[endpoint].streams.values() if s.kind == "video")


async def shows(client: Client, shade: int, since: int) -> bool:
    """Decoded frames after the first ``since`` have the publisher's colour."""
    return await wait_for(
        lambda: (
            len(client.video_frames()) >= since + 6 and all(abs(x - shade) < 30 for _, x in client.video_frames()[-3:])
        ),
        timeout=15,
    )


async def test_vp8_and_h264_publishers_reach_a_subscriber_of_both_untouched_in_their_own_codec(local_media_node):
    node = local_media_node
    vp8 = Client(
        node, "m", "vp8", video=PatternTrack(VP8_SHADE), recv_video=False, recv_audio=False, video_codecs=["VP8"]
    )
    h264 = Client(
        node, "m", "h264", video=PatternTrack(H264_SHADE), recv_video=False, recv_audio=False, video_codecs=["H264"]
    )
    both = Client(node, "m", "both", publish=False, recv_audio=False)
    only_h264 = Client(node, "m", "only-h264", publish=False, recv_audio=False, video_codecs=["H264"])
    try:
        for client in (vp8, h264, both, only_h264):
            await client.join()
        assert (stream_of(node, "m", "vp8").codec, stream_of(node, "m", "h264").codec) == ("VP8", "H264")
        out = main_output(node, "m", "both")
        assert out.codec == "VP8" and set(out.payload_types) == {"VP8", "H264"}  # the meeting's order
        # an H.264-only subscriber's line says so: a VP8 source reaches it transcoded (helper B2's part)
        assert main_output(node, "m", "only-h264").codec == "H264"
        assert main_output(node, "m", "only-h264").payload_types.keys() == {"H264"}

        await node.set_floor("m", "vp8")
        assert await shows(both, VP8_SHADE, 0)
        assert out.source is stream_of(node, "m", "vp8") and out.pt == out.payload_types["VP8"][0]
        seen = len(both.video_frames())
        await node.set_floor("m", "h264")
        assert await shows(both, H264_SHADE, seen)  # the same track, now decoding H.264
        assert out.source is stream_of(node, "m", "h264") and out.pt == out.payload_types["H264"][0]
        assert await shows(only_h264, H264_SHADE, 0)  # same codec: forwarded to it as well
    finally:
        for client in (only_h264, both, h264, vp8):
            await client.close()


def with_h264_fmtp(sdp: str, profile: str, mode: int) -> str:
    """Every H.264 format of ``sdp`` rewritten to ``profile`` and packetization ``mode``."""
    return with_formats(sdp, [(profile, mode)])


def h264_pts(sdp: str) -> list[str]:
    return re.findall(r"a=rtpmap:(\d+) H264/90000", sdp)


def with_formats(sdp: str, formats: list[tuple[str, int]]) -> str:
    """The H.264 payload types of ``sdp`` said, in order, as ``formats`` (profile-level-id, mode),
    the last repeated: what a device that reads only those would offer."""
    pts = h264_pts(sdp)

    def fmtp(match: re.Match) -> str:
        if match[1] not in pts:
            return match[0]
        profile, mode = formats[min(pts.index(match[1]), len(formats) - 1)]
        return f"a=fmtp:{match[1]} level-asymmetry-allowed=1;packetization-mode={mode};profile-level-id={profile}"

    return re.sub(r"a=fmtp:(\d+) [^\r\n]*", fmtp, sdp)


def with_fmtp_of(sdp: str, original: str) -> str:
    """``sdp`` with each payload type's fmtp put back as ``original`` says it (aiortc reads only its own)."""
    said = dict(re.findall(r"a=fmtp:(\d+) ([^\r\n]*)", original))
    return re.sub(r"a=fmtp:(\d+) [^\r\n]*", lambda m: f"a=fmtp:{m[1]} {said.get(m[1], m[0][8 + len(m[1]) :])}", sdp)


class FormatsNode:
    """The media node as a client that reads only some H.264 ``formats`` sees it: its offers and
    answers say those formats; the node's answers are shown to aiortc in its own."""

    def __init__(self, node: Any, formats: list[tuple[str, int]]) -> None:
        self.node, self.formats = node, formats

    async def open_peer(self, spec: PeerSpec, on_event: Any) -> Any:
        return FormatsPeer(await self.node.open_peer(spec, on_event), self.formats)


class FormatsPeer:
    def __init__(self, peer: Any, formats: list[tuple[str, int]]) -> None:
        self.peer, self.formats = peer, formats

    async def handle_offer(self, sdp: str) -> str:
        return with_fmtp_of(await self.peer.handle_offer(with_formats(sdp, self.formats)), sdp)

    async def handle_answer(self, sdp: str) -> None:
        await self.peer.handle_answer(with_formats(sdp, self.formats))

    async def close(self) -> None:
        await self.peer.close()


def viewer(node: Any, meeting: str, endpoint: str, formats: list[tuple[str, int]]) -> Client:
    return Client(FormatsNode(node, formats), meeting, endpoint, publish=False, recv_audio=False, video_codecs=["H264"])


@pytest.mark.parametrize(("profile", "mode"), [("4d001f", 1), ("640c1f", 1), ("42e01f", 0)])
async def test_an_h264_publisher_in_another_profile_or_mode_is_answered_with_its_fmtp_and_forwarded(
    local_media_node, profile, mode
):
    node = local_media_node
    spec = PeerSpec("p", "whip", "whip", "participant", "fibre", True, {"renegotiate": False, "via": "whip"})
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    prefer_codecs(pc.addTransceiver(PatternTrack(H264_SHADE), direction="sendonly"), "video", ["H264"])
    reader = viewer(node, "p", "viewer", [(profile, 1)])  # reads the publisher's profile, either mode
    peer = await node.open_peer(spec, ignore)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        answer = await peer.handle_offer(with_h264_fmtp(pc.localDescription.sdp, profile, mode))
        first = re.search(r"m=video \S+ \S+ (\d+)", answer)[1]
        assert re.search(rf"a=rtpmap:{first} H264/90000", answer)
        assert (
            f"a=fmtp:{first} level-asymmetry-allowed=1;packetization-mode={mode};profile-level-id={profile}" in answer
        )
        # aiortc as the publisher knows only its own two formats: it is told its own back
        await pc.setRemoteDescription(RTCSessionDescription(with_h264_fmtp(answer, "42e01f", 1), "answer"))
        await reader.join()
        assert await shows(reader, H264_SHADE, 0)
        assert stream_of(node, "p", "whip").h264_format == (mode, int(profile[:2], 16))
        assert main_output(node, "p", "viewer").source is stream_of(node, "p", "whip")  # untouched
    finally:
        await reader.close()
        await close_pc(pc, "whip")
        await peer.close()


async def ignore(event: dict) -> None:
    """A WHIP client's events: it takes no server offers."""


async def test_an_offer_in_codecs_the_meeting_does_not_take_is_refused_in_words(local_media_node):
    spec = PeerSpec("r", "h264-only", "x", "participant", "fibre", True, {"video_codecs": ["VP8"]})
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    prefer_codecs(pc.addTransceiver("video", direction="sendrecv"), "video", ["H264"])
    try:
        await pc.setLocalDescription(await pc.createOffer())
        peer = await local_media_node.open_peer(spec, ignore)
        with pytest.raises(NegotiationError) as refused:
            await peer.handle_offer(pc.localDescription.sdp)
        assert str(refused.value) == "the offer's video codecs are H264; this meeting takes VP8"
        await peer.close()
    finally:
        await close_pc(pc, "r")


async def test_a_server_offer_lists_the_meetings_codecs_in_order_and_the_clients_answer_decides(local_media_node):
    node = local_media_node
    order = {"video_codecs": ["H264", "VP8"]}
    spec = PeerSpec("o", "presenter", "presenter", "participant", "fibre", True, {**order, "renegotiate": False})
    presenter = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    for shade in (VP8_SHADE, H264_SHADE):  # camera, then screen: both VP8 only
        prefer_codecs(presenter.addTransceiver(PatternTrack(shade), direction="sendonly"), "video", ["VP8"])
    viewer = Client(node, "o", "viewer", publish=False, recv_audio=False)
    viewer.spec.extra.update(order)
    peer = await node.open_peer(spec, ignore)
    try:
        await presenter.setLocalDescription(await presenter.createOffer())
        answer = await peer.handle_offer(presenter.localDescription.sdp)
        await presenter.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await viewer.join()
        assert await wait_for(lambda: viewer.offers_answered >= 1, timeout=10)  # the screen's slot
        offer = next(e["sdp"] for e in viewer.events if e["type"] == "offer")
        last_video = offer.split("m=video")[-1]
        assert last_video.index("H264/90000") < last_video.index("VP8/90000")
        slides = next(o for o in node.meetings["o"].peers["viewer"].outputs.values() if o.role == "slides")
        answered = viewer.pc.localDescription.sdp.split("m=video")[-1]
        first_pt = int(answered.split("\r\n")[0].split()[2])
        assert slides.codec == "H264" and slides.payload_types["H264"][0] == first_pt
        assert await wait_for(  # the VP8 screen reaches it untouched: its line has VP8 too
            lambda: any(len(f) >= 5 and abs(f[-1][1] - H264_SHADE) < 30 for f in viewer.frames.values()), timeout=15
        )
        assert slides.source is stream_of_role(node, "presenter", "screen")
    finally:
        await viewer.close()
        await close_pc(presenter, "presenter")
        await peer.close()


def stream_of_role(node, endpoint: str, source: str):
    return next(s for s in node.meetings["o"].peers[endpoint].streams.values() if s.source == source)
