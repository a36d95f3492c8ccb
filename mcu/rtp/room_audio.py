"""A room system's sound into the meeting: its RTP audio as an Opus ``Stream`` with levels.

The meeting's mixer, speaker detection and SFU subscribers all take Opus with an RFC 6464
level in each packet. A room sends G.711/G.722 (decoded with ``mcu.audio.telephony``, buffered
into 20 ms frames at 48 kHz, encoded once with Opus) or Opus (decoded only for its level; the
payload is forwarded as it came). Either way the packets are ours: an SSRC-less header (the SFU
writes each subscriber's), own sequence numbers, timestamps in 48 kHz, the level extension with
id ``LEVEL_ID`` (the stream's ``audio_level_id``; subscribers' lines carry their own id).

A quiet room costs little: frames quieter than ``QUIET_DBOV`` are not encoded (a packet of Opus
silence, encoded once, stands for them), and a G.711 payload of nothing but zero samples (a muted
room's) is not even decoded.

RFC 4733 telephone-events on the same line become digits (``DtmfReceiver``).
"""

from __future__ import annotations

import random
import struct
import time

import numpy as np

from mcu.audio.codec import FIBRE, SAMPLE_RATE, OpusDecoder, OpusEncoder
from mcu.audio.mixer import dbov
from mcu.audio.telephony import TelephonyDecoder
from mcu.sfu.rtp_header import payload_bounds
from mcu.sfu.stream import Stream

LEVEL_ID = 1
FRAME = SAMPLE_RATE // 50  # 20 ms
_HEAD = struct.Struct("!BBHII")
DTMF_EVENTS = "0123456789*#ABCD"
# G.711 payload bytes of a zero sample (µ-law 0xFF/0x7F, A-law 0xD5/0x55): a muted room sends only these
G711_SILENCE = {"PCMU": b"\xff\x7f", "PCMA": b"\xd5\x55"}
# frames at or below -60 dBov (a room's muted or gated microphone) are sent as encoded silence
QUIET_DBOV = 60


class RoomMic:
    """Decodes the room's audio packets and feeds ``stream`` (kind audio, codec OPUS, source mic)."""

    def __init__(self, endpoint_id: str, stream_id: str, codec: str, keyframe_interval: float = 0.5) -> None:
        self.codec = codec.upper()
        self.stream = Stream(
            stream_id=stream_id,
            endpoint_id=endpoint_id,
            kind="audio",
            source="mic",
            codec="OPUS",
            clock_rate=SAMPLE_RATE,
            audio_level_id=LEVEL_ID,
            keyframe_interval=keyframe_interval,
        )
        self.stream.ssrc = random.getrandbits(32)  # what RTCP reports would name (none are sent for it)
        self._decoder: TelephonyDecoder | OpusDecoder = (
            OpusDecoder() if self.codec == "OPUS" else TelephonyDecoder(self.codec)
        )
        self._encoder = OpusEncoder(FIBRE) if self.codec != "OPUS" else None
        self._pcm = np.zeros(0, dtype=np.float32)
        self._seq = random.randrange(1 << 16)
        self._ts = random.randrange(1 << 32)
        self._last = 0.0
        self.undecodable = 0
        self._silence: bytes | None = None

    def push(self, data: bytes) -> None:
        """One RTP packet of the room's audio codec (payload type already checked)."""
        _, _, off, end = payload_bounds(data)
        payload = data[off:end]
        if not payload:
            return
        silent = G711_SILENCE.get(self.codec)
        pcm: np.ndarray | None
        if silent is not None and not payload.strip(silent):  # a muted room's digital silence: no decode
            pcm = np.zeros(len(payload) * SAMPLE_RATE // 8000, dtype=np.float32)
        else:
            pcm = self._decoder.decode(payload)
        if pcm is None or not pcm.size:
            self.undecodable += 1
            return
        if self._encoder is None:  # Opus: forwarded, with the level of what it carries
            self._emit(payload, dbov(pcm), pcm.size)
            return
        self._pcm = np.concatenate([self._pcm, pcm]) if self._pcm.size else pcm
        while self._pcm.size >= FRAME:
            frame, self._pcm = self._pcm[:FRAME], self._pcm[FRAME:]
            level = dbov(frame)
            packet = self._quiet_packet() if level >= QUIET_DBOV else self._encoder.encode(frame)
            if packet:
                self._emit(packet, level, FRAME)

    def _quiet_packet(self) -> bytes:
        """An Opus packet of silence, encoded once: what a quiet room's frames are sent as (most
        rooms of a big meeting are quiet, and an encode is most of a room's cost)."""
        if self._silence is None:
            encoder = OpusEncoder(FIBRE)
            zeros = np.zeros(FRAME, dtype=np.float32)
            self._silence = b""
            for _ in range(5):  # past the encoder's start-up frames
                self._silence = encoder.encode(zeros) or self._silence
        return self._silence

    def _emit(self, payload: bytes, level: int, samples: int) -> None:
        now = time.monotonic()
        if self._last and now - self._last > 0.1:  # a pause (hold, DTX): timestamps keep to the clock
            self._ts += int((now - self._last) * SAMPLE_RATE) // FRAME * FRAME
        self._last = now
        head = _HEAD.pack(0x90, 111, self._seq, self._ts & 0xFFFFFFFF, 0)
        ext = bytes((0xBE, 0xDE, 0, 1, LEVEL_ID << 4, level & 0x7F, 0, 0))
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + samples) & 0xFFFFFFFF
        self.stream.on_rtp(head + ext + payload)


class DtmfReceiver:
    """RFC 4733 telephone-event packets -> one digit per event, when it ends.

    A sender repeats the end packet three times (and may send several events in one call): an
    event is its RTP timestamp, reported on its first end packet only."""

    def __init__(self) -> None:
        self._done: list[int] = []  # timestamps of the last events reported

    def push(self, data: bytes) -> str | None:
        _, _, off, end = payload_bounds(data)
        if end - off < 4:
            return None
        event, flags = data[off], data[off + 1]
        if not flags & 0x80 or event >= len(DTMF_EVENTS):
            return None
        ts = struct.unpack_from("!I", data, 4)[0]
        if ts in self._done:
            return None
        self._done = [*self._done[-7:], ts]
        return DTMF_EVENTS[event]
