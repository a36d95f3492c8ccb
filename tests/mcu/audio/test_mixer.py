"""N-1 mixing, sharing of encoded output, listener-independent cost, concealment in the mix."""

from __future__ import annotations

import numpy as np
import pytest

from mcu.audio import EVERYONE, THIN, AudioMixer, OpusEncoder, libopus, tone_packets
from mcu.audio.mixer import dbov, soft_clip

from tests.mcu.audio.helpers import TONES, decode_all, feed, tone, tone_strengths


@pytest.fixture
def mixer():
    m = AudioMixer(max_speakers=3)
    for sid in TONES:
        m.listener(sid, "fibre")
    m.listener("xa-1", "fibre")
    m.listener("xa-2", "thin")
    return m


def test_mix_minus_me_lacks_own_voice_and_everyone_has_all(mixer):
    feed(mixer, range(60))
    assert mixer.stats()["selected"] == sorted(TONES)
    for sid, own in TONES.items():
        lst = mixer.listeners[sid]
        assert lst.output == sid
        s = tone_strengths(decode_all(lst), TONES.values())
        assert s[own] < 0.05, (sid, s)
        assert all(v > 0.3 for f, v in s.items() if f != own), (sid, s)
    for listener_id in ("xa-1", "xa-2"):
        lst = mixer.listeners[listener_id]
        assert lst.output == EVERYONE
        s = tone_strengths(decode_all(lst), TONES.values())
        assert all(v > 0.3 for v in s.values()), (listener_id, s)


def test_listeners_with_equal_output_share_the_same_bytes():
    m = AudioMixer(max_speakers=3)
    fibre = [m.listener(f"xa-f{i}", "fibre") for i in range(20)]
    thin = [m.listener(f"xa-t{i}", "thin") for i in range(20)]
    speakers = [m.listener(sid, "thin") for sid in TONES]
    feed(m, range(5))
    f0, t0 = fibre[0].packets[-1], thin[0].packets[-1]
    assert all(lst.packets[-1][1] is f0[1] for lst in fibre)
    assert all(lst.packets[-1][1] is t0[1] for lst in thin)
    assert f0[1] is not t0[1] and f0[0] == t0[0]
    own = [s.packets[-1][1] for s in speakers]
    assert len({id(p) for p in own}) == 3 and all(p is not t0[1] for p in own)


def _encodes_per_tick(listeners: int, monkeypatch) -> tuple[int, int]:
    calls = []
    real = OpusEncoder.encode_frame
    monkeypatch.setattr(OpusEncoder, "encode_frame", lambda self, frame: calls.append(1) or real(self, frame))
    m = AudioMixer(max_speakers=3)
    for sid in TONES:
        m.listener(sid, "fibre")
    for i in range(listeners):
        m.listener(f"xa-{i}", "thin" if i % 2 else "fibre")
    feed(m, range(3))
    calls.clear()
    decodes = m.decodes
    feed(m, range(3, 13))
    assert all(len(lst.packets) >= 10 for lst in m.listeners.values())
    return len(calls), m.decodes - decodes


def test_cost_per_tick_does_not_grow_with_listeners(monkeypatch):
    small = _encodes_per_tick(10, monkeypatch)
    large = _encodes_per_tick(200, monkeypatch)
    # 10 ticks x (everyone/fibre + everyone/thin + 3 mix-minus-me): 5 encodes, 3 decodes a tick
    assert small == large == (50, 30)


def test_only_selected_speakers_are_decoded():
    m = AudioMixer(max_speakers=2)
    m.listener("xa-1", "fibre")
    levels = {"hanoi": 20, "haiphong": 30, "laocai": 50}
    for i in range(20):
        for sid, freq in TONES.items():
            m.push(sid, tone(freq)[i], i, i * 960, levels[sid])
        m.tick()
    assert m.stats()["selected"] == ["haiphong", "hanoi"]
    assert m.decodes == 2 * 19  # prefill of 2: first tick plays nothing
    assert m.last_encodes == 1


