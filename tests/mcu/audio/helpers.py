"""Synthetic speakers and spectrum checks shared by the audio tests."""

from __future__ import annotations

import numpy as np

from mcu.audio import AudioMixer, Listener, OpusDecoder, tone_packets

TONES = {"hanoi": 440.0, "haiphong": 1000.0, "laocai": 2500.0}
FRAMES = 80

_cache: dict[float, list[bytes]] = {}


def tone(freq: float) -> list[bytes]:
    if freq not in _cache:
        _cache[freq] = tone_packets(freq, FRAMES)
    return _cache[freq]


def speech_like(seconds: float = 3.0) -> np.ndarray:
    """A voiced buzz (130 Hz with vibrato, 29 harmonics) with syllables and pauses."""
    n = np.arange(int(48000 * seconds))
    phase = 2 * np.pi * np.cumsum(130 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * n / 48000))) / 48000
    buzz = sum(np.sin(k * phase) / k for k in range(1, 30))
    env = np.clip(np.sin(2 * np.pi * 3 * n / 48000), 0, 1) * (np.sin(2 * np.pi * 0.4 * n / 48000) > -0.5)
    return (0.2 * buzz * env / np.abs(buzz).max()).astype(np.float32)


def feed(
    mixer: AudioMixer, frames: range, sources=TONES, level: int | None = 30, skip: set[tuple[str, int]] = frozenset()
) -> None:
    """Push frame i of every source, then tick, for each i."""
    for i in frames:
        for sid, freq in sources.items():
            if (sid, i) not in skip:
                mixer.push(sid, tone(freq)[i % FRAMES], i, i * 960, level)
        mixer.tick()


def decode_all(lst: Listener) -> np.ndarray:
    dec = OpusDecoder()
    return np.concatenate([dec.decode(p) for _, p in lst.packets])


def tone_strengths(pcm: np.ndarray, freqs) -> dict[float, float]:
    """Magnitude at each frequency relative to the strongest spectral peak."""
    pcm = pcm[-24000:]
    spec = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size)))
    bins = np.fft.rfftfreq(pcm.size, 1 / 48000)
    peak = spec.max()
    return {f: float(spec[np.abs(bins - f) < 15].max() / peak) for f in freqs}
