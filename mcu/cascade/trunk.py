"""Cascade trunk: an edge media node serves part of a meeting from the meeting's origin node.

The edge opens ONE peer connection per meeting to the origin, through the plain MediaNode
protocol (``node.origin_factory(cascade_origin).open_peer(spec, events)``; only SDP strings,
JSON-able specs and event dicts cross it, so the origin may be another process). On the origin
it is a ``LocalPeer`` with ``role="cascade"`` and ``endpoint_id="cascade:<edge node id>"``. Its
lines and their offer/answer are ``mcu.cascade.lines``.

Down (origin -> edge), one copy whatever the number of edge subscribers: the origin's ``main``
video and a ``slides`` video, each in the line of its own codec (a main and a slides line per
video codec, the others of the role paused), ``audio_slots`` audio slots, and, once an edge
subscriber is in MCU mode, one ``composite`` rendition and the ``mix``. On the edge they are
``Stream``s of the edge meeting labelled ``cascade:<origin node id>`` while media arrives (of a
role's lines, the one that started last): the edge's router forwards them to its local
subscribers like any publisher's, and transcodes once for a subscriber of another codec (the
edge runs no compositor).

Up (edge -> origin): one camera (the floor holder's camera when the floor is on this edge, else
the edge-local active speaker's) and one screen (a local share, the floor holder's first), each
in the line of its codec (a camera and a screen line per video codec, forwarded untouched), and
``audio_slots`` mic lines (the local mics ranked floor, speaker, recently
loud, like any subscriber's audio slots). The msid of each line names the endpoint it carries
now; the origin relabels the stream, so its routing treats it as that endpoint's own.

Floor: signaling calls ``set_floor`` on the origin and on every edge. Here a floor held by a
local endpoint stays local (its camera goes up, local subscribers get it directly); a floor
held elsewhere maps to the origin's label, so local subscribers get the origin's ``main``.

Failure (DTLS/ICE down, origin unreachable, the origin closing the trunk): every local peer of
the meeting gets ``{"type": "media_reset", "reason": LOST_REASON}`` and is closed; signaling
re-routes the endpoints. LOST_REASON still says "cascade link": clients and tests match it.

The trunk is one of the meeting's extensions (``mcu.meeting.contracts.MeetingExtension``) and uses
the meeting through ``MeetingHandle``; ``serve_from_origin`` attaches it when the node opens a
peer whose spec names another origin; it detaches itself when the last local peer leaves or the
trunk fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any, Protocol, TypeVar

from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.rtcconfiguration import RTCBundlePolicy

from mcu.api import CascadeOrigin, JsonObject, MediaNode, MediaPeer, MediaRetry, PeerSpec
from mcu.cascade.lines import REMB_CAPS, UP, TrunkLines, origin_spec
from mcu.meeting.contracts import MeetingExtension, MeetingHandle, Member, Sources
from mcu.peer.bounded_stop import close_pc
from mcu.peer.rtcp import publisher_feedback
from mcu.peer.transport import PeerTransport
from mcu.sfu.stream import Stream

log = logging.getLogger("mcu.cascade.trunk")

LOST_REASON = "cascade link to origin lost"  # wire text of media_reset: clients match it
TICK = 0.25  # s between checks of which origin slots carry media
FEEDBACK_EVERY = 4  # ticks between RTCP RR/REMB for what the edge receives
IDLE_AFTER = 2.0  # s without packets before an origin slot stops counting as a source
OFFER_RETRIES = 5
NOTIFY_TIMEOUT = 2.0  # s for one local peer's media_reset to leave
ORIGIN_CLOSE_TIMEOUT = 5.0

E = TypeVar("E")


class EdgeNode(Protocol):
    """What the trunk reads of the media node it runs on (``mcu.node.LocalMediaNode``)."""

    node_id: str
    encode_codecs: tuple[str, ...]
    keyframe_interval: float

    @property
    def origin_factory(self) -> Callable[[CascadeOrigin], MediaNode] | None: ...  # the origin node


class EdgeMeeting(MeetingHandle, Protocol):
    """The meeting as ``serve_from_origin`` sees it: a handle that also takes extensions."""

    def attach(self, extension: MeetingExtension) -> None: ...

    def extension(self, kind: type[E]) -> E | None: ...


def serve_from_origin(meeting: EdgeMeeting, node: EdgeNode, spec: PeerSpec) -> None:
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
    """The edge side of one meeting's cascade trunk (see ``serve_from_origin``)."""

    name = "cascade"  # its key in the meeting's stats

    def __init__(self, meeting: MeetingHandle, node: EdgeNode, origin: CascadeOrigin) -> None:
        self.meeting = meeting
        self.node = node
        self.origin = origin.copy()
        self.label = f"cascade:{origin['node_id']}"  # endpoint id of the origin's streams here
        self.endpoint_id = f"cascade:{self.node.node_id}"  # this trunk's endpoint id there
        self.transport = PeerTransport(self.endpoint_id, self._on_up, self._on_down, meeting.router.on_feedback)
        self.lines = TrunkLines(
            self.transport,
            meeting.router,
            label=self.label,
            endpoint_id=self.endpoint_id,
            video_codec=node.encode_codecs[0],  # the first down pair's and the composite's
            keyframe_interval=node.keyframe_interval,
        )
        self._labels: dict[str, str | None] = {}  # mid -> endpoint announced to the origin
        self.pc: RTCPeerConnection | None = None
        self.peer: MediaPeer | None = None  # the origin's side of the trunk
        self.mcu = False  # composite + mix asked for (kept until the trunk closes)
        self.lost: str | None = None
        self.closed = False
        self._seen: dict[str, tuple[int, float, float]] = {}  # mid -> (packets, last grew, run began)
        self._dirty = asyncio.Event()
        self._stop_task: asyncio.Task[None] | None = None
        self._task = asyncio.get_running_loop().create_task(self._run())

    # -- what the meeting asks -------------------------------------------------------------

    @property
    def remote_origin(self) -> str:
        """The meeting is served from the origin; its streams stand for every endpoint there."""
        return self.label

    def published(self) -> Iterable[Stream]:
        return self.lines.streams.values()

    def on_assign(self, sources: Sources) -> None:
        """Local subscribers routed: ask for composite + mix if they need them, feed theirs from the
        origin's, choose what goes up."""
        self.want_mcu(self.meeting.mcu_wanted())
        for peer in list(self.meeting.peers.values()):
            if not peer.closed:
                self.serve_mcu(peer)
        self.route_up(sources)

    def forget(self, endpoint_id: str) -> None:
        if not self.meeting.peers:  # the last local peer left: close the trunk
            self.meeting.detach(self)

    def tick(self, now: float) -> None:
        pass  # the owner task watches the trunk on its own clock

    def want_mcu(self, wanted: bool) -> None:
        if wanted and not self.mcu and not self.closed:
            self.mcu = True
            self._dirty.set()

    def serve_mcu(self, peer: Member) -> None:
        """Feed a local subscriber's composite/mix outputs from the origin's (one copy)."""
        for out in peer.outputs.values():
            if out.role in ("composite", "mix"):
                self.meeting.router.route(out, self.lines.down(out.role))

    def route_up(self, src: Sources) -> None:
        """Choose what goes up (see the module docstring); a new choice is a new offer."""
        if self.closed or self.transport.binding is None:
            return
        local = self.meeting.peers
        floor = self.meeting.floor if self.meeting.floor in local else None  # a floor held here
        speaker = self.meeting.speaker if self.meeting.speaker in local else None
        router = self.meeting.router
        outputs = self.lines.outputs
        ups = {role: [o for o in outputs.values() if o.role == role] for role in UP}
        cams = [s for s in src.cameras if s.via in local]
        screens = [s for s in src.screens if s.via in local]
        router.route_in_its_codec(ups["up-camera"], _of(cams, floor) or _of(cams, speaker))
        router.route_in_its_codec(ups["up-screen"], _of(screens, floor) or (screens[-1] if screens else None))
        mics = [s for s in src.mics if s.via in local][: len(ups["up-mic"])]
        self.meeting.assign_audio(ups["up-mic"], mics)
        labels = {mid: o.source.endpoint_id if isinstance(o.source, Stream) else None for mid, o in outputs.items()}
        if labels != self._labels:
            self._labels = labels
            self._dirty.set()

    def _watch(self) -> None:
        """An origin slot counts as a source here only while media arrives in it: an empty
        slot would cost every local subscriber an m-line (and a black tile or silence). Of the
        lines of a video role (one per codec) only the one that started last counts: the origin
        has just moved the role's source into it, and the one it left may still be in IDLE_AFTER."""
        now = asyncio.get_running_loop().time()
        live: dict[str, float] = {}  # mid -> when its media (re)started, of the slots carrying it
        for mid, stream in self.lines.streams.items():
            if stream.source not in ("camera", "screen", "mic"):
                continue
            packets, grew, began = self._seen.get(mid, (0, now, now))
            if stream.packets != packets:
                began = now if not packets or now - grew >= IDLE_AFTER else began
                grew = now
                self._seen[mid] = (stream.packets, grew, began)
            if stream.packets and now - grew < IDLE_AFTER:
                live[mid] = began
        latest: dict[str, str] = {}  # video source -> mid of the line that started last
        for mid in sorted(live, key=live.__getitem__):
            latest[self.lines.streams[mid].source] = mid
        changed = False
        for mid, stream in self.lines.streams.items():
            if stream.source not in ("camera", "screen", "mic"):
                continue
            counts = mid in live and (stream.source == "mic" or latest.get(stream.source) == mid)
            label = self.label if counts else ""
            if stream.endpoint_id != label:
                stream.endpoint_id = label
                changed = True
        if changed:
            self.meeting.streams_changed(self.lines.streams.values())

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
                        publisher_feedback(
                            self.transport, self.lines.streams.values(), TICK * FEEDBACK_EVERY, REMB_CAPS
                        )
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
        factory = self.node.origin_factory
        if factory is None:
            raise RuntimeError("this node has no origin_factory to reach the origin")
        origin = factory(self.origin.copy())
        spec = origin_spec(self.meeting.meeting_id, self.node.node_id, self.endpoint_id)
        self.peer = await origin.open_peer(spec, self._on_origin_event)
        if self.closed:
            return
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        self.pc.on("connectionstatechange", self._on_connection_state)
        self.lines.open(self.pc, self.meeting.audio_slots)
        await self._offer()

    async def _offer(self) -> None:
        """Offer the current lines and labels to the origin; install what it answers."""
        if self.closed or self.pc is None or self.peer is None:
            return
        sdp = await self.lines.offer(self._labels, self.mcu)
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
        await self.lines.accept(answer)
        self.meeting.streams_changed(self.lines.streams.values())  # new sources: reroute (and route_up once up)

    # -- transport events ------------------------------------------------------------------

    def _on_up(self) -> None:
        if self.closed:
            return
        for stream in self.lines.streams.values():  # requests made before the trunk carried RTCP
            if stream.waiting:
                stream.request_keyframe()
        self.meeting.streams_changed(())

    def _on_down(self) -> None:
        self._lose(LOST_REASON)

    def _on_connection_state(self) -> None:
        if self.pc is not None and self.pc.connectionState in ("failed", "closed"):
            self._lose(LOST_REASON)

    async def _on_origin_event(self, msg: JsonObject) -> None:
        kind = msg.get("type")
        if kind == "speaker":  # the origin hears every tier: its speaker is the meeting's
            self.meeting.notify_all(dict(msg))
        elif kind == "media_reset":
            self._lose(LOST_REASON)

    def _lose(self, reason: str) -> None:
        if self.lost is None and not self.closed:
            self.lost = reason
            self._dirty.set()  # the owner task fails the trunk

    # -- failure and shutdown --------------------------------------------------------------

    async def _fail(self) -> None:
        """Tell every local peer to reconnect, close them, release the trunk."""
        if self.closed:
            return
        self.meeting.detach(self, stop=False)  # a peer joining now opens a fresh trunk
        await self._release()
        peers = [p for p in list(self.meeting.peers.values()) if not p.closed]
        msg: JsonObject = {"type": "media_reset", "reason": LOST_REASON}
        await asyncio.gather(*(_tell(p, msg) for p in peers))
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)

    async def stop(self) -> None:
        """Close the trunk (the last local peer left, or the node stops); idempotent."""
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
        for out in self.lines.outputs.values():
            router.release(out)
        for stream in self.lines.streams.values():
            router.remove_stream(stream.stream_id)
        self.transport.close()
        if self.pc is not None:
            self.pc.remove_all_listeners()
            await close_pc(self.pc, "cascade trunk")
        if self.peer is not None:
            try:
                await asyncio.wait_for(self.peer.close(), ORIGIN_CLOSE_TIMEOUT)
            except Exception as exc:  # the origin may be gone already
                log.debug("closing the origin side of %s: %s", self.endpoint_id, exc)
        if self.meeting.peers:
            self.meeting.streams_changed(())  # local outputs fed by the trunk lost their source

    def stats(self) -> dict[str, Any]:
        return {
            "origin": self.origin.get("node_id"),
            "down": {s.stream_id: s.packets for s in self.lines.streams.values()},
            "up": {mid: o.stats() for mid, o in self.lines.outputs.items()},
            "offers": self.lines.offers,
            "lost": self.lost,
        }


def _of(streams: list[Stream], endpoint_id: str | None) -> Stream | None:
    if endpoint_id is None:
        return None
    return next((s for s in streams if s.endpoint_id == endpoint_id), None)


async def _tell(peer: Member, msg: JsonObject) -> None:
    try:
        await asyncio.wait_for(peer.events(dict(msg)), NOTIFY_TIMEOUT)
    except Exception as exc:  # the client may be gone too; it is closed next anyway
        log.debug("media_reset to %s not delivered: %s", peer.endpoint_id, exc)
