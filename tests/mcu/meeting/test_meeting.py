"""Renegotiation, active speaker, mute, leave and crash, with real aiortc peers."""

import asyncio
import gc
import os

import pytest

from tests.support.media_clients import Client, PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.integration


def audio_frames(client: Client) -> dict[str, int]:
    return {t.id: len(client.frames[t.id]) for t in client.tracks if t.kind == "audio"}


async def test_second_speaker_added_by_server_offer_and_active_speaker(local_media_node):
    loud = Client(local_media_node, "m", "loud", audio=ToneTrack(loud=True), recv_audio=False, recv_video=False)
    quiet = Client(local_media_node, "m", "quiet", audio=ToneTrack(loud=False), recv_audio=False, recv_video=False)
    s = Client(local_media_node, "m", "s", publish=False, recv_video=False)
    try:
        await s.join()
        await loud.join()
        await quiet.join()
        # s offered one audio m-line; the second microphone needs a server-made offer
        assert await wait_for(lambda: s.offers_answered >= 1, timeout=5)
        assert await wait_for(
            lambda: len(audio_frames(s)) == 2 and all(n > 10 for n in audio_frames(s).values()), timeout=8
        )
        peer = local_media_node.meetings["m"].peers["s"]
        assert sorted(o.source.endpoint_id for o in peer.outputs.values() if o.source) == ["loud", "quiet"]
        assert await wait_for(lambda: {"type": "speaker", "endpoint": "loud"} in s.events, timeout=5)
        assert local_media_node.meetings["m"].speaker == "loud"
    finally:
        for c in (quiet, loud, s):
            await c.close()


async def test_mute_stops_forwarding_and_unmute_resumes(local_media_node):
    a = Client(local_media_node, "m", "a", video=PatternTrack(90), recv_video=False, recv_audio=False)
    s = Client(local_media_node, "m", "s", publish=False, recv_audio=False)
    try:
        await a.join()
        await s.join()
        assert await wait_for(lambda: len(s.video_frames()) >= 5)
        stream = next(iter(local_media_node.meetings["m"].peers["a"].streams.values()))
        await a.peer.set_muted("video", True)
        await asyncio.sleep(0.3)
        forwarded = stream.forwarded
        await asyncio.sleep(0.7)
        assert stream.forwarded == forwarded and stream.packets > 0
        n = len(s.video_frames())
        await a.peer.set_muted("video", False)
        assert await wait_for(lambda: len(s.video_frames()) >= n + 5)
    finally:
        await s.close()
        await a.close()


def _name(task: asyncio.Task) -> str:
    return task.get_coro().__qualname__


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_leave_and_crash_release_everything(local_media_node):
    a = Client(local_media_node, "m", "a", video=PatternTrack(90), recv_video=False, recv_audio=False)
    await a.join()
    await asyncio.sleep(1.0)  # a's own tasks (ICE, DTLS, RTCP) are all up
    n_tasks = len(asyncio.all_tasks())
    base_fds = open_fds()
    for i in range(12):
        s = Client(local_media_node, "m", f"s{i}", publish=False, recv_audio=False)
        await s.join()
        assert await wait_for(lambda: s.video_frames() != [], timeout=5)
        if i % 2:
            await s.close()  # orderly leave: client closes, signaling closes the peer
        else:
            await s.pc.close()  # client vanishes: the node notices the DTLS close by itself
            assert await wait_for(lambda: f"s{i}" not in local_media_node.meetings["m"].peers, timeout=5)
            await s.close()
    await wait_for(lambda: len(local_media_node.peers) == 1, timeout=5)
    await asyncio.sleep(0.5)
    gc.collect()
    assert len(local_media_node.peers) == 1
    extra = [_name(t) for t in asyncio.all_tasks()]
    assert len(extra) <= n_tasks + 1, sorted(extra)
    assert open_fds() <= base_fds + 2
    stream = next(iter(local_media_node.meetings["m"].peers["a"].streams.values()))
    assert stream.outputs() == []
    await a.close()
    assert local_media_node.meetings == {} and local_media_node.peers == set()


async def test_screen_share_gets_its_own_slot(local_media_node):
    a = Client(local_media_node, "m", "a", video=PatternTrack(40), recv_video=False, recv_audio=False)
    s = Client(local_media_node, "m", "s", publish=False, recv_audio=False)
    try:
        await s.join()
        # a publishes a camera and, as its second video m-line, a screen share
        a.pc.addTransceiver(PatternTrack(220), direction="sendonly")
        await a.join()
        peer = local_media_node.meetings["m"].peers["a"]
        assert sorted(st.source for st in peer.streams.values()) == ["camera", "screen"]
        assert await wait_for(lambda: s.offers_answered >= 1, timeout=5)

        def shades():
            return sorted(
                round(s.frames[t.id][-1][1] / 10) * 10
                for t in s.tracks
                if t.kind == "video" and len(s.frames[t.id]) >= 3
            )

        assert await wait_for(lambda: len(shades()) == 2, timeout=8)
        got = shades()
        assert abs(got[0] - 40) < 30 and abs(got[1] - 220) < 30
        roles = sorted(o.role for o in local_media_node.meetings["m"].peers["s"].outputs.values())
        assert roles == ["main", "slides"]
        # heavy loss reported by s: the camera pauses, the slides keep flowing
        meeting = local_media_node.meetings["m"]
        outs = {o.role: o for o in meeting.peers["s"].outputs.values()}
        for o in outs.values():
            o.fraction_lost = 100
        meeting.tick(asyncio.get_running_loop().time())
        assert outs["main"].source is None and outs["slides"].source is not None
        for o in outs.values():
            o.fraction_lost = 0
        meeting.tick(asyncio.get_running_loop().time())
        assert outs["main"].source is not None
    finally:
        await s.close()
        await a.close()


async def test_vanished_client_is_released_after_consent_fails(local_media_node, monkeypatch):
    """A client that dies without a word (no DTLS close): ICE consent freshness notices."""
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "CONSENT_INTERVAL", 0.2)
    monkeypatch.setattr(aioice.ice, "CONSENT_FAILURES", 3)
    a = Client(local_media_node, "m", "a", video=PatternTrack(90), recv_video=False, recv_audio=False)
    s = Client(local_media_node, "m", "s", publish=False, recv_audio=False)
    try:
        await a.join()
        await s.join()
        assert await wait_for(lambda: s.video_frames() != [])
        conn = s.pc.getTransceivers()[0].receiver.transport.transport._connection
        for proto in list(conn._protocols):
            proto.transport.close()  # the process is gone: nothing answers any more
        assert await wait_for(lambda: "s" not in local_media_node.meetings["m"].peers, timeout=8)
        stream = next(iter(local_media_node.meetings["m"].peers["a"].streams.values()))
        assert stream.outputs() == []
    finally:
        await s.close()
        await a.close()
