"""The MCU side of a meeting: composite picture and N-1 audio mix for thin links.

Created lazily by the meeting when its first ``composite``/``mix`` subscriber appears, stopped
when the last one leaves (``stop()`` is idempotent and awaits every task it started). It is one of
the meeting's extensions (``mcu.meeting.contracts.Composer``); what it reads of the meeting is the
small ``McuHost`` below, so this module imports nothing above the SFU.

Input: the meeting's publisher ``Stream``s are *tapped* (``Stream.add_tap``, called once per
packet after the SFU's own once-per-packet work): VP8 and H.264 packets are assembled into frames
(``mcu.bridge.depacketize``) and pushed to the ``Compositor``; Opus payloads (with their RFC 6464
level) go to the ``AudioMixer``. A hole in a source's frames asks its publisher for a key frame
through the stream's merged, rate-limited request.

Output: each video rendition is encoded in each codec the node may encode and some subscriber
needs, and packetized once into a synthetic ``Stream`` (``mcu:720p``, ``mcu:h264:720p``...:
``mcu.bridge.rendition_streams``). Subscribers' ``composite`` outputs are routed to the rendition
stream in the codec they decode (``Output.codec``, else another their line accepts), exactly like
SFU outputs to a publisher: the fast path rewrites SSRC/seq/timestamp/picture id per subscriber,
NACKs are answered from the rendition stream's cache, and PLIs become merged key-frame requests
to that rendition's encoder (``Compositor.request_keyframe``). Changing a subscriber's rendition
is ``Router.route`` to another rendition stream of its codec: the output resumes continuously on
that rendition's next key frame. The mixer's output for each listener (N-1, ``thin`` profile with
in-band FEC for thin/mobile links; G.711/G.722 at an 8 kHz RTP clock for a SIP room that asked
for it) is packetized into that listener's own ``mcu:mix:<ep>`` stream feeding its ``mix`` output.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from mcu.api import VIDEO_CODECS, PeerSpec
from mcu.audio import AudioMixer
from mcu.audio.codec import SAMPLE_RATE as MIX_RATE
from mcu.audio.telephony import TELEPHONY
from mcu.bridge.depacketize import H264Assembler, Vp8Assembler, opus_payload
from mcu.bridge.packetize import Packetizer
from mcu.bridge.rendition_streams import ENCODERS, RenditionStreams, expand
from mcu.compose import DEFAULT_RENDITIONS, Compositor, Layout, Rendition
from mcu.sfu.router import Router
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output
from mcu.bridge.rendition_policy import RenditionController, audio_profile, start_rendition

log = logging.getLogger("mcu.bridge.pipeline")

# An H.264 rendition for public HLS/RTMP (mcu.record); encoded only while a stream reads it.
HLS_RENDITION = Rendition("hls", 540, 1_200_000, codec="h264")
COMPOSITE_FPS = 20
MAX_TILES = {1: Layout.SPEAKER, 4: Layout.GRID_2X2, 9: Layout.GRID_3X3, 16: Layout.GRID_4X4}
NACK_WINDOW = 1.0  # s


class McuSubscriber(Protocol):
    """A member of the meeting as the pipeline sees it."""

    endpoint_id: str
    spec: PeerSpec
    closed: bool

    @property
    def outputs(self) -> Mapping[str, Output]: ...


class McuHost(Protocol):
    """The meeting as the pipeline sees it: who is on screen first, and whom it serves (a subset
    of ``mcu.meeting.contracts.MeetingHandle``, which this layer may not import)."""

    @property
    def floor(self) -> str | None: ...

    @property
    def speaker(self) -> str | None: ...

    @property
    def peers(self) -> Mapping[str, McuSubscriber]: ...


class McuSources(Protocol):
    """The meeting's publisher streams (``mcu.meeting.contracts.Sources``)."""

    cameras: list[Stream]
    screens: list[Stream]
    mics: list[Stream]


