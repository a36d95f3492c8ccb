"""Opus through PyAV: encoding profiles, a decoder, an encoder, and packet inspection.

Profiles name how a mixed output is encoded for a class of links (``fibre``, ``thin``: Opus) or
for a SIP room system's codec (``pcmu``, ``pcma``, ``g722``: encoded by ``mcu.audio.telephony``). ``thin`` turns on libopus
in-band FEC (LBRR: each packet also carries a low-bitrate copy of the previous frame, which the
receiver's decoder uses when a packet is lost) and tells the encoder the expected loss rate.
The option names are FFmpeg's libopusenc AVOptions (``application``, ``fec``, ``packet_loss``,
``vbr``); PyAV leaves options the encoder did not recognise in ``CodecContext.options`` after
``open()``, so the encoder refuses to start if any option was ignored.

``opus_has_lbrr`` reads the SILK header bits of a packet (RFC 6716 4.1 range decoder and
4.2.3 header bits) so tests and operators can verify that FEC really is on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import av
import numpy as np

SAMPLE_RATE = 48000


@dataclass(frozen=True)
class Profile:
    name: str
    bitrate: int  # bit/s
    fec: bool = False
    packet_loss: int = 0  # expected loss in %, steers how much FEC libopus spends
    application: str = "voip"  # voip | audio | lowdelay (Opus only)
    vbr: str = "on"  # on | constrained | off (constrained has no effect in SILK mode)
    extra: dict[str, str] = field(default_factory=dict)
    codec: str = "OPUS"  # or a telephony codec (PCMU, PCMA, G722: mcu.audio.telephony)

    def options(self) -> dict[str, str]:
        opts = {"application": self.application, "vbr": self.vbr}
        if self.fec:
            opts["fec"] = "1"
            opts["packet_loss"] = str(self.packet_loss)
        opts.update(self.extra)
        return opts


# Measured (libopus 1.6 in PyAV 18): with FEC at 15 % expected loss, libopus codes LBRR only
# above ~17.6 kbit/s in wideband SILK, so 20 kbit/s is the lowest useful "thin" rate. In VBR the
# LBRR bits come on top of the target: a synthetic syllabic voice averages ~9 kbit/s, a
# continuous mix of pure tones (a worst case) ~35 kbit/s. CBR would bound it but starves LBRR.
FIBRE = Profile("fibre", bitrate=48000, vbr="constrained")
THIN = Profile("thin", bitrate=20000, fec=True, packet_loss=15)
# SIP room systems that take no Opus hear the mix in their G.711/G.722 (mcu.audio.telephony)
PCMU = Profile("pcmu", bitrate=64000, codec="PCMU")
PCMA = Profile("pcma", bitrate=64000, codec="PCMA")
G722 = Profile("g722", bitrate=64000, codec="G722")
PROFILES: dict[str, Profile] = {p.name: p for p in (FIBRE, THIN, PCMU, PCMA, G722)}


class CodecError(Exception):
    pass


class OpusEncoder:
    """Mono Opus encoder fed float32 frames in [-1, 1]; one packet (bytes) per frame."""

    def __init__(self, profile: Profile, sample_rate: int = SAMPLE_RATE, frame_samples: int = 960):
        self.profile = profile
        self.sample_rate = sample_rate
        self.frame_samples = frame_samples
        cc = av.CodecContext.create("libopus", "w")
        cc.sample_rate = sample_rate
        cc.layout = "mono"
        cc.format = "flt"
        cc.bit_rate = profile.bitrate
        cc.thread_count = 1
        cc.options = profile.options()
        cc.open()
        if cc.options:
            raise CodecError(f"libopus ignored options {sorted(cc.options)} of {profile.name!r}")
        self._cc = cc
        self._pts = 0
        self.calls = 0

    def encode_frame(self, frame: av.AudioFrame) -> bytes | None:
        frame.pts = self._pts
        self._pts += self.frame_samples
        self.calls += 1
        packets = self._cc.encode(frame)
        return bytes(packets[-1]) if packets else None

    def encode(self, pcm: np.ndarray) -> bytes | None:
        return self.encode_frame(make_frame(pcm, self.sample_rate))


def make_frame(pcm: np.ndarray, sample_rate: int = SAMPLE_RATE) -> av.AudioFrame:
    """float32 mono samples -> PyAV frame (packed float)."""
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(pcm, dtype=np.float32)[None, :], format="flt", layout="mono"
    )
    frame.sample_rate = sample_rate
    return frame


class OpusDecoder:
    """Opus packet -> float32 mono samples with FFmpeg's native Opus decoder (faster than the
    libopus wrapper here). libavcodec exposes neither PLC nor FEC decoding: the mixer uses
    ``mcu.audio.libopus`` for those when it loads, else repeat-and-fade concealment."""

    def __init__(self, sample_rate: int = SAMPLE_RATE):
        cc = av.CodecContext.create("opus", "r")
        cc.sample_rate = sample_rate
        cc.layout = "mono"
        cc.thread_count = 1
        self._cc = cc
        self.calls = 0

    def decode(self, payload: bytes) -> np.ndarray | None:
        self.calls += 1
        try:
            frames = self._cc.decode(av.Packet(payload))
        except av.error.FFmpegError:
            return None
        if not frames:
            return None
        parts = [f.to_ndarray() for f in frames]
        pcm = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        if pcm.dtype != np.float32:
            pcm = pcm.astype(np.float32) / 32768.0
        if pcm.shape[0] > 1:  # planar stereo -> mono
            return pcm.mean(axis=0, dtype=np.float32)
        return pcm[0]


def opus_toc(packet: bytes) -> tuple[str, int, bool, int]:
    """(mode, bandwidth_hz, stereo, frame_code) from the TOC byte (RFC 6716 3.1)."""
    config = packet[0] >> 3
    stereo = bool(packet[0] & 0x04)
    if config < 12:
        mode, bw = "silk", (8000, 12000, 16000)[config // 4]
    elif config < 16:
        mode, bw = "hybrid", (24000, 48000)[(config - 12) // 2]
    else:
        mode, bw = "celt", (8000, 16000, 24000, 48000)[(config - 16) // 4]
    return mode, bw, stereo, packet[0] & 0x03


class _RangeDecoder:
    """Just enough of the RFC 6716 4.1 range decoder to read equiprobable header bits."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0
        self.rng = 128
        self.rem = self._byte()
        self.val = self.rng - 1 - (self.rem >> 1)
        self._normalize()

    def _byte(self) -> int:
        b = self.data[self.pos] if self.pos < len(self.data) else 0
        self.pos += 1
        return b

    def _normalize(self) -> None:
        while self.rng <= 1 << 23:
            self.rng <<= 8
            sym = self.rem
            self.rem = self._byte()
            sym = ((sym << 8) | self.rem) >> 1
            self.val = ((self.val << 8) + (0xFF & ~sym)) & 0x7FFFFFFF

    def bit(self) -> bool:
        s = self.rng >> 1
        hit = self.val < s
        if hit:
            self.rng = s
        else:
            self.val -= s
            self.rng -= s
        self._normalize()
        return hit


