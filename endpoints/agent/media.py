"""One meeting's media: an aiortc RTCPeerConnection to the server's media node.

The terminal offers camera + microphone (sendrecv), the server answers over the WebSocket
(``offer{sdp}`` -> ``answer{sdp}``); when the meeting needs more m-lines the server sends its own
``offer`` and the terminal answers. SDP operations run one at a time (a lock); aiortc gathers
its candidates before the description is set, so nothing is trickled.

What arrives is counted per track (frames, last frame time) and, with ``record_dir``, written
to one WebM file per received track (aiortc MediaRecorder behind a MediaRelay).

Sharing a document (``share``/``stop_share``): a second, sendonly video line marked
``a=content:slides`` (RFC 4796, as the join page marks its screen share; the media node routes it
as the meeting's slides), offered again on the running connection. aiortc cannot roll back an
offer, so a renegotiation offer is applied locally only once the server answers it: when it
crosses a server-made offer (error ``retry``), that offer is answered from a stable state and
ours is made again. Stopping puts the line ``inactive`` (no track), as the page does.

When the peer connection fails (or closes by itself) ``on_failed(reason)`` is called once; the
agent then rejoins the meeting, which gives it a fresh peer on the media node (aiortc cannot do
ICE restarts).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.contrib.media import MediaRecorder, MediaRelay
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from mcu.peer.bounded_stop import CLOSE_TIMEOUT_S, cancel_and_wait, close_pc, finishing, wait_bounded

from endpoints.agent.nack_repeat import repeat_nacks
from endpoints.agent.oplog import OpLog
from endpoints.agent.sources import Gate, Sources, retire

Send = Callable[..., Awaitable[None]]
CLOSE_BOUND_S = 2 * CLOSE_TIMEOUT_S + 1  # its tasks, then its peer connection, each bounded


RETRY_TRIES = 6  # renegotiation offers refused with "retry" before giving up
RETRY_DELAY_S = 0.1  # doubling: the server's crossing offer is answered meanwhile


class MediaError(RuntimeError):
    pass


class OfferCrossed(MediaError):
    """The server refused our offer because its own was open ("retry"): answer it, offer again."""


def mark_slides(sdp: str, needle: str) -> str:
    """Add ``a=content:slides`` to the m-section of an SDP that contains ``needle``."""
    head, *sections = sdp.split("\r\nm=")
    for i, section in enumerate(sections):
        if needle in section and "a=content:" not in section:
            first, _, rest = section.partition("\r\n")
            sections[i] = f"{first}\r\na=content:slides\r\n{rest}"
    return "\r\nm=".join([head, *sections])


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
        self.tracks: dict[str, MediaStreamTrack] = {}  # track id -> what arrives on it
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
        self.screen: Gate | None = None  # the shared document while sharing
        self._screen_tx: RTCRtpTransceiver | None = None
        self._screen_pts = 0  # the last timestamp the slides line sent (90 kHz)
        self._share_lock = asyncio.Lock()  # one share/stop (and its renegotiation) at a time

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

    def on_error(self, message: str, code: str | None = None) -> None:
        """The server refused our offer (error with the offer's ref)."""
        if self._answer is not None and not self._answer.done():
            self._answer.set_exception(OfferCrossed(message) if code == "retry" else MediaError(message))

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
            lent = self._lend_screen_line()
            try:
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
            finally:
                self._take_back_screen_line(lent)
            await self.send("answer", sdp=self.pc.localDescription.sdp)

    # --- sharing a document ----------------------------------------------------------------------
    async def share(self, gate: Gate) -> None:
        """Send ``gate`` as the meeting's slides (a second video line), replacing any earlier one."""
        async with self._share_lock:
            old, self.screen = self.screen, None
            if old is not None:  # nothing on the line while the old source goes
                self._place_screen()
                await self._retire(old)
            gate.continue_after(self._screen_pts)
            self.screen = gate
            self._place_screen()
            try:
                await self._renegotiate()
            except BaseException:  # not shared after all: the room's button must not say so
                self.screen = None
                self._place_screen()
                await self._retire(gate)
                raise
        self.log.info("Đang chia sẻ tài liệu", "sharing started", meeting=self.meeting_id)

    async def stop_share(self) -> bool:
        """Stop sending the slides: the line goes inactive. False when nothing was shared."""
        async with self._share_lock:
            gate, self.screen = self.screen, None
            if gate is None:
                return False
            self._place_screen()
            await self._retire(gate)
            if self._screen_tx is not None:
                await self._renegotiate()
        self.log.info("Đã dừng chia sẻ tài liệu", "sharing stopped", meeting=self.meeting_id)
        return True

    async def _retire(self, gate: Gate) -> None:
        await retire(gate)
        self._screen_pts = max(self._screen_pts, gate.last_pts or 0)

    def _place_screen(self) -> None:
        """Put the shared picture (or nothing) on the slides line, adding the line when needed.
        aiortc keeps a started sender running: a later share reuses the same line."""
        tx = self._screen_tx
        if tx is None:
            if self.screen is not None:
                self._screen_tx = self.pc.addTransceiver(self.screen, direction="sendonly")
            return
        tx.sender.replaceTrack(self.screen)
        tx.direction = "sendonly" if self.screen is not None else "inactive"

    def _lend_screen_line(self) -> RTCRtpTransceiver | None:
        """Before a server offer: aiortc gives a new line of that offer to any transceiver of its
        kind without a mid, so a slides line not yet negotiated is made a plain receive slot."""
        tx = self._screen_tx
        if tx is None or tx.mid is not None:
            return None
        tx.sender.replaceTrack(None)
        tx.direction = "recvonly"
        return tx

    def _take_back_screen_line(self, tx: RTCRtpTransceiver | None) -> None:
        if tx is None:
            return
        if tx.mid is not None:  # the server's new line took it: it receives; the slides get a new line
            self._screen_tx = None
        self._place_screen()

    async def _renegotiate(self) -> None:
        """Offer the current lines; applied locally only with the server's answer (see module doc)."""
        try:
            await asyncio.wait_for(self._answer_applied.wait(), self.answer_timeout_s)
        except asyncio.TimeoutError:
            raise MediaError("the first offer is still unanswered") from None
        for attempt in range(RETRY_TRIES):
            async with self._lock:
                if self._closed:
                    return
                self._place_screen()
                offer = await self.pc.createOffer()
                self._answer = asyncio.get_running_loop().create_future()
                await self.send("offer", sdp=self._marked(offer.sdp))
            try:
                sdp = await asyncio.wait_for(self._answer, self.answer_timeout_s)
            except OfferCrossed:
                self.log.info(
                    "Máy chủ đang đề nghị kết nối lại; trả lời trước rồi đề nghị lại",
                    "offer crossed a server offer, offering again",
                    meeting=self.meeting_id,
                    attempt=attempt + 1,
                )
                await asyncio.sleep(RETRY_DELAY_S * 2**attempt)
                continue
            except asyncio.TimeoutError:
                raise MediaError(f"no answer from the media node within {self.answer_timeout_s:g} s") from None
            async with self._lock:
                if self._closed:
                    return
                await self.pc.setLocalDescription(offer)
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
            return
        raise MediaError(f"the media node kept refusing our offer ({RETRY_TRIES} tries)")

    def _marked(self, sdp: str) -> str:
        """The offer as sent: the slides line marked (by its mid once negotiated, else by the
        shared track's id on its msid line)."""
        tx = self._screen_tx
        if tx is None:
            return sdp
        if tx.mid is not None:
            return mark_slides(sdp, f"\r\na=mid:{tx.mid}\r\n")
        return mark_slides(sdp, f" {self.screen.id}\r\n") if self.screen is not None else sdp

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
        self.tracks[track.id] = track
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

    def watch(self, track_id: str) -> MediaStreamTrack:
        """Another reader of a received track (the room's screen, a test), beside the counter."""
        return self._relay.subscribe(self.tracks[track_id], buffered=False)

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
            "sharing": self.screen is not None,
            "shared_frames": self.screen.frames if self.screen is not None else None,
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
        if self.screen is not None:
            self.screen.stop()
        await close_pc(self.pc, f"meeting {self.meeting_id}")