@dataclass
class _Sub:
    """A composite subscriber: its output, the codec it decodes, its rendition controller."""

    out: Output
    codec: str
    ctl: RenditionController
    history: list[tuple[float, str]] = field(default_factory=list)
    window: list[tuple[float, int, int]] = field(default_factory=list)  # (t, nacked, packets)

    def nack_loss(self, now: float, packets: int) -> int:
        """Loss (x/256) from the subscriber's NACKs over the last NACK_WINDOW seconds: it
        shows a filling bottleneck one round trip after the first drop, long before RTCP RR."""
        self.window.append((now, self.out.nacked, packets))
        while len(self.window) > 2 and now - self.window[1][0] >= NACK_WINDOW:
            self.window.pop(0)
        t0, n0, p0 = self.window[0]
        sent = packets - p0
        if now - t0 < NACK_WINDOW / 2 or sent < 10:
            return 0
        return min(255, (self.out.nacked - n0) * 256 // sent)


class _Mix:
    """One listener's ``mcu:mix:<ep>`` stream in its profile's codec: Opus at 48 kHz, or G.711/G.722
    with the RTP clock of 8000 Hz (the mixer's 48 kHz timestamps are converted, across wraps)."""

    def __init__(self, endpoint_id: str, profile: str, codec: str) -> None:
        tel = TELEPHONY.get(codec)
        clock = tel.clock_rate if tel is not None else MIX_RATE
        self.profile = profile
        self.stream = Stream(
            stream_id=f"mcu:mix:{endpoint_id}",
            endpoint_id="mcu",
            kind="audio",
            source="mix",
            codec=codec,
            clock_rate=clock,
        )
        self.packetizer = Packetizer(tel.payload_type) if tel is not None else Packetizer()
        self.divisor = MIX_RATE // clock
        self.timestamp = 0
        self._last: int | None = None  # the mixer's last timestamp (48 kHz)

    def on_packet(self, payload: bytes, mixer_ts: int) -> None:
        if self.stream.closed:
            return
        step = (mixer_ts - self._last) & 0xFFFFFFFF if self._last is not None else mixer_ts
        self._last = mixer_ts
        self.timestamp = (self.timestamp + step // self.divisor) & 0xFFFFFFFF
        self.stream.on_rtp(self.packetizer.audio(payload, self.timestamp))


class _Tap:
    """Per publisher stream: depacketizer state and where its media goes."""

    def __init__(self, pipe: McuPipeline, stream: Stream, source_id: str) -> None:
        self.pipe = pipe
        self.stream = stream
        self.source_id = source_id
        self.video: Vp8Assembler | H264Assembler | None = None
        if stream.kind == "video":
            self.video = H264Assembler() if stream.codec == "H264" else Vp8Assembler()
        self.codec = ENCODERS.get(stream.codec, "")

    def __call__(self, data: bytes) -> None:
        if self.video is not None:
            frame = self.video.push(data)
            if frame is not None:
                self.pipe.compositor.push(self.source_id, self.codec, frame.payload, frame.keyframe)
            elif self.video.need_keyframe:
                self.stream.request_keyframe()  # merged and rate limited by the stream
            return
        parsed = opus_payload(data, self.stream.level_id)
        if parsed is not None:
            payload, seq, ts, level = parsed
            self.pipe.mixer.push(self.source_id, payload, seq, ts, level)


class McuPipeline:
    name: str = "mcu"  # its key in the meeting's stats
    remote_origin: str | None = None  # it composes here, from the meeting's own sources

    def __init__(
        self,
        router: Router,
        *,
        host: McuHost | None = None,
        fps: int = COMPOSITE_FPS,
        renditions: Sequence[Rendition] = (*DEFAULT_RENDITIONS, HLS_RENDITION),
        workers: int = 2,
        layout: Layout | str | None = None,
        codecs: Sequence[str] = VIDEO_CODECS,
    ) -> None:
        self.router = router
        self.codecs = [c for c in codecs if c in ENCODERS]  # the codecs the node may encode
        self.host = host  # None: fed through refresh() and attach() only
        self.fps = fps
        self.fixed_layout = Layout(layout) if layout is not None else None
        self.compositor = Compositor(
            self.fixed_layout or Layout.GRID_2X2,
            fps=fps,
            renditions=expand(renditions, self.codecs),
            workers=workers,
            on_keyframe_needed=self._source_keyframe,
        )
        self.mixer = AudioMixer()
        ladder = [t.name for t in renditions if not t.audio_only and t.codec == "vp8"]  # sent over RTP
        self.rendition_out = RenditionStreams(self.compositor, ladder, self.codecs, fps)
        self.rendition_streams = self.rendition_out.streams
        self.renditions = list(self.rendition_streams)
        self._refused: set[str] = set()  # codecs asked for that the node may not encode (logged once)
        self.mixes: dict[str, _Mix] = {}
        self.subs: dict[str, _Sub] = {}
        self.taps: dict[str, _Tap] = {}  # by publisher stream id
        self._scene: tuple[list[str], Layout] | None = None
        self.started = False
        self.stopped = False
        self.compositor.set_active_renditions(())  # nothing to encode before a subscriber

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.started or self.stopped:
            return
        self.started = True
        await self.compositor.start()
        self.mixer.start()

    async def stop(self) -> None:
        """Idempotent: untap publishers, stop the clocks, detach every output."""
        if self.stopped:
            return
        self.stopped = True
        for tap in self.taps.values():
            tap.stream.remove_tap(tap)
        self.taps.clear()
        await self.compositor.stop()
        await self.mixer.stop()
        self.rendition_out.close()
        for mix in self.mixes.values():
            mix.stream.close()
        self.mixes.clear()
        self.subs.clear()

    # -- as a meeting extension ------------------------------------------------------------

    def published(self) -> Iterable[Stream]:
        return ()  # its rendition and mix streams feed outputs only: never sources of the meeting

    def on_assign(self, sources: McuSources) -> None:
        """The meeting rerouted: put its sources on screen, feed its composite/mix outputs."""
        host = self.host
        if host is None:
            return
        order = [e for e in (host.floor, host.speaker) if e is not None]
        names = {p.endpoint_id: p.spec.display_name for p in host.peers.values()}
        self.refresh(sources.cameras, sources.screens, sources.mics, order, names)
        for peer in list(host.peers.values()):
            if not peer.closed:
                for out in list(peer.outputs.values()):
                    if out.role in ("composite", "mix"):
                        self.attach(peer, out)

    # -- inputs ----------------------------------------------------------------------------

    def refresh(
        self, cameras: list[Stream], screens: list[Stream], mics: list[Stream], order: list[str], names: dict[str, str]
    ) -> None:
        """Tap the meeting's current publisher streams, untap gone ones, and put the
        sources on screen: screen shares first, then cameras in ``order`` (floor holder,
        speaker, then by appearance)."""
        if self.stopped:
            return
        screens = [s for s in screens if s.codec in ENCODERS]  # the codecs the depacketizer knows
        cameras = [s for s in cameras if s.codec in ENCODERS]
        current: dict[str, tuple[Stream, str]] = {}
        for s in screens:
            current[s.stream_id] = (s, f"{s.endpoint_id}/screen")
        for s in cameras:
            current[s.stream_id] = (s, s.endpoint_id)
        for s in mics:
            current[s.stream_id] = (s, s.endpoint_id)
        # gone streams, and relabelled ones (a cascade's upstream line now carries another
        # endpoint): untapped, then tapped again under their new source id
        for sid in [sid for sid in self.taps if sid not in current or current[sid][1] != self.taps[sid].source_id]:
            tap = self.taps.pop(sid)
            tap.stream.remove_tap(tap)
            if tap.video is not None:
                self.compositor.remove_source(tap.source_id)
            else:
                self.mixer.remove_source(tap.source_id)
        for sid, (stream, source_id) in current.items():
            if sid not in self.taps:
                tap = self.taps[sid] = _Tap(self, stream, source_id)
                stream.add_tap(tap)
        rank = {ep: i for i, ep in enumerate(order)}
        cams = sorted(cameras, key=lambda s: rank.get(s.endpoint_id, len(rank)))
        ids = [f"{s.endpoint_id}/screen" for s in screens] + [s.endpoint_id for s in cams]
        ids = ids[: max(MAX_TILES)]
        layout = self.fixed_layout or next(
            (lay for n, lay in sorted(MAX_TILES.items()) if len(ids) <= n), Layout.GRID_4X4
        )
        if self._scene != (ids, layout):
            self._scene = (ids, layout)
            if layout is not self.compositor.layout:
                self.compositor.set_layout(layout)
            labels = {i: names.get(i.split("/")[0], i) for i in ids}
            self.compositor.set_sources(ids, labels)

    def set_layout(self, layout: Layout | str | None) -> None:
        """The chair's choice (None: automatic by the number of sources)."""
        self.fixed_layout = Layout(layout) if layout is not None else None
        self._scene = None
        if self.fixed_layout is not None:
            self.compositor.set_layout(self.fixed_layout)

    def _source_keyframe(self, source_id: str) -> None:
        for tap in self.taps.values():
            if tap.source_id == source_id and tap.video is not None:
                tap.stream.request_keyframe()

    # -- outputs ---------------------------------------------------------------------------

    def attach(self, peer: McuSubscriber, out: Output, now: float | None = None) -> None:
        """Route a ``composite`` or ``mix`` output of ``peer`` (idempotent)."""
        if self.stopped or out.closed:
            return
        ep = peer.endpoint_id
        if out.role == "composite":
            sub = self.subs.get(ep)
            if sub is None or sub.out is not out:
                codec = self._codec_for(ep, out)
                if codec is None:
                    return
                now = time.monotonic() if now is None else now
                rendition = start_rendition(peer.spec)
                sub = self.subs[ep] = _Sub(out, codec, RenditionController(rendition, since=now))
                sub.history.append((now, rendition))
            if self.router.route(out, self.rendition_out.get(sub.codec, sub.ctl.rendition)):
                self._update_active()
        elif out.role == "mix":
            profile = audio_profile(peer.spec)
            mix = self.mixes.get(ep)
            if mix is None or mix.profile != profile:  # a re-INVITE may change a room's codec
                if mix is not None:
                    mix.stream.close()
                mix = self.mixes[ep] = _Mix(ep, profile, self.mixer.profiles[profile].codec)
                self.mixer.listener(ep, profile, mix.on_packet)
            self.router.route(out, mix.stream)

    def _codec_for(self, endpoint_id: str, out: Output) -> str | None:
        """The codec of the composite for ``out``: the one its subscriber decodes, else another its
        line negotiated ("" takes any: VP8 first), if the node may encode it; None (logged once
        per codec) if not."""
        for codec in ([out.codec] if out.codec else []) + self.codecs:
            if codec in self.codecs and out.accepts(codec):
                return codec
        if out.codec not in self._refused:
            self._refused.add(out.codec)
            log.warning(
                "no composite for %s: it decodes %s, this node encodes only %s (logged once per codec)",
                endpoint_id,
                out.codec,
                self.codecs,
            )
        return None

    def _update_active(self) -> None:
        """Only renditions that feed an output are encoded (a new one starts with a keyframe); the
        compositor adds the renditions its queue readers (recorder, HLS) consume."""
        self.compositor.set_active_renditions(self.rendition_out.in_use())

    def forget(self, endpoint_id: str) -> None:
        """The endpoint left: drop its listener, mix stream and rendition state."""
        if self.subs.pop(endpoint_id, None) is not None:
            subs = [s for s in self.subs.values() if not s.out.closed]
            self.compositor.set_active_renditions(
                [n for s in subs if (n := self.rendition_out.name(s.codec, s.ctl.rendition))]
            )
        self.mixer.remove_listener(endpoint_id)
        mix = self.mixes.pop(endpoint_id, None)
        if mix is not None:
            mix.stream.close()

    # -- renditions -----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Rendition control from each composite subscriber's reports (hysteresis in the
        controller); a change routes the output to the other rendition's stream."""
        for ep, sub in list(self.subs.items()):
            out = sub.out
            if out.closed:
                continue
            current = self.rendition_out.get(sub.codec, sub.ctl.rendition)
            nack_loss = sub.nack_loss(now, current.packets if current is not None else 0)
            loss = max(out.fraction_lost, nack_loss)
            rendition = sub.ctl.update(now, loss, out.remb)
            stream = self.rendition_out.get(sub.codec, rendition)  # None: audio only, the composite paused
            if out.source is not stream:
                log.info("composite subscriber %s: rendition %s", ep, rendition)
                sub.history.append((now, rendition))
                sub.window.clear()
                out.fraction_lost = 0  # the next reports describe the new rendition
                self.router.route(out, stream)
                self._update_active()

    def rendition_of(self, endpoint_id: str) -> str | None:
        sub = self.subs.get(endpoint_id)
        return sub.ctl.rendition if sub is not None else None

    def stats(self) -> dict[str, Any]:
        st = self.compositor.stats
        return {
            "renditions": {ep: s.ctl.rendition for ep, s in self.subs.items()},
            "frames_out": dict(st.frames_out),
            "bytes_out": dict(st.bytes_out),
            "composites": st.composites,
            "ticks_dropped": st.ticks_dropped,
            "keyframes": {t: self.compositor.keyframe_stats(t) for t in self.renditions},
            "mix_listeners": len(self.mixes),
            "sources": sorted(tap.source_id for tap in self.taps.values()),
        }