def test_source_without_levels_is_measured_and_selected():
    m = AudioMixer(max_speakers=3)
    m.listener("xa-1", "fibre")
    feed(m, range(30), sources={"hanoi": 440.0}, level=None)
    assert m.stats()["selected"] == ["hanoi"]
    assert m.sources["hanoi"].measured is not None and m.sources["hanoi"].measured < 30
    s = tone_strengths(decode_all(m.listeners["xa-1"]), [440.0])
    assert s[440.0] > 0.9


def test_silence_filled_when_a_source_stops(mixer):
    feed(mixer, range(20))
    for _ in range(40):  # every source stopped sending
        mixer.tick()
    lst = mixer.listeners["xa-1"]
    assert lst.received == 60
    stamps = [ts for ts, _ in lst.packets]
    assert np.all(np.diff(stamps) == 960)
    tail = decode_all(lst)[-960 * 20 :]
    assert dbov(tail) > 60  # silence after the sources stopped
    for sid in TONES:
        st = mixer.stats()["sources"][sid]
        assert st["concealed"] == mixer.max_conceal  # short underrun, then idle (no more)


@pytest.mark.parametrize("decoder", ["libopus", "pyav"])
def test_missing_and_late_packets_are_concealed_and_counted(decoder):
    if decoder == "libopus" and not libopus.available():
        pytest.skip("libopus not loadable")
    mixer = AudioMixer(max_speakers=3, decoder=decoder)
    mixer.listener("xa-1", "fibre")
    feed(mixer, range(30), skip={("hanoi", 10), ("hanoi", 11), ("laocai", 20)})
    mixer.push("hanoi", tone(440.0)[11], 11, 11 * 960, 30)  # arrives after its tick
    feed(mixer, range(30, 40))
    st = mixer.stats()["sources"]
    how = "concealed_plc" if decoder == "libopus" else "concealed_fade"  # tones: no FEC
    assert (st["hanoi"]["concealed"], st["hanoi"]["late"], st["hanoi"][how]) == (2, 1, 2)
    assert (st["laocai"]["concealed"], st["laocai"][how]) == (1, 1)
    assert st["haiphong"]["concealed"] == 0
    assert mixer.listeners["xa-1"].received == 40  # one packet per tick, no gap


def test_lost_packet_of_a_thin_uplink_is_rebuilt_from_fec():
    if not libopus.available():
        pytest.skip("libopus not loadable")
    pkts = tone_packets(300.0, 40, THIN)
    mixer = AudioMixer(max_speakers=3, prefill=3)
    mixer.listener("xa-1", "fibre")
    for i in range(40):
        if i != 20:  # lost on the commune's uplink; 21 is buffered before 20's tick
            mixer.push("xa-commune", pkts[i], i, i * 960, 30)
        mixer.tick()
    st = mixer.stats()["sources"]["xa-commune"]
    assert (st["concealed"], st["concealed_fec"], st["concealed_plc"]) == (1, 1, 0)


def test_speaker_leaving_selection_gets_everyone_mix_and_encoder_is_dropped(mixer):
    feed(mixer, range(10))
    mixer.remove_source("laocai")
    feed(mixer, range(10, 12), sources={k: v for k, v in TONES.items() if k != "laocai"})
    assert mixer.listeners["laocai"].output == EVERYONE
    assert ("laocai", "fibre") not in mixer.last_outputs
    assert mixer.last_encodes == 4


def test_soft_clip_bounds_and_identity_below_knee():
    x = np.linspace(-3, 3, 961, dtype=np.float32)
    y = soft_clip(x)
    assert np.all(np.abs(y) <= 1.0) and np.all(np.diff(y) >= 0)
    quiet = np.linspace(-0.5, 0.5, 960, dtype=np.float32)
    assert soft_clip(quiet) is quiet


def test_bad_profile_and_parameters_are_rejected():
    m = AudioMixer()
    with pytest.raises(ValueError, match="unknown audio profile"):
        m.listener("xa-1", "satellite")
    with pytest.raises(ValueError):
        AudioMixer(max_speakers=0)
    with pytest.raises(ValueError):
        AudioMixer(sample_rate=44100)
    with pytest.raises(ValueError, match="not available"):
        AudioMixer(decoder="ffmpeg")
