"""The real-time 20 ms clock: steady output without input, drift-free deadlines, stop()."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from mcu.audio import AudioMixer, MixerClock


@pytest.mark.parametrize("offload", [True, False])
async def test_clock_emits_50_packets_per_second_without_input(offload):
    m = AudioMixer()
    got: list[int] = []
    m.listener("xa-1", "thin", on_packet=lambda payload, ts: got.append(ts))
    clock = MixerClock(m, offload=offload)
    clock.start()
    clock.start()  # idempotent
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.sleep(0.6)
    await clock.stop()
    elapsed = loop.time() - t0
    await clock.stop()  # idempotent
    assert not clock.running
    # absolute deadlines: the tick count follows wall time, it does not drift behind
    assert abs(clock.ticks - elapsed / 0.02) <= 6 + clock.skipped
    assert len(got) == clock.ticks
    if clock.skipped == 0:
        assert np.all(np.diff(got) == 960)
    lag = clock.lag_stats()
    assert lag["max_ms"] >= lag["p99_ms"] >= 0.0


async def test_stalled_loop_skips_ticks_instead_of_bursting():
    m = AudioMixer()
    clock = MixerClock(m, offload=False, max_behind=3)
    clock.start()
    await asyncio.sleep(0.05)
    import time

    time.sleep(0.2)  # block the event loop: ten ticks are missed
    await asyncio.sleep(0.05)
    await clock.stop()
    assert clock.skipped >= 5
    assert clock.lag_stats()["max_ms"] >= 100


async def test_mixer_start_stop_is_idempotent_and_frees_codecs():
    from tests.mcu.audio.helpers import TONES, tone

    m = AudioMixer()
    got: list[int] = []
    m.listener("xa-1", "fibre", on_packet=lambda payload, ts: got.append(ts))
    m.listener("hanoi", "thin")
    for i in range(10):
        m.push("hanoi", tone(TONES["hanoi"])[i], i, i * 960, 30)
    clock = m.start()
    assert m.start() is clock
    await asyncio.sleep(0.15)
    await m.stop()
    await m.stop()
    assert not clock.running and m.clock is None
    assert len(got) >= 3 and m.decodes >= 1
    assert not m._encoders and m.sources["hanoi"].decoder is None
    n = len(got)
    await asyncio.sleep(0.05)
    assert len(got) == n  # nothing after stop
