"""A commune on a thin link (384 kbit/s down, 3 % loss, 150 ms RTT, emulated in user space)
next to a fibre room, in one meeting with real aiortc peers."""

import asyncio
import time

import pytest

from tests.support.media_clients import wait_for
from tests.mcu.bridge.helpers import MixClient, NoisyTrack, PitchTrack, audio_loss
from tests.mcu.bridge.lossy import LossyLink

pytestmark = pytest.mark.integration

LINK_BPS = 384_000
RUN_S = 14.0
WINDOW_S = 4.0  # "after 10 s": the figures are measured over the last 4 s of the run


async def test_thin_link_settles_on_a_fitting_rendition_fibre_unaffected(local_media_node):
    pubs = [
        MixClient(
            local_media_node,
            "m",
            f"p{i}",
            video=NoisyTrack(shade, width=160, height=120, seed=i),
            audio=PitchTrack(hz, syllabic=True),
            recv_video=False,
            recv_audio=False,
        )
        for i, (shade, hz) in enumerate(((60, 440), (190, 660)))
    ]
    thin = MixClient(local_media_node, "m", "commune", link="thin", publish=False)
    fibre = MixClient(local_media_node, "m", "district", link="fibre", mode="both", publish=False)
    link = LossyLink(LINK_BPS, loss=0.03, delay=0.075)
    # the thin client's transport goes through the emulated link from the first packet
    thin.on_gathered = [link.install, thin.record_rtp]
    thin.repeat_nacks()  # a browser repeats NACKs; aiortc alone stalls on one lost NACK
    try:
        for p in pubs:
            await p.join()
        await thin.join()
        await fibre.join()
        mcu = local_media_node.meetings["m"].mcu
        assert mcu.rendition_of("commune") == "360p"  # the link class sets the starting rendition
        assert await wait_for(lambda: thin.track("composite") is not None and fibre.track("composite") is not None, 10)
        t_start = time.monotonic()
        rows = []
        while time.monotonic() - t_start < RUN_S:
            await asyncio.sleep(1.0)
            t = time.monotonic()
            out = mcu.subs["commune"].out
            rows.append(
                (
                    round(t - t_start),
                    mcu.rendition_of("commune"),
                    round(link.kbps(t - 1, t)),
                    round(thin.fps(thin.track("composite"), t - 1, t)),
                    round(100 * out.fraction_lost / 256),
                    mcu.rendition_of("district"),
                )
            )
        t1 = time.monotonic()
        t0 = t1 - WINDOW_S
        kbps = link.kbps(t0, t1)
        fps = thin.fps(thin.track("composite"), t0, t1)
        audio = audio_loss([x for mid in thin.rtp for x in thin.rtp[mid] if x[0] >= t0])
        whole = audio_loss([x for mid in thin.rtp for x in thin.rtp[mid] if x[0] >= t_start])
        f_fps = fibre.fps(fibre.track("composite"), t0, t1)
        f_main = fibre.fps(fibre.track("main"), t0, t1)
        f_size = fibre.sizes.get(fibre.track("composite").id)
        print("\nweak link: second, commune rendition, received kbit/s, fps, RR loss %, district rendition")
        for row in rows:
            print("  ", row)
        print(
            f"commune, last {WINDOW_S:.0f} s: rendition {mcu.rendition_of('commune')}, {kbps:.0f} kbit/s "
            f"received ({100 * kbps * 1000 / LINK_BPS:.0f} % of the link), {fps:.1f} fps, "
            f"audio lost {audio['lost_pct']:.1f} %, concealed after FEC "
            f"{audio['concealed_pct']:.1f} % of {audio['expected']} frames "
            f"({audio['fec_pct']:.0f} % carry FEC), longest gap {audio['longest_gap']}; "
            f"whole run: audio lost {whole['lost_pct']:.1f} %, concealed "
            f"{whole['concealed_pct']:.1f} %; link drops: queue {link.dropped_queue}, "
            f"random {link.dropped_random}"
        )
        print(
            f"district (fibre, both): rendition {mcu.rendition_of('district')} {f_size}, composite "
            f"{f_fps:.1f} fps, SFU main {f_main:.1f} fps"
        )
        print("compositor:", {k: v for k, v in mcu.stats().items() if k != "sources"})
        assert thin._video_ssrc  # the composite's video arrived on its own media SSRC
        assert mcu.rendition_of("commune") in ("360p", "180p")
        assert kbps <= 0.9 * LINK_BPS / 1000
        assert fps >= 15
        assert audio["concealed_pct"] <= 5.0 and audio["longest_gap"] <= 3
        assert mcu.rendition_of("district") == "720p" and f_size == (1280, 720)
        assert all(row[-1] == "720p" for row in rows)
        assert f_fps >= 15 and f_main >= 10
    finally:
        link.close()
        for c in [fibre, thin] + pubs:
            await c.close()
