"""Routing policy of one meeting: what each subscriber's outputs carry.

Each subscriber has a few fixed *slots* rather than one m-line per other publisher, so that a
province-wide briefing (about 210 endpoints) does not send 209 streams to every room terminal:

* ``main`` (video): the floor holder's camera; without a floor, the active speaker's; without a
  speaker, the latest other camera. A subscriber never gets its own camera.
* ``slides`` (video, priority): a screen share; the floor holder's if it shares, else the
  latest one. Screen shares are routed first: a subscriber always gets a slides slot when a
  share exists, and the meeting offers it before anything else.
  When a subscriber reports heavy loss (RTCP RR) while it receives slides, its ``main`` video
  is paused until the loss recovers: slides and audio keep the bandwidth.
* ``audio`` x ``audio_slots``: the microphones of the floor holder, the active speaker and the
  most recently loud others, keeping a stream in the slot it already has (no needless switches).

A client's own offer provides the first audio and video slots (its m-lines are answered
``sendrecv``); further slots are added by server offers when needed.

Subscribers in MCU mode (``mcu.bridge.renditions``: by link class, or ``spec.extra["media_mode"]``)
have two other slots instead, ``composite`` (video) and ``mix`` (audio), fed by the meeting's
``mcu.bridge.pipeline.McuPipeline``, created when the first such subscriber joins and stopped when
the last one leaves; ``both`` gives a subscriber the SFU slots and the MCU slots.

On an edge node (a peer's ``spec.extra["cascade_origin"]``) the meeting also has a
``mcu.cascade.trunk.CascadeTrunk``: the origin's streams it receives count as sources here (labelled
with the origin, so the floor, when held at the origin, maps to them), composite and mix come
from the origin instead of a local pipeline, and the link routes what goes up itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import TYPE_CHECKING, Any

from mcu.sfu.router import Router
from mcu.meeting.speaker import SpeakerDetector
from mcu.sfu.stream import Stream
from mcu.bridge.renditions import DEFAULT_POLICY

log = logging.getLogger("mcu.meeting.meeting")

if TYPE_CHECKING:
    from mcu.node import LocalMediaNode
    from mcu.peer.peer import LocalPeer
    from mcu.sfu.subscriber import Output

_order = itertools.count()


class _Sources:
    __slots__ = ("cameras", "screens", "mics")

    def __init__(self, cameras: list[Stream], screens: list[Stream], mics: list[Stream]) -> None:
        self.cameras = cameras
        self.screens = screens
        self.mics = mics  # ranked: floor, speaker, recently loud, newest
CONGESTED_LOSS = 26  # RR fraction lost (x/256) above which a subscriber counts as congested
RECOVERED_LOSS = 5


class Meeting:
    def __init__(self, node: "LocalMediaNode", meeting_id: str, audio_slots: int = 3) -> None:
        self.node = node
        self.meeting_id = meeting_id
        self.audio_slots = audio_slots
        self.router = Router()
        self.peers: dict[str, "LocalPeer"] = {}
        self.floor: str | None = None
        self.detector = SpeakerDetector()
        self._seen: dict[str, int] = {}  # stream id -> order of appearance
        self._loud: dict[str, float] = {}  # endpoint -> last time it was loud
        # link class -> media mode; the node may set another (renditions_policy.SFU_ONLY: no MCU)
        policy = getattr(node, "media_policy", None)
        self.media_policy = DEFAULT_POLICY if policy is None else policy
        self.mcu: Any = None  # McuPipeline while a composite/mix subscriber is present
        self.composite_layout: str | None = None  # the chair's choice; None: by source count
        self.mcu_holders: set[str] = set()  # consumers outside the RTP path (recording) keep the pipeline
        self._mcu_tasks: set[asyncio.Task] = set()
        self.cascade: Any = None  # mcu.cascade.trunk.CascadeTrunk on an edge node

    @property
    def speaker(self) -> str | None:
        return self.detector.speaker

    # -- membership ------------------------------------------------------------------------

    def add_peer(self, peer: "LocalPeer") -> None:
        old = self.peers.get(peer.endpoint_id)
        self.peers[peer.endpoint_id] = peer
        if old is not None and old is not peer:
            old._schedule_close()
        origin = peer.spec.extra.get("cascade_origin")
        if (self.cascade is None and isinstance(origin, dict)
                and origin.get("node_id") not in (None, self.node.node_id)):
            from mcu.cascade.trunk import CascadeTrunk

            self.cascade = CascadeTrunk(self, origin)

    def remove_peer(self, peer: "LocalPeer") -> None:
        if self.peers.get(peer.endpoint_id) is peer:
            del self.peers[peer.endpoint_id]
            self.detector.forget(peer.endpoint_id)
            self._loud.pop(peer.endpoint_id, None)
            if self.mcu is not None:
                self.mcu.forget(peer.endpoint_id)
        for stream in peer.streams.values():
            self._seen.pop(stream.stream_id, None)
            self.router.remove_stream(stream.stream_id)
        if not self.peers and self.cascade is not None:
            cascade, self.cascade = self.cascade, None  # the last local peer left
            self._track(cascade.stop())  # awaited by stop_mcu on node shutdown
        self.assign()

    def peer_changed(self, peer: "LocalPeer") -> None:
        for stream in peer.streams.values():
            self._seen.setdefault(stream.stream_id, next(_order))
        self.assign()

    def set_floor(self, endpoint_id: str | None) -> None:
        self.floor = endpoint_id
        if self.cascade is not None:
            self.cascade.floor = endpoint_id  # routing maps it in assign()
        self.assign()

    # -- policy ----------------------------------------------------------------------------

    def _all_streams(self) -> list[Stream]:
        streams = [s for p in self.peers.values() for s in p.streams.values()]
        if self.cascade is not None:
            streams += self.cascade.streams.values()
        return streams

    def _streams(self, source: str) -> list[Stream]:
        streams = [
            s
            for s in self._all_streams()
            if s.source == source and not s.closed and s.endpoint_id  # "": a cascade's idle line
        ]
        streams.sort(key=lambda s: self._seen.get(s.stream_id, 0))
        return streams

    def _snapshot(self) -> "_Sources":
        """The meeting's sources, ordered once per assignment (not once per subscriber)."""
        mics = self._streams("mic")
        mics.sort(
            key=lambda s: (
                s.endpoint_id != self.floor,
                s.endpoint_id != self.speaker,
                -self._loud.get(s.endpoint_id, 0.0),
                -self._seen.get(s.stream_id, 0),
            )
        )
        return _Sources(self._streams("camera"), self._streams("screen"), mics)

    def _pick_video(self, streams: list[Stream], me: str, current: Stream | None) -> Stream | None:
        for wanted in (self.floor, self.speaker):
            if wanted is not None and wanted != me:
                for s in streams:
                    if s.endpoint_id == wanted and s.via != me:
                        return s
        if current is not None and _foreign(current, me) and not current.closed:
            if current in streams:
                return current
        for s in reversed(streams):  # the latest other one
            if _foreign(s, me):
                return s
        return None

    @staticmethod
    def _others(streams: list[Stream], me: str, limit: int) -> list[Stream]:
        out = []
        for s in streams:
            if _foreign(s, me):
                out.append(s)
                if len(out) >= limit:
                    break
        return out

    def _wanted(self, src: "_Sources", me: str, mode: str = "sfu") -> list[str]:
        if mode == "mcu":
            return ["composite", "mix"]
        roles = ["composite", "mix"] if mode == "both" else []
        if self._others(src.screens, me, 1):
            roles.append("slides")
        if self._others(src.cameras, me, 1):
            roles.append("main")
        roles += ["audio"] * len(self._others(src.mics, me, self.audio_slots))
        return roles

    def wanted_roles(self, peer: "LocalPeer") -> list[str]:
        return self._wanted(self._snapshot(), peer.endpoint_id, peer.media_mode)

    def missing_roles(self, peer: "LocalPeer", src: "_Sources | None" = None) -> list[str]:
        have = [o.role for o in peer.outputs.values()] + peer.pending_roles + peer.refused_roles
        missing = []
        for role in self._wanted(src or self._snapshot(), peer.endpoint_id, peer.media_mode):
            if role in have:
                have.remove(role)
            else:
                missing.append(role)
        return missing

    def assign(self) -> None:
        """Recompute every subscriber's sources; ask for new m-lines where missing."""
        cascade = self.cascade
        if cascade is not None:
            self.floor = cascade.routing_floor()
        src = self._snapshot()
        mcu = self._mcu_for(src)
        for peer in list(self.peers.values()):
            if peer.closed:
                continue
            if cascade is not None:
                cascade.serve_mcu(peer)
            elif mcu is not None:
                for out in peer.outputs.values():
                    if out.role in ("composite", "mix"):
                        mcu.attach(peer, out)
            me = peer.endpoint_id
            outs = list(peer.outputs.values())
            mains = [o for o in outs if o.role == "main"]
            slides = [o for o in outs if o.role == "slides"]
            audios = [o for o in outs if o.role == "audio"]
            sharing = bool(slides) and bool(self._others(src.screens, me, 1))
            for out in mains:
                if peer.congested and sharing:
                    self.router.route(out, None)  # the slides keep the bandwidth
                else:
                    self.router.route(out, self._pick_video(src.cameras, me, out.source))
            for out in slides:
                self.router.route(out, self._pick_video(src.screens, me, out.source))
            self._assign_audio(audios, self._others(src.mics, me, self.audio_slots))
            missing = self.missing_roles(peer, src)
            if missing:
                peer.request_slots(missing)
        if cascade is not None:
            cascade.route_up(src)

    # -- MCU -------------------------------------------------------------------------------

    def _mcu_for(self, src: "_Sources") -> Any:
        """The pipeline (started on first need, stopped when idle), with fresh sources."""
        wanted = bool(self.mcu_holders) or any(p.media_mode != "sfu" and not p.closed for p in self.peers.values())
        if self.cascade is not None:  # an edge: the origin composes and mixes
            self.cascade.want_mcu(wanted)
            wanted = False
        if wanted and self.mcu is None:
            from mcu.bridge.pipeline import McuPipeline  # PyAV codecs load only for MCU meetings

            self.mcu = McuPipeline(self.router, layout=self.composite_layout)
            self._track(self.mcu.start())
        elif not wanted and self.mcu is not None:
            pipe, self.mcu = self.mcu, None
            self._track(pipe.stop())
            return None
        if self.mcu is not None:
            order = [e for e in (self.floor, self.speaker) if e is not None]
            names = {p.endpoint_id: p.spec.display_name for p in self.peers.values()}
            self.mcu.refresh(src.cameras, src.screens, src.mics, order, names)
        return self.mcu

    def hold_mcu(self, holder: str) -> Any:
        """Start (or keep) the pipeline for a consumer outside the RTP path (recording, HLS)."""
        self.mcu_holders.add(holder)
        pipe = self._mcu_for(self._snapshot())
        if pipe is not None:
            pipe.holders.add(holder)
        return pipe

    def release_mcu(self, holder: str) -> None:
        self.mcu_holders.discard(holder)
        if self.mcu is not None:
            self.mcu.holders.discard(holder)
        self._mcu_for(self._snapshot())

    def set_layout(self, layout: str | None) -> None:
        """The chair's composite layout (``mcu.compose.Layout`` value; None: automatic)."""
        from mcu.compose import Layout

        self.composite_layout = Layout(layout).value if layout is not None else None
        if self.mcu is not None:
            self.mcu.set_layout(self.composite_layout)
            self.assign()

    def _track(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._mcu_tasks.add(task)
        task.add_done_callback(self._mcu_done)

    def _mcu_done(self, task: asyncio.Task) -> None:
        self._mcu_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("MCU pipeline of %s: %s", self.meeting_id, task.exception())

    async def stop_mcu(self) -> None:
        """Stop the MCU pipeline (and a cascade link) and wait for their tasks; idempotent."""
        pipe, self.mcu = self.mcu, None
        if pipe is not None:
            self._track(pipe.stop())
        if self.cascade is not None:
            cascade, self.cascade = self.cascade, None
            self._track(cascade.stop())
        while self._mcu_tasks:
            await asyncio.gather(*list(self._mcu_tasks), return_exceptions=True)

    def _assign_audio(self, outs: list["Output"], wanted: list[Stream]) -> None:
        keep = [o for o in outs if o.source in wanted]
        taken = {o.source for o in keep}
        free = [o for o in outs if o not in keep]
        todo = [s for s in wanted if s not in taken]
        for out in free:
            self.router.route(out, todo.pop(0) if todo else None)

    # -- active speaker --------------------------------------------------------------------

    def tick(self, now: float) -> str | None:
        """Run speaker detection on the levels gathered since the last tick."""
        levels: dict[str, float | None] = {}
        for stream in self._all_streams():
            ep = stream.endpoint_id  # a relabelled cascade stream counts as its endpoint
            if stream.source == "mic" and not stream.muted and ep:
                level = stream.take_level()
                if level is not None:  # -dBov: the loudest of an endpoint's mics counts
                    old = levels.get(ep)
                    levels[ep] = level if old is None else min(old, level)
                    if level < self.detector.speech_level:
                        self._loud[ep] = now
                else:
                    levels.setdefault(ep, None)
        changed = self.detector.tick(levels, now)
        if self.mcu is not None:
            self.mcu.tick(now)
        congestion_changed = self._update_congestion()
        if changed is not None or congestion_changed:
            self.assign()
        # an edge relays the origin's speaker notifications (the origin hears every tier)
        return changed if self.cascade is None else None

    def _update_congestion(self) -> bool:
        """Hysteresis on the loss that subscribers report (RTCP RR fraction lost)."""
        changed = False
        for peer in self.peers.values():
            loss = max((o.fraction_lost for o in peer.outputs.values() if o.live), default=0)
            if not peer.congested and loss > CONGESTED_LOSS:
                peer.congested = changed = True
            elif peer.congested and loss < RECOVERED_LOSS:
                peer.congested = False
                changed = True
        return changed

    def notify_all(self, message: dict[str, Any]) -> None:
        for peer in list(self.peers.values()):
            peer.post(lambda p=peer: p.events(message), droppable=True)

    def stats(self) -> dict[str, Any]:
        return {
            "meeting": self.meeting_id,
            "floor": self.floor,
            "speaker": self.speaker,
            "peers": [p.stats() for p in self.peers.values()],
            "router": self.router.stats(),
            **({"mcu": self.mcu.stats()} if self.mcu is not None else {}),
            **({"cascade": self.cascade.stats()} if self.cascade is not None else {}),
        }


def _foreign(stream: Stream, me: str) -> bool:
    """Neither ``me``'s own stream nor one that came up through ``me`` (a cascade link)."""
    return stream.endpoint_id != me and stream.via != me
