"""A light SIP room system's media, in Python, for tests and benchmarks (127.0.0.1 only).

``RtpRoom`` makes an SDP offer (plain RTP/AVP or RTP/SAVP with SDES), applies the answer a SIP
leg gives (``mcu.rtp.leg.RtpLeg.handle_offer``), then over real UDP sockets:

* sends a camera: a one-colour picture encoded once with PyAV's libx264 as H.264 packetization
  mode 0 (constrained baseline, slices that fit a packet), a GOP looped at ``fps``; an RTCP PLI or
  FIR from the node restarts the loop at its key frame (counted in ``keyframe_requests``);
* sends a tone in G.711 µ/A-law, G.722 or Opus, 20 ms packets;
* receives the composite (H.264 mode 0/1 depacketized with ``H264Assembler``, decoded: the last
  picture in ``picture``) and the mix (decoded to 48 kHz PCM: ``pcm()``).

``light=True`` decodes nothing: it only counts what arrives (``video_packets``, ``audio_packets``,
``video_bytes``), so that one process can play 50 rooms. It answers nothing but PLI/FIR: no RTCP
reports of its own, no NACK. ``send_dtmf`` sends RFC 4733 events (three end packets each);
``offer(direction=...)`` makes the re-INVITE offers of hold and resume.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import os
import random
import struct
import time
from fractions import Fraction
from typing import Any

import av
import numpy as np

from mcu.audio.codec import OpusDecoder, OpusEncoder, FIBRE, make_frame
from mcu.audio.telephony import TELEPHONY, TelephonyDecoder, TelephonyEncoder
from mcu.bridge.depacketize import H264Assembler, Vp8Assembler
from mcu.bridge.packetize import Packetizer
from mcu.rtp.offer import parse_offer
from mcu.rtp.sdes import Crypto, inbound_session, outbound_session
from mcu.sfu.rtp_header import FEEDBACK_FIR, FEEDBACK_PLI, parse_feedback, payload_bounds

_HEAD = struct.Struct("!BBHII")
VIDEO_PT = 96
VP8_PT = 97
OPUS_PT = 111
DTMF_PT = 101
SUITE = "AES_CM_128_HMAC_SHA1_80"


@functools.lru_cache(maxsize=8)  # 50 light rooms of one colour share one encode
def encode_camera(colour: tuple[int, int, int], width: int, height: int, fps: int, frames: int) -> list[bytes]:
    """A GOP of a one-colour picture (with a small moving mark) as Annex-B access units, the
    first an IDR: H.264 constrained baseline with slices of at most 1100 bytes (mode 0)."""
    ctx = av.CodecContext.create("libx264", "w")
    ctx.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": "slice-max-size=1100",
    }
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, fps), Fraction(fps)
    ctx.bit_rate = 300_000
    ctx.gop_size = frames
    ctx.open()
    out = []
    for n in range(frames):
        img = np.empty((height, width, 3), dtype=np.uint8)
        img[:] = colour
        img[:8, (n * 4) % width :][:, :8] = 255
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = n
        out += [bytes(p) for p in ctx.encode(frame)]
    out += [bytes(p) for p in ctx.encode(None)]
    return out


class _Socket(asyncio.DatagramProtocol):
    def __init__(self, room: RtpRoom, kind: str, rtcp: bool) -> None:
        self.room, self.kind, self.rtcp = room, kind, rtcp
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.room._received(self.kind, self.rtcp or 192 <= data[1] <= 223, data)


class RtpRoom:
    """One room system's media (see the module docstring)."""

    def __init__(
        self,
        *,
        audio: str = "PCMU",
        video: bool = True,
        srtp: bool = False,
        colour: tuple[int, int, int] = (220, 30, 30),
        tone_hz: float = 440.0,
        light: bool = False,
        bandwidth_kbps: int | None = None,
        size: tuple[int, int] = (320, 240),
        fps: int = 15,
        host: str = "127.0.0.1",
        sdp_port_offset: int = 0,
        camera: bool = True,
        offer_vp8: bool = False,
        h264_profile: str = "42e01f",
    ) -> None:
        self.audio_codec = audio.upper()
        self.video, self.srtp, self.light = video, srtp, light
        self.colour, self.tone_hz, self.fps, self.size = colour, tone_hz, fps, size
        self.bandwidth_kbps = bandwidth_kbps
        self.host = host
        self.sdp_port_offset = sdp_port_offset  # says another port than it sends from (a NAT)
        self.camera = camera  # False: its video line only receives (a camera switched off)
        self.offer_vp8 = offer_vp8  # VP8 after H.264 in its offer (it decodes either composite)
        self.h264_fmtp = f"packetization-mode=0;profile-level-id={h264_profile}"  # its decoder's level
        self.socks: dict[tuple[str, bool], _Socket] = {}
        self.ports: dict[str, int] = {}
        self.remote: dict[str, tuple[str, int]] = {}
        self.keys = {kind: Crypto(1, SUITE, os.urandom(30)) for kind in ("audio", "video")}
        self.send_sessions = {k: outbound_session(c) for k, c in self.keys.items()} if srtp else {}
        self.recv_sessions: dict[str, Any] = {}
        self.ssrc = {"audio": random.getrandbits(32), "video": random.getrandbits(32)}
        self.sending = True
        self._tasks: list[asyncio.Task[None]] = []
        self._gop: list[bytes] = []
        self._gop_at = 0
        self._video_pkt = Packetizer(VIDEO_PT)
        self.use_audio(audio)
        self._assemblers: dict[int, Any] = {VIDEO_PT: H264Assembler(), VP8_PT: Vp8Assembler()}
        self._decoders: dict[int, Any] = (
            {}
            if light
            else {pt: av.CodecContext.create(name, "r") for pt, name in ((VIDEO_PT, "h264"), (VP8_PT, "libvpx"))}
        )
        self._pcm: list[np.ndarray] = []
        self.picture: np.ndarray | None = None  # the last composite picture decoded (rgb24)
        self.frames_decoded = 0
        self.composite_codec = ""  # of the last composite frame decoded
        self.video_packets = self.audio_packets = self.video_bytes = self.rtcp_packets = 0
        self.keyframe_requests = 0
        self.undecryptable = 0
        self.media_ssrc: dict[str, int] = {}  # the SSRC of what the leg sends us, by kind
        self.last_seq: dict[str, int] = {}
        self.rtcp_in: list[bytes] = []  # the last compound RTCP packets from the leg, decrypted
        self.answers: list[str] = []  # the SDP answers applied, in order

    def use_audio(self, codec: str) -> None:
        """Send and receive ``codec`` from the next offer on (a re-INVITE's codec change)."""
        self.audio_codec = codec.upper()
        tel = TELEPHONY.get(self.audio_codec)
        self._audio_pt = tel.payload_type if tel else OPUS_PT
        self._audio_pkt = Packetizer(self._audio_pt)
        self._encoder: Any = TelephonyEncoder(self.audio_codec) if tel else OpusEncoder(FIBRE)
        self._audio_step = 160 if tel else 960
        self._decoder: Any = None if self.light else TelephonyDecoder(self.audio_codec) if tel else OpusDecoder()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for kind in ("audio", "video") if self.video else ("audio",):
            for _ in range(64):
                rtp_t, rtp_p = await loop.create_datagram_endpoint(
                    lambda k=kind: _Socket(self, k, False), local_addr=(self.host, 0)
                )
                port = rtp_t.get_extra_info("sockname")[1]
                try:
                    if port % 2:
                        raise OSError("odd port")
                    _, rtcp_p = await loop.create_datagram_endpoint(
                        lambda k=kind: _Socket(self, k, True), local_addr=(self.host, port + 1)
                    )
                except OSError:
                    rtp_t.close()
                    continue
                self.socks[kind, False], self.socks[kind, True] = rtp_p, rtcp_p
                self.ports[kind] = port
                break
        if self.video:
            self._gop = await asyncio.to_thread(encode_camera, self.colour, *self.size, self.fps, self.fps * 4)

    def offer(self, direction: str = "sendrecv") -> str:
        proto = "RTP/SAVP" if self.srtp else "RTP/AVP"
        lines = ["v=0", f"o=room 1 {int(time.time())} IN IP4 {self.host}", "s=room", f"c=IN IP4 {self.host}", "t=0 0"]
        if self.bandwidth_kbps:
            lines.append(f"b=AS:{self.bandwidth_kbps}")
        tel = TELEPHONY.get(self.audio_codec)
        rtpmap = f"{self.audio_codec}/8000" if tel else "opus/48000/2"
        dtmf_clock = 8000 if tel else 48000
        lines += [
            f"m=audio {self.ports['audio'] + self.sdp_port_offset} {proto} {self._audio_pt} {DTMF_PT}",
            f"a=rtpmap:{self._audio_pt} {rtpmap}",
        ]
        lines += [f"a=rtpmap:{DTMF_PT} telephone-event/{dtmf_clock}", f"a=fmtp:{DTMF_PT} 0-15", "a=ptime:20"]
        lines += self._crypto("audio") + [f"a={direction}"]
        if self.video:
            lines += [
                f"m=video {self.ports['video'] + self.sdp_port_offset} {proto} {VIDEO_PT}"
                + (f" {VP8_PT}" if self.offer_vp8 else ""),
                f"a=rtpmap:{VIDEO_PT} H264/90000",
            ]
            lines += [f"a=fmtp:{VIDEO_PT} {self.h264_fmtp}", "a=rtcp-fb:* nack pli"]
            lines += [f"a=rtpmap:{VP8_PT} VP8/90000"] if self.offer_vp8 else []
            lines += self._crypto("video") + [f"a={direction}"]
        self.sending = direction in ("sendrecv", "sendonly")
        return "\r\n".join(lines) + "\r\n"

    def _crypto(self, kind: str) -> list[str]:
        if not self.srtp:
            return []
        return [f"a=crypto:1 {SUITE} inline:{base64.b64encode(self.keys[kind].key).decode()}"]

    async def apply_answer(self, sdp: str) -> None:
        """Where the leg receives, its keys; starts sending (once)."""
        self.answers.append(sdp)
        answer = parse_offer(sdp)
        for media in answer.lines:
            if media.port == 0 or media.kind not in self.ports:
                continue
            self.remote[media.kind] = (media.address, media.port)
            self.remote[media.kind + "/rtcp"] = (media.rtcp_address or media.address, media.rtcp_port)
            if self.srtp and media.crypto:
                self.recv_sessions[media.kind] = inbound_session(media.crypto[0])
        if not self._tasks:
            loop = asyncio.get_running_loop()
            self._tasks.append(loop.create_task(self._send_audio()))
            if self.video and self.camera and "video" in self.remote:
                self._tasks.append(loop.create_task(self._send_video()))

    # -- sending -------------------------------------------------------------------------------

    def _send(self, kind: str, packet: bytes) -> None:
        packet = packet[:8] + struct.pack("!I", self.ssrc[kind]) + packet[12:]
        if self.srtp:
            packet = self.send_sessions[kind].protect(packet)
        sock = self.socks[kind, False].transport
        if kind in self.remote and sock is not None:
            sock.sendto(packet, self.remote[kind])

    async def _paced(self, period: float, step: Any) -> None:
        next_at = time.monotonic()
        while True:
            if self.sending:
                step()
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def _send_audio(self) -> None:
        n = 0
        ts = random.getrandbits(32)

        def step() -> None:
            nonlocal n, ts
            t = (np.arange(960) + n * 960) / 48000
            pcm = (np.sin(2 * np.pi * self.tone_hz * t) * 0.3).astype(np.float32)
            payload = self._encoder.encode_frame(make_frame(pcm))
            n += 1
            if payload:
                self._send("audio", self._audio_pkt.audio(payload, ts))
            ts = (ts + self._audio_step) & 0xFFFFFFFF

        await self._paced(0.02, step)

    async def _send_video(self) -> None:
        ts = random.getrandbits(32)

        def step() -> None:
            nonlocal ts
            frame = self._gop[self._gop_at % len(self._gop)]
            self._gop_at += 1
            for packet in self._video_pkt.h264(frame, ts, mode=0):
                self._send("video", packet)
            ts = (ts + 90000 // self.fps) & 0xFFFFFFFF

        await self._paced(1 / self.fps, step)

    def send_rtcp(self, kind: str, packet: bytes) -> None:
        """An RTCP packet (a report, a NACK) to the leg's RTCP port of that m-line."""
        if self.srtp:
            packet = self.send_sessions[kind].protect_rtcp(packet)
        self.socks[kind, True].transport.sendto(packet, self.remote[kind + "/rtcp"])

    def send_dtmf(self, digit: str) -> None:
        """One RFC 4733 event: a start packet, one update, three end packets (same timestamp)."""
        event = "0123456789*#ABCD".index(digit)
        ts = random.getrandbits(32)
        pkt_seq = random.randrange(1 << 15)
        for i, end in enumerate((False, False, True, True, True)):
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, 400 * (i + 1))
            head = _HEAD.pack(0x80, (0x80 if i == 0 else 0) | DTMF_PT, pkt_seq + i, ts, 0)
            self._send("audio", head + payload)

    # -- receiving -----------------------------------------------------------------------------

    def _received(self, kind: str, rtcp: bool, data: bytes) -> None:
        session = self.recv_sessions.get(kind)
        if session is not None:
            try:
                data = session.unprotect_rtcp(data) if rtcp else session.unprotect(data)
            except Exception:
                self.undecryptable += 1
                return
        if rtcp:
            self.rtcp_packets += 1
            self.rtcp_in = [*self.rtcp_in[-49:], data]
            if any(item[0] in (FEEDBACK_PLI, FEEDBACK_FIR) for item in parse_feedback(data)):
                self.keyframe_requests += 1
                self._gop_at = 0  # the loop's key frame next
            return
        self.last_seq[kind], _, self.media_ssrc[kind] = struct.unpack_from("!HII", data, 2)
        if kind == "video":
            self.video_packets += 1
            self.video_bytes += len(data)
            if not self.light:
                self._decode_video(data)
        else:
            self.audio_packets += 1
            if self._decoder is not None:
                _, _, off, end = payload_bounds(data)
                pcm = self._decoder.decode(data[off:end])
                if pcm is not None and pcm.size:
                    self._pcm.append(pcm)
                    del self._pcm[:-250]  # the last 5 s

    def _decode_video(self, data: bytes) -> None:
        pt = data[1] & 0x7F
        if pt not in self._assemblers:
            return
        frame = self._assemblers[pt].push(data)
        if frame is None:
            return
        self.composite_codec = "VP8" if pt == VP8_PT else "H264"
        try:
            pictures = self._decoders[pt].decode(av.Packet(frame.payload))
        except av.error.FFmpegError:
            return
        for picture in pictures:
            self.picture = picture.to_ndarray(format="rgb24")
            self.frames_decoded += 1

    def pcm(self, seconds: float = 1.0) -> np.ndarray:
        """The mix as heard: the last ``seconds`` of it at 48 kHz."""
        if not self._pcm:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self._pcm)[-int(seconds * 48000) :]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for sock in self.socks.values():
            if sock.transport is not None:
                sock.transport.close()
