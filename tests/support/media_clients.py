"""Real aiortc clients for media-node tests (127.0.0.1 only), in process or through a node's /ws."""

from __future__ import annotations

import asyncio
import fractions
import json
import math
import time
from typing import Any

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame, VideoFrame

from endpoints.agent.sources import Paced
from mcu.peer.bounded_stop import close_pc
from mcu.peer.codec_choice import prefer_codecs
from mcu.api import PeerSpec
from tests.support.harness import WsClient

VIDEO_RATE = 90000


class PatternTrack(MediaStreamTrack):
    """Small synthetic video whose frames carry a per-publisher colour (cheap to encode)."""

    kind = "video"

    def __init__(self, shade: int, width: int = 160, height: int = 120, fps: int = 15) -> None:
        super().__init__()
        self.shade = shade
        self.width, self.height, self.fps = width, height, fps
        self.pace = Paced(1 / fps, resync_after=math.inf)

    async def recv(self) -> VideoFrame:
        n = await self.pace.next()
        img = np.full((self.height, self.width, 3), self.shade, dtype=np.uint8)
        img[:8, (n * 4) % self.width :][:, :8] = 255 - self.shade  # small moving mark
        frame = VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = n * (VIDEO_RATE // self.fps)
        frame.time_base = fractions.Fraction(1, VIDEO_RATE)
        return frame


class ToneTrack(MediaStreamTrack):
    """20 ms audio frames: a loud tone or silence (aiortc sets the RFC 6464 level)."""

    kind = "audio"

    def __init__(self, loud: bool = True) -> None:
        super().__init__()
        self.loud = loud
        self.pace = Paced(0.02, resync_after=math.inf)

    async def recv(self) -> AudioFrame:
        n = await self.pace.next()
        samples = 960
        if self.loud:
            t = (np.arange(samples) + n * samples) / 48000
            data = (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)
        else:
            data = np.zeros(samples, dtype=np.int16)
        frame = AudioFrame.from_ndarray(data.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = n * samples
        frame.time_base = fractions.Fraction(1, 48000)
        return frame


class Client:
    """A test endpoint: publishes tracks, receives and decodes what the node sends."""

    def __init__(
        self,
        node: Any,
        meeting: str,
        endpoint: str,
        *,
        publish: bool = True,
        video: MediaStreamTrack | None = None,
        audio: MediaStreamTrack | None = None,
        recv_video: bool = True,
        recv_audio: bool = True,
        video_codecs: list[str] | None = None,
    ) -> None:
        self.node = node
        self.video_codecs = video_codecs  # what its offer lists, in order, like setCodecPreferences (None: all)
        self.spec = PeerSpec(
            meeting_id=meeting,
            endpoint_id=endpoint,
            display_name=endpoint,
            role="participant",
            link="fibre",
            publish=publish,
        )
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.video, self.audio = video, audio
        self.recv_video, self.recv_audio = recv_video, recv_audio
        self.events: list[dict] = []
        self.frames: dict[str, list] = {}  # receiver track id -> decoded frames (summary)
        self.tracks: list[MediaStreamTrack] = []
        self._tasks: set[asyncio.Task] = set()
        self.peer: Any = None
        self.offers_answered = 0
        self._negotiating = asyncio.Lock()
        self.pc.on("track", self._on_track)

    async def join(self) -> None:
        async with self._negotiating:  # a server offer waits until our answer is applied
            await self._join()

    async def _join(self) -> None:
        self.peer = await self.node.open_peer(self.spec, self._on_event)
        for track, recv, kind in ((self.audio, self.recv_audio, "audio"), (self.video, self.recv_video, "video")):
            if track is not None:
                self.pc.addTransceiver(track, direction="sendrecv" if recv else "sendonly")
            elif recv:
                self.pc.addTransceiver(kind, direction="recvonly")
        for transceiver in self.pc.getTransceivers():
            if transceiver.kind == "video" and self.video_codecs:
                prefer_codecs(transceiver, "video", self.video_codecs)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.peer.handle_offer(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def _on_event(self, msg: dict) -> None:
        self.events.append(msg)
        if msg.get("type") == "offer":
            self._spawn(self._answer(msg["sdp"]))

    async def _answer(self, sdp: str) -> None:
        async with self._negotiating:
            await self._apply_server_offer(sdp)

    async def _apply_server_offer(self, sdp: str) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        await self.peer.handle_answer(self.pc.localDescription.sdp)
        self.offers_answered += 1

    def _on_track(self, track: MediaStreamTrack) -> None:
        self.tracks.append(track)
        self.frames[track.id] = []
        self._spawn(self._consume(track))

    async def _consume(self, track: MediaStreamTrack) -> None:
        frames = self.frames[track.id]
        try:
            while True:
                frame = await track.recv()
                frames.append(self.summary(frame) if track.kind == "video" else (time.monotonic(), 0))
        except MediaStreamError:
            pass

    def summary(self, frame) -> tuple:
        """What is kept of a decoded picture: (arrival time, mean brightness below the top rows)."""
        arr = frame.to_ndarray(format="rgb24")
        return time.monotonic(), int(arr[60:, :, :].mean())

    def video_frames(self) -> list:
        return [f for t in self.tracks if t.kind == "video" for f in self.frames[t.id]]

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await close_pc(self.pc, self.spec.endpoint_id)
        if self.peer is not None:
            await self.peer.close()


async def wait_for(predicate: Any, timeout: float = 10.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return bool(predicate())


async def offer_sdp(audio: bool = True, video: bool = True) -> tuple[RTCPeerConnection, str]:
    """A real aiortc offer (host candidates on 127.0.0.1 only, as the media node is pinned there)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    if video:
        pc.addTransceiver("video", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


class WsPeerBridge:
    """Lets the media test client speak to the media node through /ws instead of in-process."""

    def __init__(self, ws: WsClient, meeting_id: str) -> None:
        self.ws, self.meeting_id = ws, meeting_id
        self.other: list[dict] = []
        self._answer: asyncio.Future | None = None
        self._reader: asyncio.Task | None = None
        self._on_event = None

    async def open_peer(self, spec, on_event):
        self._on_event = on_event
        if self._reader is None:  # the first peer joins the meeting; a later one (after media_reset) only offers
            await self.ws.send("join", meeting_id=self.meeting_id)
            joined = await self.ws.expect("joined")
            assert joined["media"] is True
            self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        async for raw in self.ws.ws:
            msg = json.loads(raw.data)
            if msg["type"] == "answer" and self._answer and not self._answer.done():
                self._answer.set_result(msg["sdp"])
            elif msg["type"] == "offer":
                await self._on_event({"type": "offer", "sdp": msg["sdp"]})
            else:
                self.on_other(msg)

    def on_other(self, msg: dict) -> None:
        self.other.append(msg)

    async def handle_offer(self, sdp: str) -> str:
        self._answer = asyncio.get_running_loop().create_future()
        await self.ws.send("offer", sdp=sdp)
        return await asyncio.wait_for(self._answer, 10)

    async def handle_answer(self, sdp: str) -> None:
        await self.ws.send("answer", sdp=sdp)

    async def close(self) -> None:
        if self._reader:
            self._reader.cancel()
        await self.ws.close()
