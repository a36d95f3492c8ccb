import asyncio

from tests.mcu.clients import Client, PatternTrack, ToneTrack, wait_for


async def test_video_and_audio_arrive_and_decode(node):
    pub = Client(node, "m1", "pub", video=PatternTrack(200), audio=ToneTrack())
    sub = Client(node, "m1", "sub", publish=False)
    await pub.join()
    await sub.join()
    try:
        assert await wait_for(lambda: len(sub.video_frames()) >= 10, timeout=15)
        assert all(abs(shade - 200) < 30 for _, shade in sub.video_frames()[-5:])
        audio = [t for t in sub.tracks if t.kind == "audio"]
        assert audio and await wait_for(lambda: len(sub.frames[audio[0].id]) >= 20)
        stream = next(s for s in node.meetings["m1"].router.streams.values() if s.kind == "video")
        assert stream.forwarded > 0
    finally:
        await sub.close()
        await pub.close()
