"""G.711 (PCMU, PCMA) and G.722 for SIP room systems, at the mixer's 48 kHz float32 mono.

Both directions use FFmpeg through PyAV: its codecs (``pcm_mulaw``, ``pcm_alaw``, ``g722``) and
its resampler (libswresample via ``av.AudioResampler``, which low-pass filters before
decimating). Measured on this machine (``loadtests/telephony_bench.py``): about 25-45 µs per
20 ms frame each way; the stdlib's ``audioop`` is cheaper but has no anti-alias filter and is gone
in Python 3.13, and hand-written companding would still need a resampler.

The resampler holds back a few samples at the start (its filter delay), so the first output of a
stream is short. Both classes pad that deficit with leading zeros: every decoded payload gives
exactly its duration at 48 kHz, every encoded 20 ms frame exactly one packet of 160 RTP ticks.

RTP facts (RFC 3551): static payload types 0, 8, 9; the RTP clock of all three is 8000 Hz, G.722's
too although it samples at 16 kHz (RFC 3551 4.5.2), so a 20 ms packet always advances the RTP
timestamp by 160.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from mcu.audio.codec import SAMPLE_RATE, make_frame

RTP_CLOCK = 8000
FRAME_MS = 20
TICKS_PER_FRAME = RTP_CLOCK * FRAME_MS // 1000  # 160 RTP clock ticks per 20 ms packet


@dataclass(frozen=True)
class TelephonyCodec:
    name: str  # upper case, as Stream.codec and SDP rtpmap
    payload_type: int  # static (RFC 3551 table 4)
    sample_rate: int  # what the codec samples at
    ffmpeg: str  # the libavcodec codec name
    bitrate: int  # bit/s
    clock_rate: int = RTP_CLOCK

    @property
    def samples_per_frame(self) -> int:
        """Codec samples in one 20 ms packet: 160 for G.711, 320 for G.722."""
        return self.sample_rate * FRAME_MS // 1000

    @property
    def profile(self) -> str:
        """The mixer profile that encodes this codec (mcu.audio.codec.PROFILES)."""
        return self.name.lower()


TELEPHONY: dict[str, TelephonyCodec] = {
    "PCMU": TelephonyCodec("PCMU", 0, 8000, "pcm_mulaw", 64000),
    "PCMA": TelephonyCodec("PCMA", 8, 8000, "pcm_alaw", 64000),
    "G722": TelephonyCodec("G722", 9, 16000, "g722", 64000),
}


def telephony_codec(name: str) -> TelephonyCodec:
    codec = TELEPHONY.get(name.upper())
    if codec is None:
        raise ValueError(f"unknown telephony codec {name!r}; known: {sorted(TELEPHONY)}")
    return codec


def _pad_front(pcm: np.ndarray, deficit: int) -> np.ndarray:
    if deficit <= 0:
        return pcm
    return np.concatenate([np.zeros(deficit, dtype=pcm.dtype), pcm])


class TelephonyDecoder:
    """A room's G.711/G.722 payloads -> float32 mono at 48 kHz, of any packet duration."""

    def __init__(self, codec: str):
        self.codec = telephony_codec(codec)
        cc = av.CodecContext.create(self.codec.ffmpeg, "r")
        cc.sample_rate = self.codec.sample_rate
        cc.layout = "mono"
        self._cc = cc
        self._up = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        self._ratio = SAMPLE_RATE // self.codec.sample_rate
        self._owed = 0  # 48 kHz samples the resampler still holds back
        self.calls = 0

    def decode(self, payload: bytes) -> np.ndarray:
        """``payload`` (one RTP packet's, 10/20/30 ms or any length) -> its duration at 48 kHz."""
        self.calls += 1
        if not payload:  # an empty packet would tell libavcodec the stream ended
            return np.zeros(0, dtype=np.float32)
        parts = []
        for frame in self._cc.decode(av.Packet(payload)):
            self._owed += frame.samples * self._ratio
            parts += [out.to_ndarray()[0] for out in self._up.resample(frame)]
        pcm = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)
        pcm = _pad_front(pcm, self._owed - pcm.size)
        self._owed = max(0, self._owed - pcm.size)
        return pcm


class TelephonyEncoder:
    """The mixer's encoder interface for G.711/G.722: 48 kHz frames of 20 ms -> one payload each."""

    def __init__(self, codec: str, sample_rate: int = SAMPLE_RATE, frame_samples: int = 960):
        if sample_rate != SAMPLE_RATE or frame_samples != SAMPLE_RATE * FRAME_MS // 1000:
            raise ValueError("telephony encoders take 48 kHz frames of 20 ms")
        self.codec = telephony_codec(codec)
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        cc = av.CodecContext.create(self.codec.ffmpeg, "w")
        cc.sample_rate = self.codec.sample_rate
        cc.layout = "mono"
        cc.format = "s16"
        cc.bit_rate = self.codec.bitrate
        cc.open()
        self._cc = cc
        self._down = av.AudioResampler(format="s16", layout="mono", rate=self.codec.sample_rate)
        self._pts = 0
        self.calls = 0

    def encode_frame(self, frame: av.AudioFrame) -> bytes:
        self.calls += 1
        size = self.codec.samples_per_frame
        resampled = self._down.resample(frame)
        if len(resampled) == 1 and resampled[0].samples == size:
            out = resampled[0]  # every frame but the first: straight to the codec
        else:  # short only at the start (the filter's delay): zeros in front
            parts = [f.to_ndarray()[0] for f in resampled]
            pcm = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)
            pcm = _pad_front(pcm, size - pcm.size)[:size]
            out = av.AudioFrame.from_ndarray(pcm[None, :], format="s16", layout="mono")
            out.sample_rate = self.codec.sample_rate
        out.pts = self._pts
        self._pts += size
        return b"".join(bytes(p) for p in self._cc.encode(out))

    def encode(self, pcm: np.ndarray) -> bytes:
        return self.encode_frame(make_frame(pcm, self.sample_rate))