def opus_has_lbrr(packet: bytes) -> bool:
    """True if the first frame of a SILK or hybrid packet carries LBRR (in-band FEC) data.
    Handles single-frame packets (code 0) of up to 20 ms; CELT-only packets never carry it."""
    if len(packet) < 2:
        return False
    mode, _bw, stereo, code = opus_toc(packet)
    if mode == "celt" or code != 0:
        return False
    config = packet[0] >> 3
    if mode == "silk" and config % 4 == 3:  # 60 ms SILK: 3 VAD flags per channel
        return False
    rd = _RangeDecoder(packet[1:])
    rd.bit()  # VAD flag of the (mid) channel's 20 ms frame
    lbrr = rd.bit()
    if stereo:
        rd.bit()
        lbrr = rd.bit() or lbrr
    return lbrr


def tone_packets(
    freq: float,
    frames: int,
    profile: Profile = FIBRE,
    amplitude: float = 0.3,
    sample_rate: int = SAMPLE_RATE,
    frame_samples: int = 960,
) -> list[bytes]:
    """A sine tone encoded as Opus packets: the synthetic speaker of tests and benchmarks."""
    enc = OpusEncoder(profile, sample_rate, frame_samples)
    n = np.arange(frames * frame_samples)
    sig = (amplitude * np.sin(2 * np.pi * freq * n / sample_rate)).astype(np.float32)
    out = []
    for i in range(frames):
        pkt = enc.encode(sig[i * frame_samples : (i + 1) * frame_samples])
        if pkt is not None:
            out.append(pkt)
    return out
