import asyncio

import pytest

from tests.support.media_clients import Client, PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.integration


async def test_video_and_audio_arrive_and_decode(local_media_node):
    pub = Client(local_media_node, "m1", "pub", video=PatternTrack(200), audio=ToneTrack())
    sub = Client(local_media_node, "m1", "sub", publish=False)
    await pub.join()
    await sub.join()
    try:
        assert await wait_for(lambda: len(sub.video_frames()) >= 10, timeout=15)
        assert all(abs(shade - 200) < 30 for _, shade in sub.video_frames()[-5:])
        audio = [t for t in sub.tracks if t.kind == "audio"]
        assert audio and await wait_for(lambda: len(sub.frames[audio[0].id]) >= 20)
        stream = next(s for s in local_media_node.meetings["m1"].router.streams.values() if s.kind == "video")
        assert stream.forwarded > 0
        # aiortc's RTCP sender reports describe the forwarded stream
        await asyncio.sleep(0.3)
        t = next(t for t in local_media_node.meetings["m1"].peers["sub"].pc.getTransceivers() if t.kind == "video")
        assert t.sender._RTCRtpSender__packet_count > 0
        assert t.sender._RTCRtpSender__ntp_timestamp > 0
    finally:
        await sub.close()
        await pub.close()


async def test_whip_publisher_and_whep_viewer(local_media_node):
    """WHIP/WHEP shape: one offer each (sendonly / recvonly), no server offers."""
    pub = Client(
        local_media_node, "w", "whip", video=PatternTrack(70), audio=ToneTrack(), recv_video=False, recv_audio=False
    )
    view = Client(local_media_node, "w", "whep", publish=False)
    object.__setattr__(pub.spec, "extra", {"renegotiate": False})
    object.__setattr__(view.spec, "extra", {"renegotiate": False})
    await pub.join()
    await view.join()
    try:
        assert "a=sendonly" in pub.pc.localDescription.sdp
        assert await wait_for(lambda: len(view.video_frames()) >= 5, timeout=10)
        assert all(abs(x - 70) < 30 for _, x in view.video_frames()[-3:])
        assert all(e["type"] != "offer" for e in view.events)
    finally:
        await view.close()
        await pub.close()


# The slow reader is made by pausing the client's UDP transport, which uvloop's transport cannot do.
@pytest.mark.asyncio(loop_factories=["asyncio"])
async def test_subscriber_that_stops_reading_does_not_hurt_the_others(local_media_node):
    pub = Client(local_media_node, "m2", "pub", video=PatternTrack(150), recv_video=False, recv_audio=False)
    slow = Client(local_media_node, "m2", "slow", publish=False, recv_audio=False)
    fast = Client(local_media_node, "m2", "fast", publish=False, recv_audio=False)
    try:
        for c in (pub, slow, fast):
            await c.join()
        assert await wait_for(lambda: slow.video_frames() and len(fast.video_frames()) >= 3)
        conn = slow.pc.getTransceivers()[0].receiver.transport.transport._connection
        for proto in conn._protocols:
            proto.transport.pause_reading()  # its socket fills up; the node must not care
        n_fast, n_slow = len(fast.video_frames()), len(slow.video_frames())
        await asyncio.sleep(1.5)
        assert len(fast.video_frames()) >= n_fast + 15  # ~15 fps keeps flowing
        assert len(slow.video_frames()) <= n_slow + 2
        stream = next(iter(local_media_node.meetings["m2"].peers["pub"].streams.values()))
        assert len(stream.outputs()) == 2 and "slow" in local_media_node.meetings["m2"].peers
    finally:
        for c in (fast, slow, pub):
            await c.close()
