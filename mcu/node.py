"""The in-process media node (implements mcu.api.MediaNode).

Usage::

    node = LocalMediaNode(ice_host="127.0.0.1")       # encode_codecs=("VP8", "H264")
    await node.start()
    peer = await node.open_peer(spec, events)          # spec: mcu.api.PeerSpec
    answer = await peer.handle_offer(offer_sdp)        # client's camera+mic offer
    # later: events({"type": "offer", "sdp": ...}) -> client answers -> peer.handle_answer(sdp)
    #        events({"type": "speaker", "endpoint": ...}) on active-speaker changes
    await node.set_floor(meeting_id, endpoint_id)      # floor holder's video goes to "main"
    await peer.set_muted("audio", True)                # chair mute: stop forwarding
    await peer.close(); await node.stop()

Cascade (edge nodes): a peer whose ``spec.extra["cascade_origin"]`` is ``{"node_id", "url"}``
of another node makes this node an edge for its meeting: the node attaches one
``mcu.cascade.trunk.CascadeTrunk`` to the meeting, which reaches the origin through
``origin_factory`` (closed when the last local peer leaves or the node stops). The node is where
the meeting's extensions are wired: the trunk, and the factory of its MCU pipeline.

Codecs are negotiated per peer (``mcu.peer.codec_choice``: the meeting's ``video_codecs`` and
what each client offers); ``encode_codecs`` are those this node may ENCODE (the MCU composite and
its renditions, transcodes for subscribers of another codec). Forwarding encodes nothing.

WHIP ingest / WHEP egress (RFC 9725 and the WHEP draft) are plain offer/answer exchanges with
no renegotiation: a WHIP client is ``open_peer(PeerSpec(publish=True, ...))`` +
``handle_offer`` with sendonly m-lines, a WHEP client is ``publish=False`` with recvonly
m-lines; the HTTP resources (POST -> 201 + Location, DELETE -> ``close``) belong to signaling.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import partial
from typing import Any, Callable, Sequence, cast

from mcu.api import (
    CascadeOrigin,
    EventSink,
    JsonObject,
    LinkStats,
    MediaNode,
    MediaUnavailable,
    NodeLoad,
    PeerSpec,
    RecordingLabels,
    VIDEO_CODECS,
)
from mcu.bridge.transcode import TranscodeBudget, TranscodePool
from mcu.cascade.trunk import serve_from_origin
from mcu.compose.renditions import h264_encoder_setting
from mcu.fence import check as check_fence
from mcu.meeting.contracts import Composer, MeetingHandle
from mcu.peer.ice import HostPin, pin_host_addresses
from mcu.meeting.quality import QualitySampler
from mcu.meeting.meeting import Meeting
from mcu.peer.peer import LocalPeer
from mcu.peer.udp_guard import install as install_udp_guard
from mcu.rtp.leg import RtpLeg
from mcu.record.service import RecordingService

log = logging.getLogger("mcu.node")

SPEAKER_TICK = 0.25  # s between active-speaker evaluations
SENDER_REPORT_EVERY = 4  # ticks between RTCP duties (sender-report data, RR+REMB): about 1 s


class LocalMediaNode:
    def __init__(
        self,
        node_id: str = "local",
        *,
        ice_host: str | Sequence[str] | None = "127.0.0.1",
        public_ip: Sequence[str] = (),
        encode_codecs: Sequence[str] = VIDEO_CODECS,
        audio_slots: int = 3,
        keyframe_interval: float = 0.5,
        media_policy: dict[str, str] | None = None,
        recordings: RecordingService | None = None,
        max_transcodes: int = 16,
    ) -> None:
        self.encode_codecs = encodable(encode_codecs)
        self.transcode_budget = TranscodeBudget(max_transcodes)  # over all its meetings
        self.node_id = node_id
        # ICE host candidates only on these addresses (empty: every interface, aioice's choice)
        self.ice_addresses = (ice_host,) if isinstance(ice_host, str) else tuple(ice_host or ())
        self.public_ip = tuple(public_ip)  # behind a 1:1 NAT: its public addresses (mcu/peer/ice.py)
        self.audio_slots = audio_slots
        self.keyframe_interval = keyframe_interval
        # link class -> "sfu" | "mcu" | "both" (mcu.bridge.rendition_policy; None: DEFAULT_POLICY)
        self.media_policy = media_policy
        self.meetings: dict[str, Meeting] = {}
        self.peers: set[LocalPeer | RtpLeg] = set()
        self._pin: HostPin | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._stopping_mcu: set[asyncio.Task[None]] = set()
        # meeting id -> recordings/streams holding its pipeline. Counted by meeting id, not in the
        # Meeting: a release may come after the meeting it held was stopped and another opened
        # under the same id, and must not end a hold taken on that one
        self._holds: dict[str, int] = {}
        self.quality = QualitySampler()  # per-endpoint link quality, sampled by the ticker
        # Edge nodes: cascade_origin dict -> an object with the MediaNode protocol for the
        # meeting's origin (see mcu.cascade.trunk); injected by whoever runs the node
        self.origin_factory: Callable[[CascadeOrigin], MediaNode] | None = None
        # recording and live HLS of this node's meetings (record(); connected by whoever runs it)
        self.recordings = recordings
        self._started = False
        self._stopping = False

    async def start(self) -> None:
        if self._started:
            return
        h264_encoder_setting()  # a wrong GIAOBAN_H264_ENCODER is refused now, not at the first H.264 encoder
        self._started = True
        self._stopping = False
        check_fence()  # the private hooks of aiortc, aioice and pylibsrtp are all there
        install_udp_guard()  # hostile datagrams never reach aiortc; sockets sized (#11)
        if self.ice_addresses:
            self._pin = pin_host_addresses(self.ice_addresses, self.public_ip)
        self._tick_task = asyncio.get_running_loop().create_task(self._ticker())

    async def stop(self) -> None:
        if not self._started or self._stopping:
            return
        self._stopping = True
        if self._tick_task is not None:
            self._tick_task.cancel()
            try:
                await self._tick_task
            except asyncio.CancelledError:
                pass
            self._tick_task = None
        peers = list(self.peers)
        meetings = list(self.meetings.values())
        if peers:
            await asyncio.wait_for(asyncio.gather(*(p.close() for p in peers), return_exceptions=True), 10)
        await asyncio.gather(*(m.stop() for m in meetings), return_exceptions=True)
        self.meetings.clear()
        if self._pin is not None:
            self._pin.release()
            self._pin = None
        self._started = False

    async def open_peer(self, spec: PeerSpec, events: EventSink) -> LocalPeer | RtpLeg:
        if not self._started or self._stopping:
            raise RuntimeError("media node is not running")
        meeting = self.meetings.get(spec.meeting_id)
        if meeting is None:
            composer = partial(_new_pipeline, codecs=self.encode_codecs)
            # a source for subscribers of another codec
            transcodes = TranscodePool(self.encode_codecs, meeting_id=spec.meeting_id, budget=self.transcode_budget)
            meeting = Meeting(
                spec.meeting_id,
                self.audio_slots,
                media_policy=self.media_policy,
                composer=composer,
                convert=transcodes.convert,
            )
            meeting.attach(transcodes)
            self.meetings[spec.meeting_id] = meeting
            # signaling passes the room's state: a node that takes over a meeting starts from it
            if spec.extra.get("floor"):
                meeting.set_floor(cast(str, spec.extra["floor"]))  # an endpoint id
            if spec.extra.get("layout"):
                meeting.set_layout(cast(str, spec.extra["layout"]))  # a mcu.compose.Layout value
        if spec.extra.get("transport") == "rtp":  # a SIP room system (mcu.rtp): plain RTP, no ICE
            return self._open_leg(meeting, spec, events)
        peer = LocalPeer(
            meeting,
            spec,
            events,
            keyframe_interval=self.keyframe_interval,
            on_closed=partial(self._forget_peer, meeting=meeting),
        )
        self.peers.add(peer)
        meeting.add_peer(peer)
        serve_from_origin(meeting, self, spec)  # an edge of a meeting whose origin is elsewhere
        return peer

    def _open_leg(self, meeting: Meeting, spec: PeerSpec, events: EventSink) -> RtpLeg:
        leg = RtpLeg(
            meeting,
            spec,
            events,
            # one address: bound there; several or none: every interface, answering with the routed one
            host=self.ice_addresses[0] if len(self.ice_addresses) == 1 else "0.0.0.0",
            encode_codecs=self.encode_codecs,
            keyframe_interval=self.keyframe_interval,
            on_closed=partial(self._forget_peer, meeting=meeting),
        )
        self.peers.add(leg)
        meeting.add_peer(leg)
        return leg

    async def set_floor(self, meeting_id: str, endpoint_id: str | None) -> None:
        meeting = self.meetings.get(meeting_id)
        if meeting is not None:
            peer = meeting.peers.get(endpoint_id) if endpoint_id else None
            if peer is not None:  # signaling clears a chair mute of the floor holder (the room state, and
                await peer.set_muted("audio", False)  # the terminal unmutes itself): forward its mic again
            meeting.set_floor(endpoint_id)

    async def set_layout(self, meeting_id: str, layout: str | None) -> None:
        """The chair's layout of the meeting's composite (None: automatic)."""
        meeting = self.meetings.get(meeting_id)
        if meeting is not None:
            meeting.set_layout(layout)

    async def record(self, meeting_id: str, on: bool, labels: RecordingLabels) -> JsonObject:
        """Start or stop recording the meeting with ``self.recordings`` (mcu.record.service; its
        MediaUnavailable and MediaConflict tell why not)."""
        if self.recordings is None:
            raise MediaUnavailable("recording is not enabled on this node")
        tags = await labels()
        if on:
            return await self.recordings.start_recording(meeting_id, tags)
        return await self.recordings.stop_recording(meeting_id)

    def recording_pipeline(self, meeting_id: str) -> Composer | None:
        """For mcu.record (recording, HLS, RTMP): the meeting's composite + mix (started if
        needed), or None when no one is in the meeting on this node. Pair every non-None result
        with recording_release (a reference count keeps the pipeline alive meanwhile)."""
        meeting = self.meetings.get(meeting_id)
        if meeting is None:
            return None
        self._holds[meeting_id] = self._holds.get(meeting_id, 0) + 1
        return meeting.hold_mcu("record")

    def recording_release(self, meeting_id: str) -> None:
        left = self._holds.get(meeting_id, 1) - 1
        if left > 0:
            self._holds[meeting_id] = left
            return
        self._holds.pop(meeting_id, None)
        meeting = self.meetings.get(meeting_id)
        if meeting is not None:
            meeting.release_mcu("record")

    def _forget_peer(self, peer: LocalPeer | RtpLeg, meeting: Meeting) -> None:
        self.peers.discard(peer)
        if not meeting.peers and self.meetings.get(meeting.meeting_id) is meeting:
            del self.meetings[meeting.meeting_id]
            # its extensions stop: the MCU pipeline (a recording that still holds it ends with no
            # picture), the transcodes' threads
            task = asyncio.get_running_loop().create_task(meeting.stop())
            self._stopping_mcu.add(task)
            task.add_done_callback(self._stopping_mcu.discard)

    async def _ticker(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(SPEAKER_TICK)
            now = time.monotonic()
            ticks += 1
            for peer in list(self.peers) if ticks % SENDER_REPORT_EVERY == 0 else ():
                try:
                    peer.update_sender_reports()
                    peer.send_publisher_feedback(SPEAKER_TICK * SENDER_REPORT_EVERY)
                except Exception:  # a report is best effort; keep the ticker alive
                    log.exception("sender report update failed for %s", peer.endpoint_id)
            if ticks % SENDER_REPORT_EVERY == 0:
                try:
                    self.quality.sample(list(self.peers), now)
                except Exception:  # statistics are best effort too
                    log.exception("link statistics sample failed")
            for meeting in list(self.meetings.values()):
                try:
                    speaker = meeting.tick(now)
                except Exception:  # never let one meeting stop the others
                    log.exception("speaker tick failed in %s", meeting.meeting_id)
                    continue
                if speaker is not None:
                    meeting.notify_all({"type": "speaker", "endpoint": speaker})

    async def link_stats(self, meeting_id: str) -> LinkStats:
        """Per endpoint of an open meeting: sending, inbound kbit/s, loss both ways, quality
        (see ``mcu.meeting.quality``); {} when the meeting has no peers on this node."""
        return self.quality.report(self.meetings.get(meeting_id), time.monotonic())

    def load(self) -> NodeLoad:
        return {"peers": len(self.peers), "meetings": len(self.meetings)}

    def stats(self) -> dict[str, Any]:
        return {
            "node": self.node_id,
            "peers": len(self.peers),
            "meetings": [m.stats() for m in self.meetings.values()],
        }


def encodable(codecs: Sequence[str]) -> tuple[str, ...]:
    """``codecs`` upper-cased and checked: a non-empty choice among ``VIDEO_CODECS``."""
    chosen = tuple(dict.fromkeys(str(c).upper() for c in codecs))
    unknown = [c for c in chosen if c not in VIDEO_CODECS]
    if unknown or not chosen:
        raise ValueError(f"encode_codecs must be some of {', '.join(VIDEO_CODECS)}, not {list(codecs)!r}")
    return chosen


def _new_pipeline(meeting: MeetingHandle, codecs: tuple[str, ...]) -> Composer:
    """A meeting's MCU pipeline, made when its first composite/mix subscriber or holder appears;
    ``codecs``: those its composite may be encoded in."""
    from mcu.bridge.pipeline import McuPipeline  # PyAV codecs load only for MCU meetings

    return McuPipeline(meeting.router, host=meeting, layout=meeting.composite_layout, codecs=codecs)
