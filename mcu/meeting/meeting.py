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

Subscribers in MCU mode (``mcu.bridge.rendition_policy``: by link class, or ``spec.extra["media_mode"]``)
have two other slots instead, ``composite`` (video) and ``mix`` (audio), fed by the meeting's
``mcu.bridge.pipeline.McuPipeline``, created when the first such subscriber joins and stopped when
the last one leaves; ``both`` gives a subscriber the SFU slots and the MCU slots.

Anything else that takes part is a ``MeetingExtension`` (``mcu.meeting.contracts``), attached
by whoever creates it: the MCU pipeline (through the factory the meeting is given), and on an
edge node a ``mcu.cascade.trunk.CascadeTrunk``, whose origin streams count as sources here: the
meeting is then served from another node (``Meeting.remote_origin``), and the trunk routes what
goes up itself. An extension uses the meeting through ``mcu.meeting.contracts.MeetingHandle``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Coroutine, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

from mcu.bridge.rendition_policy import DEFAULT_POLICY
from mcu.meeting.contracts import Composer, MeetingExtension, MeetingHandle, Member, Sources
from mcu.meeting.speaker import SpeakerDetector
from mcu.sfu.router import Convert, Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output

log = logging.getLogger("mcu.meeting.meeting")

_order = itertools.count()
CONGESTED_LOSS = 26  # RR fraction lost (x/256) above which a subscriber counts as congested
RECOVERED_LOSS = 5

E = TypeVar("E")
ComposerFactory = Callable[[MeetingHandle], Composer]  # made on the first need (PyAV loads then)


