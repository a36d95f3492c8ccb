"""One meeting's media: an aiortc RTCPeerConnection to the server's media node.

The terminal offers camera + microphone (sendrecv), the server answers over the WebSocket
(``offer{sdp}`` -> ``answer{sdp}``); when the meeting needs more m-lines the server sends its own
``offer`` and the terminal answers. SDP operations run one at a time (a lock); aiortc gathers
its candidates before the description is set, so nothing is trickled.

What arrives is counted per track (frames, last frame time) and, with ``record_dir``, written
to one WebM file per received track (aiortc MediaRecorder behind a MediaRelay).

When the peer connection fails (or closes by itself) ``on_failed(reason)`` is called once; the
agent then rejoins the meeting, which gives it a fresh peer on the media node (aiortc cannot do
ICE restarts).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder, MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from mcu.peer.bounded_stop import CLOSE_TIMEOUT_S, cancel_and_wait, close_pc, finishing, wait_bounded

from endpoints.agent.nack_repeat import repeat_nacks
from endpoints.agent.oplog import OpLog
from endpoints.agent.sources import Sources

Send = Callable[..., Awaitable[None]]
CLOSE_BOUND_S = 2 * CLOSE_TIMEOUT_S + 1  # its tasks, then its peer connection, each bounded


class MediaError(RuntimeError):
    pass


class MeetingPeer:
    def __init__(
        self,
        meeting_id: str,
        sources: Sources,
        send: Send,
        log: OpLog,
        on_failed: Callable[[str], None],
        record_dir: str = "",
        answer_timeout_s: float = 10.0,
    ) -> None:
        self.meeting_id = meeting_id
        self.sources = sources
        self.send = send
        self.log = log
        self.on_failed = on_failed
        self.record_dir = record_dir
        self.answer_timeout_s = answer_timeout_s
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.on("connectionstatechange", self._on_state)
        self.pc.on("track", self._on_track)
        self.received: dict[str, dict[str, Any]] = {}  # track id -> {kind, frames, last}
        self.started_at = time.monotonic()
        self.connected_at: float | None = None
        self.state = "new"
        self._lock = asyncio.Lock()
        self._answer: asyncio.Future | None = None
        self._answer_applied = asyncio.Event()  # our own offer is settled: server offers may follow
        self._relay = MediaRelay()
        self._recorders: list[MediaRecorder] = []
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._closing: asyncio.Task | None = None
        self._failed = False

    # --- negotiation -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Offer camera + microphone and apply the server's answer."""
        self._spawn(repeat_nacks(self.pc))
        for kind, gate in (("audio", self.sources.audio), ("video", self.sources.video)):
            if gate is not None:
                self.pc.addTransceiver(gate, direction="sendrecv")
            else:
                self.pc.addTransceiver(kind, direction="recvonly")
        async with self._lock:
            await self.pc.setLocalDescription(await self.pc.createOffer())
            self._answer = asyncio.get_running_loop().create_future()
            await self.send("offer", sdp=self.pc.localDescription.sdp)
        try:
            try:
                sdp = await asyncio.wait_for(self._answer, self.answer_timeout_s)
            except asyncio.TimeoutError:
                raise MediaError(f"no answer from the media node within {self.answer_timeout_s:g} s") from None
            async with self._lock:
                if self._closed:
                    return
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        finally:  # applied, refused or timed out: a server offer waiting behind it goes on
            self._answer_applied.set()

    def on_answer(self, sdp: str) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(sdp)

    def on_error(self, message: str) -> None:
        """The server refused our offer (error with the offer's ref)."""
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(MediaError(message))

    async def on_offer(self, sdp: str) -> None:
        """A server-made offer (renegotiation): apply it and answer. The server may send it right
        behind its answer to our offer: that answer is applied first."""
        try:
            await asyncio.wait_for(self._answer_applied.wait(), self.answer_timeout_s)
        except asyncio.TimeoutError:
            raise MediaError("a server offer came before the answer to ours was applied") from None
        async with self._lock:
            if self._closed:
                return
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            await self.send("answer", sdp=self.pc.localDescription.sdp)

    async def on_ice(self, msg: dict[str, Any]) -> None:
        cand_text = msg.get("candidate") or ""
        if not cand_text or self._closed:
            return
        cand = candidate_from_sdp(cand_text.split(":", 1)[1] if cand_text.startswith("candidate:") else cand_text)
        cand.sdpMid, cand.sdpMLineIndex = msg.get("sdp_mid"), msg.get("sdp_mline_index")
        await self.pc.addIceCandidate(cand)

    # --- state -------------------------------------------------------------------------------------
    async def _on_state(self) -> None:
        self.state = self.pc.connectionState
        if self.state == "connected" and self.connected_at is None:
            self.connected_at = time.monotonic()
            self.log.info(
                "Đã có kết nối hình và tiếng",
                "media connected",
                meeting=self.meeting_id,
                after_s=round(self.connected_at - self.started_at, 2),
            )
        elif self.state in ("failed", "closed") and not self._closed:
            self._fail(f"media connection {self.state}")

    def _fail(self, reason: str) -> None:
        if not self._failed:
            self._failed = True
            self.on_failed(reason)

    def set_muted(self, kind: str, muted: bool) -> bool:
        return self.sources.set_muted(kind, muted)

    # --- what arrives ------------------------------------------------------------------------------
    def _on_track(self, track: MediaStreamTrack) -> None:
        info = {"kind": track.kind, "frames": 0, "last": None}
        self.received[track.id] = info
        self._spawn(self._count(self._relay.subscribe(track, buffered=False), info))
        if self.record_dir:
            self._spawn(self._record(track, len(self.received)))

    async def _count(self, track: MediaStreamTrack, info: dict[str, Any]) -> None:
        try:
            while True:
                await track.recv()
                info["frames"] += 1
                info["last"] = time.monotonic()
        except MediaStreamError:
            pass

    async def _record(self, track: MediaStreamTrack, n: int) -> None:
        folder = Path(self.record_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.meeting_id}-{time.strftime('%Y%m%d-%H%M%S')}-{track.kind}{n}.webm"
        recorder = MediaRecorder(str(path), format="webm")
        recorder.addTrack(self._relay.subscribe(track))
        self._recorders.append(recorder)
        await recorder.start()
        self.log.info(f"Đang ghi {track.kind} nhận được vào {path}", "recording", meeting=self.meeting_id)

    def frames_received(self, kind: str) -> int:
        return sum(i["frames"] for i in self.received.values() if i["kind"] == kind)

    def stats(self) -> dict[str, Any]:
        now = time.monotonic()
        last = [i["last"] for i in self.received.values() if i["last"] is not None]
        return {
            "state": self.state,
            "sent_frames": {
                k: g.frames for k, g in (("video", self.sources.video), ("audio", self.sources.audio)) if g
            },
            "received_frames": {k: self.frames_received(k) for k in ("video", "audio")},
            "received_tracks": len(self.received),
            "last_frame_age_s": round(now - max(last), 2) if last else None,
        }

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Release the peer, the devices and the recordings. The close runs as its own task: a
        caller cancelled meanwhile (the agent stopping) does not cut it short (a peer connection
        closed halfway leaves aiortc's decoder threads waiting forever), and a second caller waits
        for the same close (``finish_all`` waits for it at the agent's stop)."""
        self._closed = True  # from now on no SDP or ICE is applied
        what = f"meeting {self.meeting_id}"
        if self._closing is None:
            self._closing = finishing(self, self._close_now, what)
        await wait_bounded(self._closing, f"closing the media of {what}", CLOSE_BOUND_S)

    async def _close_now(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.cancel()
        await cancel_and_wait(list(self._tasks), f"meeting {self.meeting_id}")
        for recorder in self._recorders:
            try:
                await recorder.stop()
            except Exception as exc:  # a broken file must not stop the close
                self.log.warning(f"Lỗi khi đóng tệp ghi: {exc}", "recording close failed", meeting=self.meeting_id)
        self._recorders = []
        self.sources.stop()
        await close_pc(self.pc, f"meeting {self.meeting_id}")
