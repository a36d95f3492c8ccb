"""Test endpoints for the MCU path: link class, noisy cameras, pitched tones, and what a
subscriber's composite/mix tracks received (pictures, fps, audio, RTP sequence numbers)."""

from __future__ import annotations

import fractions
import math
import socket
import time
from typing import Any

import numpy as np
from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from endpoints.agent.nack_repeat import repeat_nacks
from endpoints.agent.sources import Paced
from mcu.audio import opus_has_lbrr
from mcu.api import PeerSpec
from mcu.peer.codec_choice import prefer_codecs
from tests.support.media_clients import VIDEO_RATE, Client, PatternTrack


class NoisyTrack(PatternTrack):
    """A publisher's colour plus moving noise: the composite does not compress to nothing, so
    every rendition's encoder really spends its bitrate (a thin link feels it)."""

    def __init__(
        self, shade: int, width: int = 320, height: int = 240, fps: int = 15, noise: int = 24, seed: int = 0
    ) -> None:
        super().__init__(shade, width, height, fps)
        self.noise = noise
        self._rng = np.random.default_rng(seed)

    async def recv(self) -> VideoFrame:
        n = await self.pace.next()
        noise = self._rng.integers(-self.noise, self.noise + 1, (self.height, self.width, 1))
        img = np.clip(self.shade + noise, 0, 255).astype(np.uint8).repeat(3, axis=2)
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = n * (VIDEO_RATE // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        return frame


class PitchTrack(MediaStreamTrack):
    """A tone of a given pitch, 20 ms frames (aiortc adds the RFC 6464 level). ``syllabic``:
    a 4 Hz envelope and a weak overtone, closer to speech (Opus's voice detection then codes
    in-band FEC; for a steady pure tone it does not)."""

    kind = "audio"

    def __init__(self, hz: float, amplitude: int = 9000, syllabic: bool = False) -> None:
        super().__init__()
        self.hz, self.amplitude, self.syllabic = hz, amplitude, syllabic
        self.pace = Paced(0.02, resync_after=math.inf)

    async def recv(self) -> AudioFrame:
        n = await self.pace.next()
        t = (np.arange(960) + n * 960) / 48000
        wave = np.sin(2 * np.pi * self.hz * t) * self.amplitude
        if self.syllabic:
            wave = wave * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))
            wave += np.sin(2 * np.pi * self.hz * 2.01 * t) * self.amplitude * 0.2
        data = wave.astype(np.int16)
        frame = AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = n * 960
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


