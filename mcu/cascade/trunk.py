"""Cascade link: an edge media node serves part of a meeting from the meeting's origin node.

The edge opens ONE peer connection per meeting to the origin, through the plain MediaNode
protocol (``node.origin_factory(cascade_origin).open_peer(spec, events)``; only SDP strings,
JSON-able specs and event dicts cross it, so the origin may be another process). On the origin
it is a ``LocalPeer`` with ``role="cascade"`` and ``endpoint_id="cascade:<edge node id>"``.

Down (origin -> edge), one copy whatever the number of edge subscribers: the origin's ``main``
video, a ``slides`` video and ``audio_slots`` audio slots, and, once an edge subscriber is in
MCU mode, one ``composite`` rendition and the ``mix`` (asked for with ``a=content``, see
``mcu.peer.cascade_sdp``). On the edge they are ``Stream``s of the edge meeting labelled
``cascade:<origin node id>``: the edge's router forwards them to its local subscribers like
any publisher's (the origin's streams are never decoded here; the edge runs no compositor).

Up (edge -> origin): one camera line (the floor holder's camera when the floor is on this
edge, else the edge-local active speaker's), one screen line (a local share, the floor
holder's first) and ``audio_slots`` mic lines (the local mics ranked floor, speaker, recently
loud, like any subscriber's audio slots). The msid of each line names the endpoint it carries
now; the origin relabels the stream, so its routing treats it as that endpoint's own.

Floor: signaling calls ``set_floor`` on the origin and on every edge. Here a floor held by a
local endpoint stays local (its camera goes up, local subscribers get it directly); a floor
held elsewhere maps to the origin's label, so local subscribers get the origin's ``main``.

Failure (DTLS/ICE down, origin unreachable, the origin closing the link): every local peer of
the meeting gets ``{"type": "media_reset", "reason": "cascade link to origin lost"}`` and is
closed; signaling re-routes the endpoints.

The trunk is one of the meeting's extensions (``mcu.meeting.contracts.MeetingExtension``), attached
by ``serve_from_origin`` when the node opens a peer whose spec names another origin; it detaches
itself when the last local peer leaves or the link fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtcconfiguration import RTCBundlePolicy

from mcu.api import MediaNode, MediaRetry, PeerSpec

from mcu.peer.cascade_sdp import CASCADE_ROLE, add_content, encode_label
from mcu.fence import sender_rtx_ssrc, sender_ssrc, set_sender_stream_id
from mcu.peer.transport import PeerTransport
from mcu.peer.negotiation import describe, set_codec, sends
from mcu.peer.bounded_stop import close_pc
from mcu.peer.rtcp import REMB_MAX, publisher_feedback
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output
from mcu.bridge.rendition_policy import RENDITION_BITRATE
from mcu.peer.tracks import IdleTrack
from mcu.meeting.contracts import Member, Sources
from mcu.meeting.meeting import Meeting

log = logging.getLogger("mcu.cascade.trunk")

LOST_REASON = "cascade link to origin lost"
# The composite rendition asked for over the link: MCU mode is for thin/mobile communes (their
# start renditions are 360p/180p); the origin's rendition controller still moves it on the link's loss.
COMPOSITE_RENDITION = "360p"
# What the edge's REMB allows per received slot: the composite just over its rendition's bitrate,
# so the origin's rendition controller may move it down on loss but never up (the edge cannot
# scale a bigger rendition down for its thin subscribers)
REMB_CAPS = {**REMB_MAX, "composite": RENDITION_BITRATE[COMPOSITE_RENDITION] * 6 // 5}
TICK = 0.25  # s between checks of which origin slots carry media
FEEDBACK_EVERY = 4  # ticks between RTCP RR/REMB for what the edge receives
IDLE_AFTER = 2.0  # s without packets before an origin slot stops counting as a source
OFFER_RETRIES = 5
NOTIFY_TIMEOUT = 2.0  # s for one local peer's media_reset to leave
ORIGIN_CLOSE_TIMEOUT = 5.0
# role of each line -> (kind, direction, a=content, Stream.source for received lines)
_DOWN = {
    "main": ("video", "camera", ""),
    "slides": ("video", "screen", ""),
    "audio": ("audio", "mic", ""),
    "composite": ("video", "composite", "composite"),
    "mix": ("audio", "mix", "mix"),
}
_UP = {"up-camera": ("video", ""), "up-screen": ("video", "slides"), "up-mic": ("audio", "")}


class EdgeNode(Protocol):
    """What the trunk reads of the media node it runs on (``mcu.node.LocalMediaNode``)."""

    node_id: str
    video_codec: str
    keyframe_interval: float

    @property
    def origin_factory(self) -> Callable[[dict[str, Any]], MediaNode] | None: ...  # cascade_origin -> the origin node


def serve_from_origin(meeting: Meeting, node: EdgeNode, spec: PeerSpec) -> None:
    """A peer of the meeting joined here with ``spec.extra["cascade_origin"]`` naming another node:
    this node is an edge of the meeting; open its trunk unless one is open."""
    origin = spec.extra.get("cascade_origin")
    if (
        isinstance(origin, dict)
        and origin.get("node_id") not in (None, node.node_id)
        and meeting.extension(CascadeTrunk) is None
    ):
        meeting.attach(CascadeTrunk(meeting, node, origin))


class CascadeTrunk:
    """The edge side of one meeting's cascade link (see ``serve_from_origin``)."""

    name = "cascade"  # its key in the meeting's stats

    def __init__(self, meeting: Meeting, node: EdgeNode, origin: dict[str, Any]) -> None:
        self.meeting = meeting
        self.node = node
        self.origin = dict(origin)
        self.label = f"cascade:{origin['node_id']}"  # endpoint id of the origin's streams here
        self.endpoint_id = f"cascade:{self.node.node_id}"  # this link's endpoint id there
        self.streams: dict[str, Stream] = {}  # received from the origin, by mid
        self.outputs: dict[str, Output] = {}  # sent up, by mid
        self._roles: dict[Any, str] = {}  # transceiver -> role
        self._labels: dict[str, str | None] = {}  # mid -> endpoint announced to the origin
        self.link = PeerTransport(self.endpoint_id, self._on_up, self._on_down, meeting.router.on_feedback)
        self.pc: RTCPeerConnection | None = None
        self.peer: Any = None  # the origin's MediaPeer
        self.mcu = False  # composite + mix asked for (kept until the link closes)
        self.lost: str | None = None
        self.closed = False
        self.offers = 0
        self._seen: dict[str, tuple[int, float]] = {}  # mid -> (packets, when they last grew)
        self._dirty = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- what the meeting asks -------------------------------------------------------------

    @property
    def origin_label(self) -> str:
        """The origin's streams stand for every endpoint there (the floor held there maps to them)."""
        return self.label

    def published(self) -> Iterable[Stream]:
        return self.streams.values()

    def on_assign(self, sources: Sources) -> None:
        """Local subscribers routed: ask for composite + mix if they need them, feed theirs from the
        origin's, choose what goes up."""
        self.want_mcu(self.meeting.mcu_wanted())
        for peer in list(self.meeting.peers.values()):
            if not peer.closed:
                self.serve_mcu(peer)
        self.route_up(sources)

    def forget(self, endpoint_id: str) -> None:
        if not self.meeting.peers:  # the last local peer left: close the link
            self.meeting.detach(self)

    def tick(self, now: float) -> None:
        pass  # the owner task watches the link on its own clock

    def want_mcu(self, wanted: bool) -> None:
        if wanted and not self.mcu and not self.closed:
            self.mcu = True
            self._dirty.set()

    def serve_mcu(self, peer: Member) -> None:
        """Feed a local subscriber's composite/mix outputs from the origin's (one copy)."""
        for out in peer.outputs.values():
            if out.role in ("composite", "mix"):
                self.meeting.router.route(out, self._down(out.role))

    def route_up(self, src: Sources) -> None:
        """Choose what goes up (see the module docstring); a new choice is a new offer."""
        if self.closed or self.link.binding is None:
            return
        local = self.meeting.peers
        holder = self.meeting.floor_holder
        floor = holder if holder in local else None
        speaker = self.meeting.speaker if self.meeting.speaker in local else None
        router = self.meeting.router
        ups = {role: [o for o in self.outputs.values() if o.role == role] for role in _UP}
        cams = [s for s in src.cameras if s.via in local]
        screens = [s for s in src.screens if s.via in local]
        for out in ups["up-camera"]:
            router.route(out, _of(cams, floor) or _of(cams, speaker))
        for out in ups["up-screen"]:
            router.route(out, _of(screens, floor) or (screens[-1] if screens else None))
        mics = [s for s in src.mics if s.via in local][: len(ups["up-mic"])]
        self.meeting.assign_audio(ups["up-mic"], mics)
        labels = {
            mid: o.source.endpoint_id if isinstance(o.source, Stream) else None for mid, o in self.outputs.items()
        }
        if labels != self._labels:
            self._labels = labels
            self._dirty.set()

    def _watch(self) -> None:
        """An origin slot counts as a source here only while media arrives in it: an empty
        slot would cost every local subscriber an m-line (and a black tile or silence)."""
        now = asyncio.get_running_loop().time()
        changed = False
        for mid, stream in self.streams.items():
            if stream.source not in ("camera", "screen", "mic"):
                continue
            packets, since = self._seen.get(mid, (0, now))
            if stream.packets != packets:
                self._seen[mid] = (stream.packets, now)
                since = now
            label = self.label if stream.packets and now - since < IDLE_AFTER else ""
            if stream.endpoint_id != label:
                stream.endpoint_id = label
                changed = True
        if changed:
            self.meeting.assign()

    def _down(self, role: str) -> Stream | None:
        for t, r in self._roles.items():
            if r == role and t.mid in self.streams:
                return self.streams[t.mid]
        return None

    # -- owner task ------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._open()
            ticks = 0
            while True:
                try:
                    await asyncio.wait_for(self._dirty.wait(), TICK)
                except asyncio.TimeoutError:
                    ticks += 1
                    self._watch()
                    if ticks % FEEDBACK_EVERY == 0:
                        publisher_feedback(self.link, self.streams.values(), TICK * FEEDBACK_EVERY, REMB_CAPS)
                    continue
                self._dirty.clear()
                if self.lost is not None:
                    raise ConnectionError(self.lost)
                await self._offer()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("cascade %s -> %s of %s failed: %s", self.endpoint_id, self.label, self.meeting.meeting_id, exc)
            await self._fail()

    async def _open(self) -> None:
        factory = getattr(self.node, "origin_factory", None)
        if factory is None:
            raise RuntimeError("this node has no origin_factory to reach the origin")
        origin = factory(dict(self.origin))
        spec = PeerSpec(
            meeting_id=self.meeting.meeting_id,
            endpoint_id=self.endpoint_id,
            display_name=f"{self.node.node_id} (cascade)",
            role=CASCADE_ROLE,
            link="fibre",
            publish=True,
            # the edge offers every line itself (no server offers); SFU until it asks for MCU
            extra={
                "media_mode": "sfu",
                "renegotiate": False,
                "start_rendition": COMPOSITE_RENDITION,
                "cascade_edge": self.node.node_id,
            },
        )
        self.peer = await origin.open_peer(spec, self._on_origin_event)
        if self.closed:
            return
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("connectionstatechange", self._on_connection_state)
        slots = self.meeting.audio_slots
        for role in ["up-camera", "up-screen"] + ["up-mic"] * slots:
            self._add_line(role, "sendonly")
        for role in ["main", "slides"] + ["audio"] * slots:
            self._add_line(role, "recvonly")
        await self._offer()

    def _add_line(self, role: str, direction: str) -> None:
        kind = _UP[role][0] if role in _UP else _DOWN[role][0]
        track = IdleTrack(kind) if direction == "sendonly" else kind
        assert self.pc is not None  # lines are added once _open made the connection
        t = self.pc.addTransceiver(track, direction=direction)
        set_codec(t, kind, self.node.video_codec if kind == "video" else "opus")
        self._roles[t] = role

    async def _offer(self) -> None:
        """Offer the current lines and labels to the origin; install what it answers."""
        if self.closed or self.pc is None:
            return
        if self.mcu and "composite" not in self._roles.values():
            self._add_line("composite", "recvonly")
            self._add_line("mix", "recvonly")
        for t, role in self._roles.items():
            if role in _UP:
                set_sender_stream_id(t.sender, encode_label(self._labels.get(t.mid)))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        contents = {}
        for t, role in self._roles.items():
            content = _UP[role][1] if role in _UP else _DOWN[role][2]
            if content:
                contents[t.mid] = content
        sdp = add_content(self.pc.localDescription.sdp, contents)
        for attempt in range(OFFER_RETRIES):
            try:
                answer = await self.peer.handle_offer(sdp)
                break
            except MediaRetry:  # the origin peer is busy: its queue drains quickly
                if attempt == OFFER_RETRIES - 1:
                    raise
                await asyncio.sleep(0.1 * (attempt + 1))
        if self.closed:
            return
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self.offers += 1
        self._install(answer)

    def _install(self, answer: str) -> None:
        remote = describe(answer)
        router = self.meeting.router
        for t, role in self._roles.items():
            line = remote.get(t.mid) if t.mid is not None else None
            if line is None:
                continue
            if role in _UP and t.mid not in self.outputs:
                out = Output(
                    endpoint_id=self.endpoint_id,
                    kind=line.kind,
                    role=role,
                    ssrc=sender_ssrc(t.sender),
                    payload_type=line.payload_type or 0,
                    clock_rate=line.clock_rate,
                    rtx_ssrc=sender_rtx_ssrc(t.sender) if line.rtx_payload_type else None,
                    rtx_payload_type=line.rtx_payload_type,
                    audio_level_id=line.audio_level_id,
                )
                self.outputs[t.mid] = out
                self.link.add_output(out)
            elif role in _DOWN and t.mid not in self.streams and sends(line.direction):
                stream = Stream(
                    stream_id=f"{self.label}/{t.mid}",
                    endpoint_id="",
                    kind=line.kind,
                    source=_DOWN[role][1],
                    codec=line.codec or "OPUS",
                    clock_rate=line.clock_rate,
                    audio_level_id=line.audio_level_id,
                    send_keyframe_request=self.link.send_keyframe_request,
                    send_nack=self.link.send_nack,
                    keyframe_interval=self.node.keyframe_interval,
                )
                stream.via = self.label  # endpoint_id: "" until media arrives (_watch)
                self.link.add_stream(stream, t.mid, line.ssrcs, line.rtx_ssrcs, line.mid_ext_id)
                self.streams[t.mid] = stream
                router.add_stream(stream)
        assert self.pc is not None  # an answer is installed only on an open connection
        first = self.pc.getTransceivers()[0]
        self.link.attach(first.receiver.transport, sender_ssrc(first.sender))
        self.meeting.streams_changed(self.streams.values())  # new sources: reroute (and route_up once linked)

    # -- transport events ------------------------------------------------------------------

    def _on_up(self) -> None:
        if self.closed:
            return
        for stream in self.streams.values():  # requests made before the link carried RTCP
            if stream.waiting:
                stream.request_keyframe()
        self.meeting.assign()

    def _on_down(self) -> None:
        self._lose(LOST_REASON)

    def _on_connection_state(self) -> None:
        if self.pc is not None and self.pc.connectionState in ("failed", "closed"):
            self._lose(LOST_REASON)

    async def _on_origin_event(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "speaker":  # the origin hears every tier: its speaker is the meeting's
            self.meeting.notify_all(dict(msg))
        elif kind == "media_reset":
            self._lose(LOST_REASON)

    def _lose(self, reason: str) -> None:
        if self.lost is None and not self.closed:
            self.lost = reason
            self._dirty.set()  # the owner task fails the link

    # -- failure and shutdown --------------------------------------------------------------

    async def _fail(self) -> None:
        """Tell every local peer to reconnect, close them, release the link."""
        if self.closed:
            return
        self.meeting.detach(self, stop=False)  # a peer joining now opens a fresh link
        await self._release()
        peers = [p for p in list(self.meeting.peers.values()) if not p.closed]
        msg = {"type": "media_reset", "reason": LOST_REASON}
        await asyncio.gather(*(_tell(p, msg) for p in peers))
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)

    async def stop(self) -> None:
        """Close the link (the last local peer left, or the node stops); idempotent."""
        if self._stop_task is None:
            self._stop_task = asyncio.get_running_loop().create_task(self._stop())
        await asyncio.shield(self._stop_task)

    async def _stop(self) -> None:
        if self._task is not asyncio.current_task() and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except BaseException:
                pass
        await self._release()

    async def _release(self) -> None:
        if self.closed:
            return
        self.closed = True
        router = self.meeting.router
        for out in self.outputs.values():
            router.release(out)
        for stream in self.streams.values():
            router.remove_stream(stream.stream_id)
        self.link.close()
        if self.pc is not None:
            self.pc.remove_all_listeners()
            await close_pc(self.pc, "cascade link")
        if self.peer is not None:
            try:
                await asyncio.wait_for(self.peer.close(), ORIGIN_CLOSE_TIMEOUT)
            except Exception as exc:  # the origin may be gone already
                log.debug("closing the origin side of %s: %s", self.endpoint_id, exc)
        if self.meeting.peers:
            self.meeting.assign()  # local outputs fed by the link lost their source

    def stats(self) -> dict[str, Any]:
        return {
            "origin": self.origin.get("node_id"),
            "down": {s.stream_id: s.packets for s in self.streams.values()},
            "up": {mid: o.stats() for mid, o in self.outputs.items()},
            "offers": self.offers,
            "lost": self.lost,
        }


def _of(streams: list[Stream], endpoint_id: str | None) -> Stream | None:
    if endpoint_id is None:
        return None
    return next((s for s in streams if s.endpoint_id == endpoint_id), None)


async def _tell(peer: Any, msg: dict[str, Any]) -> None:
    try:
        await asyncio.wait_for(peer.events(dict(msg)), NOTIFY_TIMEOUT)
    except Exception as exc:  # the client may be gone too; it is closed next anyway
        log.debug("media_reset to %s not delivered: %s", peer.endpoint_id, exc)
