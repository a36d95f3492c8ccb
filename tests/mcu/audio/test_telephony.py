"""G.711/G.722 for SIP room systems: codec facts, round trips at 48 kHz, and the mixer's telephony
profiles (tone and level heard by the room's decoder, N-1, one encode per output whatever the
number of rooms)."""

from __future__ import annotations

import numpy as np
import pytest

from mcu.audio import TELEPHONY, AudioMixer, TelephonyDecoder, TelephonyEncoder
from mcu.audio.codec import PROFILES

from tests.mcu.audio.helpers import TONES, feed, tone_strengths

CODECS = ("PCMU", "PCMA", "G722")
AMPLITUDE = 0.3  # tone_packets' level


def sine(freq: float, seconds: float, amplitude: float = AMPLITUDE) -> np.ndarray:
    n = np.arange(int(48000 * seconds))
    return (amplitude * np.sin(2 * np.pi * freq * n / 48000)).astype(np.float32)


def peak_hz(pcm: np.ndarray) -> float:
    pcm = pcm[-24000:]
    spec = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    return float(np.fft.rfftfreq(pcm.size, 1 / 48000)[spec.argmax()])


def level_db(pcm: np.ndarray, amplitude: float = AMPLITUDE) -> float:
    """RMS of the last half second relative to a sine of ``amplitude``."""
    rms = float(np.sqrt(np.mean(np.square(pcm[-24000:], dtype=np.float64))))
    return 20 * np.log10(rms / (amplitude / np.sqrt(2)))


def test_codec_facts_follow_rfc_3551():
    assert {n: (c.payload_type, c.clock_rate, c.sample_rate) for n, c in TELEPHONY.items()} == {
        "PCMU": (0, 8000, 8000),
        "PCMA": (8, 8000, 8000),
        "G722": (9, 8000, 16000),  # RTP clock 8000 although it samples at 16 kHz (4.5.2)
    }
    assert [TELEPHONY[n].samples_per_frame for n in CODECS] == [160, 160, 320]
    assert all(PROFILES[c.profile].codec == n for n, c in TELEPHONY.items())


@pytest.mark.parametrize("codec", CODECS)
def test_a_tone_survives_encode_and_decode_at_48khz(codec):
    enc, dec = TelephonyEncoder(codec), TelephonyDecoder(codec)
    sig = sine(440, 1.0)
    payloads = [enc.encode(sig[i : i + 960]) for i in range(0, sig.size, 960)]
    assert {len(p) for p in payloads} == {160}  # 64 kbit/s: 160 bytes per 20 ms, G.722 too
    pcm = [dec.decode(p) for p in payloads]
    assert {p.size for p in pcm} == {960} and pcm[0].dtype == np.float32
    out = np.concatenate(pcm)
    assert peak_hz(out) == pytest.approx(440, abs=3)
    assert abs(level_db(out)) < 1.0
    strengths = tone_strengths(out, (440.0, 1000.0, 2500.0))
    assert strengths[1000.0] < 0.01 and strengths[2500.0] < 0.01  # no aliases or distortion peaks


@pytest.mark.parametrize("codec", CODECS)
def test_rooms_packets_of_10_20_30_ms_decode_to_their_duration(codec):
    enc = TelephonyEncoder(codec)
    sig = sine(1000, 0.6)
    stream = b"".join(enc.encode(sig[i : i + 960]) for i in range(0, sig.size, 960))
    dec, out, pos = TelephonyDecoder(codec), [], 0
    for ms in (10, 20, 30) * 6:
        size = 8 * ms  # 64 kbit/s = 8 bytes per ms in all three codecs
        pcm = dec.decode(stream[pos : pos + size])
        assert pcm.size == 48 * ms
        out.append(pcm)
        pos += size
        if ms == 30:
            assert dec.decode(b"").size == 0  # an empty payload neither ends the decoder nor adds time
    joined = np.concatenate(out)
    assert peak_hz(joined) == pytest.approx(1000, abs=3)
    assert abs(level_db(joined)) < 1.0


def telephony_mixer(listeners: dict[str, str]) -> AudioMixer:
    m = AudioMixer(max_speakers=3)
    for ep, profile in listeners.items():
        m.listener(ep, profile)
    return m


def heard(m: AudioMixer, ep: str, codec: str) -> np.ndarray:
    dec = TelephonyDecoder(codec)
    return np.concatenate([dec.decode(p) for _, p in m.listeners[ep].packets])


@pytest.mark.parametrize("codec", CODECS)
def test_a_room_hears_the_speakers_tone_at_its_level(codec):
    profile = TELEPHONY[codec].profile
    m = telephony_mixer({"room": profile, "laptop": "fibre"})
    feed(m, range(50), sources={"hanoi": 440.0})
    packets = m.listeners["room"].packets
    assert [ts for ts, _ in packets][-2:] == [48 * 960, 49 * 960]  # the mixer's 48 kHz clock
    assert {len(p) for _, p in packets} == {160}
    pcm = heard(m, "room", codec)
    assert peak_hz(pcm) == pytest.approx(440, abs=3)
    assert abs(level_db(pcm)) < 1.5, level_db(pcm)  # Opus in, mix, G.711/G.722 out


@pytest.mark.parametrize("codec", CODECS)
def test_a_speaking_room_does_not_hear_itself(codec):
    profile = TELEPHONY[codec].profile
    m = telephony_mixer({"hanoi": profile, "haiphong": profile, "xa-1": profile})
    feed(m, range(50))
    for ep, own in (("hanoi", 440.0), ("haiphong", 1000.0)):
        s = tone_strengths(heard(m, ep, codec), TONES.values())
        assert s[own] < 0.05, (ep, s)
        assert all(v > 0.3 for f, v in s.items() if f != own), (ep, s)
    s = tone_strengths(heard(m, "xa-1", codec), TONES.values())
    assert all(v > 0.3 for v in s.values()), s


def _telephony_encodes(rooms: int, monkeypatch) -> tuple[int, int]:
    calls: list[int] = []
    real = TelephonyEncoder.encode_frame
    monkeypatch.setattr(TelephonyEncoder, "encode_frame", lambda self, frame: calls.append(1) or real(self, frame))
    m = telephony_mixer({"hanoi": "pcmu", **{f"room-{i}": "pcmu" for i in range(rooms)}, "laptop": "thin"})
    feed(m, range(3))
    calls.clear()
    feed(m, range(3, 13))
    payloads = {id(m.listeners[f"room-{i}"].packets[-1][1]) for i in range(rooms)}
    assert len(payloads) == 1  # every room gets the same bytes
    return len(calls), m.encodes


def test_rooms_hearing_the_same_mix_cost_one_encode_per_tick(monkeypatch):
    # 10 ticks x (everyone/pcmu + hanoi's own mix-minus-me in pcmu): 2 telephony encodes a tick
    one = _telephony_encodes(1, monkeypatch)
    fifty = _telephony_encodes(50, monkeypatch)
    assert one[0] == fifty[0] == 20
    assert one[1] == fifty[1]  # all profiles together (everyone/thin for the laptop too)


def test_telephony_encoder_takes_only_the_mixers_frames():
    with pytest.raises(ValueError):
        TelephonyEncoder("PCMU", sample_rate=16000, frame_samples=320)
    with pytest.raises(ValueError, match="unknown telephony codec"):
        TelephonyDecoder("G729")