class MixClient(Client):
    """A ``Client`` with a link class and media mode, keeping what its tracks received."""

    def __init__(
        self,
        node: Any,
        meeting: str,
        endpoint: str,
        *,
        link: str = "fibre",
        mode: str | None = None,
        video_codecs: list[str] | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(node, meeting, endpoint, **kw)
        self.video_codecs = video_codecs  # what its video lines offer, in order (None: all aiortc has)
        extra = {"media_mode": mode} if mode else {}
        self.spec = PeerSpec(
            meeting_id=meeting,
            endpoint_id=endpoint,
            display_name=endpoint,
            role="participant",
            link=link,
            publish=self.spec.publish,
            extra=extra,
        )
        self.latest: dict[str, VideoFrame] = {}  # track id -> latest picture
        self.sizes: dict[str, tuple[int, int]] = {}
        self.pcm: dict[str, list[tuple[float, np.ndarray]]] = {}
        self.rtp: dict[str, list[tuple[float, int, bytes]]] = {}  # mid -> (t, seq, payload)
        self.on_gathered: list[Any] = []  # called with the pc once its sockets exist
        self._video_ssrc: dict[str, int] = {}  # mid -> media SSRC of the video that arrived

    async def _join(self) -> None:
        self.peer = await self.node.open_peer(self.spec, self._on_event)
        for track, recv, kind in ((self.audio, self.recv_audio, "audio"), (self.video, self.recv_video, "video")):
            if track is not None:
                self.pc.addTransceiver(track, direction="sendrecv" if recv else "sendonly")
            elif recv:
                self.pc.addTransceiver(kind, direction="recvonly")
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video" and self.video_codecs:
                prefer_codecs(transceiver, "video", self.video_codecs)  # as a page's setCodecPreferences
        await self.pc.setLocalDescription(await self.pc.createOffer())
        # every client shares the test's one event loop with the node: give its socket the
        # receive buffer a real endpoint's own process would have
        for proto in self.pc.getTransceivers()[0].receiver.transport.transport._connection._protocols:
            sock = proto.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        for hook in self.on_gathered:
            hook(self.pc)
        answer = await self.peer.handle_offer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _consume(self, track: MediaStreamTrack) -> None:
        frames = self.frames[track.id]
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if track.kind == "video":
                    self.latest[track.id] = frame  # converted only when a test looks
                    self.sizes[track.id] = (frame.width, frame.height)
                    frames.append((now, 0))
                else:
                    mono = frame.to_ndarray().reshape(-1)[:: len(frame.layout.channels)]
                    self.pcm.setdefault(track.id, []).append((now, mono.astype(np.float32)))
                    frames.append((now, 0))
        except MediaStreamError:
            pass

    def picture(self, track: MediaStreamTrack) -> np.ndarray:
        return self.latest[track.id].to_ndarray(format="rgb24")

    def role_of(self, track: MediaStreamTrack) -> str | None:
        """The node's output role (composite, mix, main, audio) feeding one of our tracks."""
        peer = self.node.meetings[self.spec.meeting_id].peers[self.spec.endpoint_id]
        for t in self.pc.getTransceivers():
            if t.receiver.track is track and t.mid in peer.outputs:
                return peer.outputs[t.mid].role
        return None

    def track(self, role: str) -> MediaStreamTrack | None:
        return next((t for t in self.tracks if self.role_of(t) == role), None)

    def record_rtp(self, pc: Any = None) -> None:
        """Keep (arrival, seq, payload) of every audio RTP packet; note video SSRCs."""
        for t in self.pc.getTransceivers():
            receiver, mid, audio = t.receiver, t.mid, t.kind == "audio"
            original = receiver._handle_rtp_packet
            log = self.rtp.setdefault(mid, []) if audio else None

            async def spy(
                packet: Any, arrival_time_ms: int, original=original, log=log, mid=mid, receiver=receiver
            ) -> None:
                if log is not None:
                    log.append((time.monotonic(), packet.sequence_number, packet.payload))
                elif mid not in self._video_ssrc and packet.ssrc not in getattr(
                    receiver, "_RTCRtpReceiver__rtx_ssrc", {}
                ):
                    self._video_ssrc[mid] = packet.ssrc
                await original(packet, arrival_time_ms)

            receiver._handle_rtp_packet = spy

    def repeat_nacks(self, interval: float = 0.2) -> None:
        """Re-send NACKs for still-missing video packets, as browsers and the room-terminal agent
        do (endpoints.agent.nack_repeat): aiortc alone stalls on one lost NACK."""
        self._spawn(repeat_nacks(self.pc, interval))

    def fps(self, track: MediaStreamTrack | None, t0: float, t1: float) -> float:
        if track is None:
            return 0.0
        n = sum(1 for t, _ in self.frames.get(track.id, []) if t0 <= t < t1)
        return n / (t1 - t0)


def tile_mean(picture: np.ndarray, col: int, row: int) -> float:
    """Mean grey of the centre of a 2x2 grid tile (labels sit at the tiles' bottom)."""
    h, w = picture.shape[:2]
    y0, x0 = row * h // 2, col * w // 2
    return float(picture[y0 + h // 8 : y0 + h // 4, x0 + w // 8 : x0 + 3 * w // 8].mean())


def audio_loss(packets: list[tuple[float, int, bytes]]) -> dict[str, float]:
    """Over the received sequence range: lost %, concealed % (lost and not recoverable from
    the next packet's in-band FEC) and the longest run of lost packets."""
    seqs = {}
    base = None
    for _, seq, payload in packets:
        if base is None:
            base = seq
        seqs[(seq - base) & 0xFFFF] = payload
    if not seqs:
        return {"expected": 0, "lost_pct": 100.0, "concealed_pct": 100.0, "longest_gap": 0}
    expected = max(seqs) + 1
    lost = [i for i in range(expected) if i not in seqs]
    concealed = [i for i in lost if not (i + 1 in seqs and opus_has_lbrr(seqs[i + 1]))]
    longest = run = 0
    for i in range(expected):
        run = run + 1 if i not in seqs else 0
        longest = max(longest, run)
    fec = sum(1 for p in seqs.values() if opus_has_lbrr(p))
    return {
        "expected": expected,
        "fec_pct": 100 * fec / len(seqs),
        "lost_pct": 100 * len(lost) / expected,
        "concealed_pct": 100 * len(concealed) / expected,
        "longest_gap": longest,
    }


def tone_power(pcm: np.ndarray, hz: float, rate: int = 48000) -> float:
    """Share of the signal's power within +-20 Hz of ``hz``."""
    spec = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / rate)
    band = (freqs > hz - 20) & (freqs < hz + 20)
    return float(spec[band].sum() / max(spec.sum(), 1e-9))
