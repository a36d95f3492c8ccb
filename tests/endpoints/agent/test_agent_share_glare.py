"""The terminal's share offer crossing a server-made offer (#17).

The server refuses an offer while its own is open (error ``retry``). aiortc cannot roll back, so
the agent applies a renegotiation offer only with its answer: the server's offer is answered from
a stable state, then the share is offered again. The server's new line must stay a receive line
(aiortc would otherwise hand it the slides line, which has no mid yet). The server side here is a
plain aiortc peer, so what it reads in each SDP is what a media node would read.
"""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection, RTCSessionDescription
import pytest

from endpoints.agent.media import MediaError, MeetingPeer, mark_slides
from endpoints.agent.oplog import OpLog
from endpoints.agent.sources import Sources, open_screen
from tests.support.media_clients import PatternTrack
from tests.support.waiting import until

pytestmark = pytest.mark.integration


def _sections(sdp: str) -> list[str]:
    return sdp.split("\r\nm=")[1:]


async def test_a_share_offer_refused_with_retry_answers_the_server_offer_then_offers_again(tmp_path):
    sent: list[tuple[str, dict]] = []

    async def send(type_: str, **fields) -> None:
        sent.append((type_, fields))

    sources = Sources("test", "none", (160, 120), fps=10)
    peer = MeetingPeer("m-1", sources, send, OpLog(tmp_path, "hg-test"), on_failed=lambda reason: None)
    server = RTCPeerConnection()
    try:
        starting = asyncio.create_task(peer.start())
        await until(lambda: sent, 5, what="the first offer")
        await server.setRemoteDescription(RTCSessionDescription(sent[0][1]["sdp"], "offer"))
        await server.setLocalDescription(await server.createAnswer())
        peer.on_answer(server.localDescription.sdp)
        await starting

        screen = open_screen("testsrc:red", (160, 120), 10)
        sharing = asyncio.create_task(peer.share(screen))
        await until(lambda: len(sent) == 2, 5, what="the share offer")
        crossed = sent[1][1]["sdp"]
        slides = [s for s in _sections(crossed) if "a=content:slides" in s]
        assert len(slides) == 1 and "a=sendonly" in slides[0] and screen.id in slides[0]

        server.addTransceiver(PatternTrack(100), direction="sendonly")  # the server wants another slot
        await server.setLocalDescription(await server.createOffer())
        await peer.on_offer(server.localDescription.sdp)  # its offer went out before ours arrived
        assert sent[2][0] == "answer"
        answer = _sections(sent[2][1]["sdp"])
        assert len(answer) == 3 and "a=recvonly" in answer[2]  # the server's new line receives
        await server.setRemoteDescription(RTCSessionDescription(sent[2][1]["sdp"], "answer"))
        peer.on_error("media busy: answer the server's offer first, then retry", "retry")

        await until(lambda: len(sent) == 4, 5, what="the share offered again")
        again = sent[3][1]["sdp"]
        sections = _sections(again)
        assert len(sections) == 4 and "a=content:slides" in sections[3] and "a=sendonly" in sections[3]
        assert sum("a=content:slides" in s for s in sections) == 1
        await server.setRemoteDescription(RTCSessionDescription(again, "offer"))
        await server.setLocalDescription(await server.createAnswer())
        peer.on_answer(server.localDescription.sdp)
        await asyncio.wait_for(sharing, 5)
        assert peer.pc.signalingState == "stable" and peer.screen is screen
        logged = [e["text"] for e in peer.log.events]
        assert any("đề nghị lại" in t for t in logged) and any("Đang chia sẻ tài liệu" in t for t in logged)
    finally:
        await peer.close()
        await server.close()


def test_mark_slides_marks_only_the_section_named():
    sdp = "v=0\r\nm=audio 9 x\r\na=mid:0\r\nm=video 9 x\r\na=mid:1\r\nm=video 9 x\r\na=mid:2\r\n"
    marked = mark_slides(sdp, "\r\na=mid:2\r\n")
    assert marked.count("a=content:slides") == 1
    assert _sections(marked)[2].startswith("video 9 x\r\na=content:slides\r\n")
    assert mark_slides(marked, "\r\na=mid:2\r\n") == marked  # never twice


async def test_a_refused_share_leaves_the_room_not_sharing(tmp_path):
    sent: list[tuple[str, dict]] = []

    async def send(type_: str, **fields) -> None:
        sent.append((type_, fields))

    sources = Sources("test", "none", (160, 120), fps=10)
    peer = MeetingPeer("m-1", sources, send, OpLog(tmp_path, "hg-test"), on_failed=lambda reason: None)
    server = RTCPeerConnection()
    try:
        starting = asyncio.create_task(peer.start())
        await until(lambda: sent, 5, what="the first offer")
        await server.setRemoteDescription(RTCSessionDescription(sent[0][1]["sdp"], "offer"))
        await server.setLocalDescription(await server.createAnswer())
        peer.on_answer(server.localDescription.sdp)
        await starting

        screen = open_screen("testsrc:blue", (160, 120), 10)
        sharing = asyncio.create_task(peer.share(screen))
        await until(lambda: len(sent) == 2, 5, what="the share offer")
        peer.on_error("media: too many video lines", "offer_refused")
        with pytest.raises(MediaError, match="too many video lines"):
            await asyncio.wait_for(sharing, 5)
        assert peer.screen is None and screen.readyState == "ended" and peer.stats()["sharing"] is False
        assert peer.pc.signalingState == "stable"  # nothing was applied: no rollback needed
    finally:
        await peer.close()
        await server.close()
