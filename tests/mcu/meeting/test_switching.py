"""Source switching (floor change), key-frame requests and NACK with real aiortc peers."""

import asyncio

import pytest

from tests.support.media_clients import Client, PatternTrack, wait_for

pytestmark = pytest.mark.integration


def spy_keyframes(client: Client) -> list:
    """Record key-frame requests that reach a publisher's aiortc sender."""
    calls: list = []
    for t in client.pc.getTransceivers():
        if t.kind == "video" and t.sender.track is not None:
            original = t.sender._send_keyframe

            def spy(original=original):
                calls.append(asyncio.get_running_loop().time())
                original()

            t.sender._send_keyframe = spy
    return calls


def shades_since(client: Client, t0: float) -> list[int]:
    return [shade for t, shade in client.video_frames() if t >= t0]


async def test_floor_switch_gives_clean_keyframe(local_media_node, monkeypatch):
    # no replay of cached key frames here: the switch must ask the new source for one
    monkeypatch.setattr("mcu.sfu.stream.REPLAY_MAX_AGE", -1.0)
    a = Client(local_media_node, "m", "a", video=PatternTrack(40), recv_video=False, recv_audio=False)
    b = Client(local_media_node, "m", "b", video=PatternTrack(210), recv_video=False, recv_audio=False)
    s = Client(local_media_node, "m", "s", publish=False, recv_audio=False)
    try:
        await a.join()
        await b.join()
        a_kf, b_kf = spy_keyframes(a), spy_keyframes(b)
        await s.join()
        await local_media_node.set_floor("m", "a")
        assert await wait_for(lambda: len([x for x in s.video_frames() if abs(x[1] - 40) < 30]) >= 5)
        out = next(o for o in local_media_node.meetings["m"].peers["s"].outputs.values() if o.role == "main")
        switches = out.switches
        t_switch = asyncio.get_running_loop().time()
        import time

        t0 = time.monotonic()
        await local_media_node.set_floor("m", "b")
        assert await wait_for(lambda: len([x for x in shades_since(s, t0) if abs(x - 210) < 30]) >= 5)
        after = shades_since(s, t0)
        first_b = next(i for i, x in enumerate(after) if abs(x - 210) < 30)
        # before the switch completes only a's picture, after it only b's: no mixed frames
        assert all(abs(x - 40) < 30 for x in after[:first_b])
        assert all(abs(x - 210) < 30 for x in after[first_b:])
        assert out.switches == switches + 1
        assert any(t >= t_switch for t in b_kf), "PLI for the new source reached publisher b"
        # back to a: still continuous and clean
        t1 = time.monotonic()
        await local_media_node.set_floor("m", "a")
        assert await wait_for(lambda: len([x for x in shades_since(s, t1) if abs(x - 40) < 30]) >= 5)
        later = shades_since(s, t1)
        k = next(i for i, x in enumerate(later) if abs(x - 40) < 30)
        assert all(abs(x - 40) < 30 for x in later[k:])
        assert a_kf is not None
    finally:
        for c in (s, b, a):
            await c.close()


async def test_subscriber_pli_reaches_publisher_merged_and_nack_is_answered(local_media_node):
    a = Client(local_media_node, "m", "a", video=PatternTrack(120), recv_video=False, recv_audio=False)
    s = Client(local_media_node, "m", "s", publish=False, recv_audio=False)
    try:
        await a.join()
        calls = spy_keyframes(a)
        await s.join()
        assert await wait_for(lambda: len(s.video_frames()) >= 5)
        out = next(o for o in local_media_node.meetings["m"].peers["s"].outputs.values() if o.role == "main")
        receiver = next(t.receiver for t in s.pc.getTransceivers() if t.kind == "video")
        await asyncio.sleep(0.6)
        before = len(calls)
        for _ in range(10):  # a burst of PLIs: merged into one or two requests
            await receiver._send_rtcp_pli(out.ssrc)
        assert await wait_for(lambda: len(calls) > before, timeout=3)
        await asyncio.sleep(0.7)
        assert 1 <= len(calls) - before <= 2
        # NACK for the last packets sent: answered from the cache (RTX when negotiated)
        stream = out.source
        last = (stream.last_seq + out.seq_off) & 0xFFFF
        await receiver._send_rtcp_nack(out.ssrc, [(last - 2) & 0xFFFF, (last - 1) & 0xFFFF])
        assert await wait_for(lambda: out.retransmitted >= 2, timeout=3)
        assert out.rtx_pt is not None
    finally:
        await s.close()
        await a.close()


async def test_publisher_gets_receiver_reports_and_remb(local_media_node):
    a = Client(local_media_node, "m", "a", video=PatternTrack(120), recv_video=False, recv_audio=False)
    s = Client(local_media_node, "m", "s", publish=False, recv_audio=False)
    try:
        await a.join()
        await s.join()
        sender = next(t.sender for t in a.pc.getTransceivers() if t.kind == "video")
        assert await wait_for(lambda: s.video_frames() != [])

        def target():
            encoder = sender._RTCRtpSender__encoder
            return getattr(encoder, "target_bitrate", 0)

        start = target()
        # REMB of 2.5 Mbit/s raises aiortc's VP8 target (500 kbit/s by default, 1.5 max)
        assert await wait_for(lambda: target() > start, timeout=4)
        stats = await a.pc.getStats()
        remote = [r for r in stats.values() if r.type == "remote-inbound-rtp"]
        assert remote and remote[0].packetsLost == 0
    finally:
        await s.close()
        await a.close()


async def test_packet_lost_before_the_node_is_recovered_from_publisher_rtx(local_media_node):
    a = Client(local_media_node, "m", "a", video=PatternTrack(120), recv_video=False, recv_audio=False)
    s = Client(local_media_node, "m", "s", publish=False, recv_audio=False)
    try:
        await a.join()
        await s.join()
        assert await wait_for(lambda: len(s.video_frames()) >= 3)
        transport = local_media_node.meetings["m"].peers["a"].transport
        stream = next(iter(local_media_node.meetings["m"].peers["a"].streams.values()))
        dropped = []

        class Lossy:  # drops one packet on the way into the node
            def on_rtp(self, data):
                if not dropped and stream.packets > 20:
                    dropped.append(data[2] << 8 | data[3])
                    return
                stream.on_rtp(data)

        transport.by_ssrc[stream.ssrc] = Lossy()
        assert await wait_for(lambda: stream.rtx_received >= 1, timeout=5)
        assert stream.nacks_sent >= 1 and stream.cached(dropped[0]) is not None
        n = len(s.video_frames())
        assert await wait_for(lambda: len(s.video_frames()) >= n + 5)
    finally:
        await s.close()
        await a.close()
