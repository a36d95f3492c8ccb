"""Opus (the mix) -> AAC-LC, for outputs whose players want AAC: HLS (MPEG-TS) and RTMP (FLV)."""

from __future__ import annotations

from fractions import Fraction

import av

from mcu.record.feeds import AUDIO_RATE


class AacTranscoder:
    """Decodes 20 ms Opus packets and encodes 1024-sample AAC frames (mono, 48 kHz). Output
    timestamps (ms) follow the input's: anchored at the first packet, re-anchored after a gap."""

    def __init__(self, bitrate: int = 64000) -> None:
        dec = av.CodecContext.create("opus", "r")
        dec.sample_rate, dec.layout = AUDIO_RATE, "mono"
        enc = av.CodecContext.create("aac", "w")
        enc.sample_rate, enc.layout, enc.format = AUDIO_RATE, "mono", "fltp"
        enc.bit_rate, enc.time_base = bitrate, Fraction(1, AUDIO_RATE)
        enc.open()
        self._decoder, self._encoder = dec, enc
        self._fifo = av.AudioFifo()
        self._base_ms: float | None = None
        self._fed = 0  # samples given to the encoder
        self._last_ms = -1

    @property
    def extradata(self) -> bytes:
        """AudioSpecificConfig, for the container's AAC stream."""
        return self._encoder.extradata

    def feed(self, payload: bytes, ms: int) -> list[tuple[bytes, int]]:
        """One Opus packet at ``ms`` -> the AAC packets now complete, as (data, ms)."""
        try:
            frames = self._decoder.decode(av.Packet(payload))
        except av.error.FFmpegError:
            return []
        queued = self._fifo.samples
        expected = None if self._base_ms is None else self._base_ms + (self._fed + queued) * 1000 / AUDIO_RATE
        if expected is None or abs(ms - expected) > 200:  # first packet, or a gap: re-anchor
            self._base_ms = ms - (self._fed + queued) * 1000 / AUDIO_RATE
        for f in frames:
            f.pts = None
            self._fifo.write(f)
        out = []
        size = self._encoder.frame_size or 1024
        while self._fifo.samples >= size:
            chunk = self._fifo.read(size)
            chunk.pts, chunk.time_base = self._fed, Fraction(1, AUDIO_RATE)
            self._fed += size
            for pkt in self._encoder.encode(chunk):
                t = max(0, round(self._base_ms + pkt.pts * 1000 / AUDIO_RATE))
                if t > self._last_ms:
                    self._last_ms = t
                    out.append((bytes(pkt), t))
        return out