class Meeting:
    def __init__(
        self,
        meeting_id: str,
        audio_slots: int = 3,
        *,
        media_policy: Mapping[str, str] | None = None,
        composer: ComposerFactory | None = None,
        convert: Convert | None = None,
    ) -> None:
        self.meeting_id = meeting_id
        self.audio_slots = audio_slots
        self.router = Router(convert)  # convert: a source for a subscriber of another codec
        self.peers: dict[str, Member] = {}
        self.floor_holder: str | None = None  # who holds the floor (on any node)
        self.floor: str | None = None  # whose streams routing treats as the floor's
        self.detector = SpeakerDetector()
        self._seen: dict[str, int] = {}  # stream id -> order of appearance
        self._loud: dict[str, float] = {}  # endpoint -> last time it was loud
        # link class -> media mode; the node may set another (rendition_policy.SFU_ONLY: no MCU)
        self.media_policy = DEFAULT_POLICY if media_policy is None else media_policy
        self.extensions: list[MeetingExtension] = []
        self._new_composer = composer  # None: this meeting never composes
        self.mcu: Composer | None = None  # while a composite/mix subscriber or a holder needs it
        self.composite_layout: str | None = None  # the chair's choice; None: by source count
        self.mcu_holders: set[str] = set()  # consumers outside the RTP path (recording) keep the pipeline
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def speaker(self) -> str | None:
        return self.detector.speaker

    # -- membership ------------------------------------------------------------------------

    def add_peer(self, peer: Member) -> None:
        old = self.peers.get(peer.endpoint_id)
        self.peers[peer.endpoint_id] = peer
        if old is not None and old is not peer:
            old.schedule_close()

    def remove_peer(self, peer: Member) -> None:
        if self.peers.get(peer.endpoint_id) is peer:
            del self.peers[peer.endpoint_id]
            self.detector.forget(peer.endpoint_id)
            self._loud.pop(peer.endpoint_id, None)
            for ext in list(self.extensions):
                ext.forget(peer.endpoint_id)
        for stream in peer.streams.values():
            self._seen.pop(stream.stream_id, None)
            self.router.remove_stream(stream.stream_id)
        self.assign()

    def peer_changed(self, peer: Member) -> None:
        self.streams_changed(peer.streams.values())

    def streams_changed(self, streams: Iterable[Stream]) -> None:
        """New sources (a member's or an extension's): note their order of appearance, reroute."""
        for stream in streams:
            self._seen.setdefault(stream.stream_id, next(_order))
        self.assign()

    def set_floor(self, endpoint_id: str | None) -> None:
        self.floor_holder = endpoint_id
        self.assign()

    # -- extensions ------------------------------------------------------------------------

    def attach(self, extension: MeetingExtension) -> None:
        self.extensions.append(extension)

    def detach(self, extension: MeetingExtension, *, stop: bool = True) -> None:
        """Stop consulting it; ``stop``: stop it too (awaited by ``stop()`` on node shutdown)."""
        if extension in self.extensions:
            self.extensions.remove(extension)
            if stop:
                self._track(extension.stop())

    def extension(self, kind: type[E]) -> E | None:
        """The attached extension of that class, if any."""
        return next((e for e in self.extensions if isinstance(e, kind)), None)

    @property
    def remote_origin(self) -> str | None:
        """The endpoint id that stands for the meeting's origin when an extension serves the meeting
        from that other node (an edge of a cascade); None when the meeting is served here.
        Served from elsewhere, the origin's streams stand for every endpoint there, so a floor held
        there maps to them (``_routing_floor``), and the origin composes, mixes and names the
        speaker for the whole meeting: no composer here (``_mcu_for``), no speaker announced from
        here (``tick``)."""
        return next((e.remote_origin for e in self.extensions if e.remote_origin is not None), None)

    # -- policy ----------------------------------------------------------------------------

    def _routing_floor(self) -> str | None:
        """A local holder, or the origin's streams when the floor is held at the origin."""
        holder, origin = self.floor_holder, self.remote_origin
        if holder is None or holder in self.peers or origin is None:
            return holder
        return origin

    def _all_streams(self) -> list[Stream]:
        streams = [s for p in self.peers.values() for s in p.streams.values()]
        for ext in self.extensions:
            streams += ext.published()
        return streams

    def _streams(self, source: str) -> list[Stream]:
        streams = [
            s
            for s in self._all_streams()
            if s.source == source and not s.closed and s.endpoint_id  # "": a cascade's idle line
        ]
        streams.sort(key=lambda s: self._seen.get(s.stream_id, 0))
        return streams

    def _snapshot(self) -> Sources:
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
        return Sources(self._streams("camera"), self._streams("screen"), mics)

    def _pick_video(self, streams: list[Stream], me: str, current: object | None) -> Stream | None:
        for wanted in (self.floor, self.speaker):
            if wanted is not None and wanted != me:
                for s in streams:
                    if s.endpoint_id == wanted and s.via != me:
                        return s
        if isinstance(current, Stream):
            current = current.origin  # a transcode of a source counts as the source
        kept = next((s for s in streams if s is current), None)  # what the output carries now
        if kept is not None and _foreign(kept, me) and not kept.closed:
            return kept
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

    def _wanted(self, src: Sources, me: str, mode: str = "sfu") -> list[str]:
        if mode == "mcu":
            return ["composite", "mix"]
        roles = ["composite", "mix"] if mode == "both" else []
        if self._others(src.screens, me, 1):
            roles.append("slides")
        if self._others(src.cameras, me, 1):
            roles.append("main")
        roles += ["audio"] * len(self._others(src.mics, me, self.audio_slots))
        return roles

    def wanted_roles(self, peer: Member) -> list[str]:
        return self._wanted(self._snapshot(), peer.endpoint_id, peer.media_mode)

    def missing_roles(self, peer: Member, src: Sources | None = None) -> list[str]:
        have = [o.role for o in peer.outputs.values()] + peer.pending_roles + peer.refused_roles
        missing = []
        for role in self._wanted(src or self._snapshot(), peer.endpoint_id, peer.media_mode):
            if role in have:
                have.remove(role)
            else:
                missing.append(role)
        return missing

    def assign(self) -> None:
        """Recompute every subscriber's sources; ask for new m-lines where missing. The
        extensions route their own outputs (composite, mix, what goes up a cascade) after."""
        self.floor = self._routing_floor()
        src = self._snapshot()
        self._mcu_for()
        for peer in list(self.peers.values()):
            if peer.closed:
                continue
            me = peer.endpoint_id
            outs = list(peer.outputs.values())
            mains = [o for o in outs if o.role == "main"]
            slides = [o for o in outs if o.role == "slides"]
            audios = [o for o in outs if o.role == "audio"]
            sharing = bool(slides) and bool(self._others(src.screens, me, 1))
            # several lines of a role: a cascade trunk's, one per codec (the source goes in its own)
            camera = None if peer.congested and sharing else self._pick_video(src.cameras, me, _carried(mains))
            self.router.route_in_its_codec(mains, camera)  # congested and sharing: the slides keep the bandwidth
            self.router.route_in_its_codec(slides, self._pick_video(src.screens, me, _carried(slides)))
            self.assign_audio(audios, self._others(src.mics, me, self.audio_slots))
            missing = self.missing_roles(peer, src)
            if missing:
                peer.request_slots(missing)
        self._extensions_assign(src)

    def _extensions_assign(self, src: Sources) -> None:
        for ext in list(self.extensions):
            ext.on_assign(src)

    # -- MCU -------------------------------------------------------------------------------

    def mcu_wanted(self) -> bool:
        """A composite/mix subscriber or a holder needs composing and mixing (here or at the origin)."""
        return bool(self.mcu_holders) or any(p.media_mode != "sfu" and not p.closed for p in self.peers.values())

    def _mcu_for(self) -> Composer | None:
        """The pipeline, started on first need and stopped when idle. None when the meeting is
        served from another node: that node composes and mixes (the extension asks for them)."""
        wanted = self.mcu_wanted() and self.remote_origin is None
        if wanted and self.mcu is None and self._new_composer is not None:
            self.mcu = self._new_composer(self)
            self.attach(self.mcu)
            self._track(self.mcu.start())
        elif not wanted and self.mcu is not None:
            pipe, self.mcu = self.mcu, None
            self.detach(pipe)
        return self.mcu

    def hold_mcu(self, holder: str) -> Composer | None:
        """Start (or keep) the pipeline for a consumer outside the RTP path (recording, HLS)."""
        self.mcu_holders.add(holder)
        return self._holders_changed()

    def release_mcu(self, holder: str) -> None:
        self.mcu_holders.discard(holder)
        self._holders_changed()

    def _holders_changed(self) -> Composer | None:
        """Start or stop the pipeline now, and tell the extensions at once: the pipeline takes the
        current sources, a cascade trunk asks the origin for composite + mix."""
        pipe = self._mcu_for()
        self._extensions_assign(self._snapshot())
        return pipe

    def set_layout(self, layout: str | None) -> None:
        """The chair's composite layout (``mcu.compose.Layout`` value; None: automatic)."""
        from mcu.compose import Layout

        self.composite_layout = Layout(layout).value if layout is not None else None
        if self.mcu is not None:
            self.mcu.set_layout(self.composite_layout)
            self.assign()

    def _track(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("extension of %s: %s", self.meeting_id, task.exception())

    async def stop(self) -> None:
        """Stop every extension (the MCU pipeline, a cascade trunk) and wait for their tasks; idempotent."""
        self.mcu = None
        for ext in list(self.extensions):
            self.detach(ext)
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def assign_audio(self, outs: list[Output], wanted: list[Stream]) -> None:
        """Route audio outputs to the wanted streams, each output keeping a stream it already has."""
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
        for ext in list(self.extensions):
            ext.tick(now)
        congestion_changed = self._update_congestion()
        if changed is not None or congestion_changed:
            self.assign()
        # an edge relays the origin's speaker notifications (the origin hears every tier)
        return changed if self.remote_origin is None else None

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
            peer.post(partial(peer.events, message), droppable=True)

    def stats(self) -> dict[str, Any]:
        return {
            "meeting": self.meeting_id,
            "floor": self.floor,
            "speaker": self.speaker,
            "peers": [p.stats() for p in self.peers.values()],
            "router": self.router.stats(),
            **{ext.name: ext.stats() for ext in self.extensions},
        }


def _foreign(stream: Stream, me: str) -> bool:
    """Neither ``me``'s own stream nor one that came up through ``me`` (a cascade trunk)."""
    return stream.endpoint_id != me and stream.via != me


def _carried(outs: list[Output]) -> object | None:
    """What a role's lines carry now (at most one of them carries anything)."""
    return next((o.source for o in outs if o.source is not None), None)
