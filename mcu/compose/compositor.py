"""The video compositor: N encoded sources in, one 720p composite per tick, encoded once per rendition.

Threading: the frame clock runs on the asyncio loop; decoding (one job per on-screen source),
composition (numpy into a preallocated yuv420p canvas) and encoding (one job per rendition) run in a
sized ThreadPoolExecutor, where libav releases the GIL. At most one composite is in flight; a
tick that finds the previous composite unfinished is dropped (latest picture wins).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import av
import numpy as np

from mcu.compose.labels import draw_label, make_label
from mcu.compose.layouts import Layout, Rect, fit, layout_rects
from mcu.compose.meter import CpuMeter
from mcu.compose.sources import EncodedInput, Source
from mcu.compose.renditions import (
    DEFAULT_RENDITIONS,
    EncodedFrame,
    KeyframeGate,
    Subscription,
    Rendition,
    RenditionEncoder,
)

log = logging.getLogger(__name__)

BLACK = (16, 128, 128)
EMPTY = (40, 128, 128)  # tile of a source without a picture yet


@dataclass(frozen=True, slots=True)
class Slot:
    rect: Rect
    source: Source | None
    name: str


@dataclass(slots=True)
class Stats:
    composites: int = 0
    ticks_dropped: int = 0
    tick_errors: int = 0
    lag_max: float = 0.0
    lag_sum: float = 0.0
    lag_count: int = 0
    frames_out: dict[str, int] = field(default_factory=dict)
    bytes_out: dict[str, int] = field(default_factory=dict)
    keyframes_out: dict[str, int] = field(default_factory=dict)

    @property
    def lag_mean(self) -> float:
        return self.lag_sum / self.lag_count if self.lag_count else 0.0


class Compositor:
    def __init__(
        self,
        layout: Layout | str = Layout.GRID_3X3,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        renditions: Sequence[Rendition] = DEFAULT_RENDITIONS,
        workers: int = 2,
        *,
        keyframe_interval: float = 0.5,
        encoder_threads: int = 1,
        on_keyframe_needed: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_pending: int = 60,
    ) -> None:
        names = [t.name for t in renditions]
        videos = [(t.height, t.codec) for t in renditions if not t.audio_only]
        if len(set(names)) != len(names) or len(set(videos)) != len(videos):
            raise ValueError("rendition names, and video renditions' (height, codec), must be distinct")
        if any(t.height > height for t in renditions):
            raise ValueError(f"a rendition is taller than the {width}x{height} composite")
        self.width, self.height, self.fps = width, height, fps
        self.meter = CpuMeter()
        self.stats = Stats()
        self._clock = clock
        self._on_keyframe_needed = on_keyframe_needed
        self._max_pending = max_pending
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="compose")
        self.renditions = {t.name: t for t in renditions}
        self._encoders = {
            t.name: RenditionEncoder(t, width, height, fps, encoder_threads, self.meter)
            for t in renditions
            if not t.audio_only
        }
        self._workers = workers
        self._encode_groups = self._group_encoders(list(self._encoders.values()), workers)
        self._gates = {n: KeyframeGate(keyframe_interval, clock) for n in self._encoders}
        self._active: frozenset[str] | None = None  # renditions to encode (None: all)
        self._subs: dict[str, list[Subscription]] = {n: [] for n in self.renditions}
        self._sources: dict[str, Source] = {}
        self._names: dict[str, str] = {}
        self._asked: dict[str, float] = {}
        self._layout = Layout(layout)
        self._slot_ids: list[str | None] = []
        self._scene: tuple[Slot, ...] = ()
        self._scene_version = 0
        self._drawn_version = -1
        self._buf = np.empty(width * height * 3 // 2, np.uint8)
        y, c = width * height, width * height // 4
        self._y = self._buf[:y].reshape(height, width)
        self._u = self._buf[y : y + c].reshape(height // 2, width // 2)
        self._v = self._buf[y + c :].reshape(height // 2, width // 2)
        self._task: asyncio.Task | None = None
        self._inflight: asyncio.Task | None = None
        self._stopped = False
        self._one_at_a_time = asyncio.Lock()
        self._rebuild()

    @staticmethod
    def _group_encoders(encoders: list[RenditionEncoder], workers: int) -> list[list[RenditionEncoder]]:
        """Renditions packed into at most `workers` jobs balanced by pixel count (720p alone,
        360p + 180p together), so each composite costs few executor round trips. Renditions of
        one size (in several codecs) share a job: the picture is scaled once for them, and they
        take turns with the one frame (see ``RenditionEncoder.encode``)."""
        sizes: dict[tuple[int, int], list[RenditionEncoder]] = {}
        for e in encoders:
            sizes.setdefault((e.width, e.height), []).append(e)
        bins: list[list[RenditionEncoder]] = [[] for _ in range(max(1, min(workers, len(sizes))))]
        load = [0] * len(bins)
        for (w, h), same in sorted(sizes.items(), key=lambda kv: -kv[0][0] * kv[0][1] * len(kv[1])):
            i = load.index(min(load))
            bins[i] += same
            load[i] += w * h * len(same)
        return [b for b in bins if b]

    # ---- the chair's choices ---------------------------------------------------------
    @property
    def layout(self) -> Layout:
        return self._layout

    def set_layout(self, layout: Layout | str) -> None:
        self._layout = Layout(layout)
        self._rebuild()

    def set_sources(self, source_ids: Sequence[str | None], names: Mapping[str, str] | None = None) -> None:
        """Sources in slot order (None leaves a slot empty); extra ones beyond the layout's
        slots are not shown, hence not decoded. `names` label the tiles."""
        self._slot_ids = list(source_ids)
        if names:
            self._names.update(names)
        self._rebuild()

    def set_name(self, source_id: str, name: str) -> None:
        self._names[source_id] = name
        self._rebuild()

    def remove_source(self, source_id: str) -> None:
        """The endpoint left: forget its decoder and pictures (its slot, if any, shows empty)."""
        self._sources.pop(source_id, None)
        self._asked.pop(source_id, None)
        self._slot_ids = [None if s == source_id else s for s in self._slot_ids]
        self._rebuild()

    def _source(self, source_id: str) -> Source:
        src = self._sources.get(source_id)
        if src is None:
            src = self._sources[source_id] = Source(source_id, self._max_pending, self.meter)
        return src

    def _rebuild(self) -> None:
        rects = layout_rects(self._layout, self.width, self.height)
        ids = self._slot_ids[: len(rects)] + [None] * max(0, len(rects) - len(self._slot_ids))
        visible = {i for i in ids if i is not None}
        for sid, src in self._sources.items():
            if src.on_screen and sid not in visible:
                src.on_screen = False
                src.reset()
        slots = []
        for rect, sid in zip(rects, ids):
            src = self._source(sid) if sid is not None else None
            if src is not None and not src.on_screen:
                src.on_screen = True
                src.need_keyframe = True
                self._ask_keyframe(sid)
            slots.append(Slot(rect, src, self._names.get(sid, sid or "")))
        self._scene = tuple(slots)
        self._scene_version += 1

    def _ask_keyframe(self, source_id: str) -> None:
        now = self._clock()
        if self._on_keyframe_needed and now - self._asked.get(source_id, -1e9) >= 0.5:
            self._asked[source_id] = now
            self._on_keyframe_needed(source_id)

    # ---- input from the SFU ----------------------------------------------------------
    def push(self, source_id: str, codec: str, payload: bytes, keyframe: bool, pts: int | None = None) -> None:
        """One depacketized encoded video frame of a source (VP8 or H.264). Cheap: frames of
        sources off screen are dropped here and never decoded."""
        if self._source(source_id).push(EncodedInput(codec.lower(), payload, keyframe, pts)):
            self._ask_keyframe(source_id)

    # ---- output to subscribers -------------------------------------------------------
    def subscribe(
        self, rendition: str, maxsize: int = 8, callback: Callable[[EncodedFrame], None] | None = None
    ) -> Subscription:
        if rendition not in self.renditions:
            raise KeyError(f"unknown rendition {rendition!r}; renditions: {', '.join(self.renditions)}")
        sub = Subscription(rendition, maxsize, callback, self._unsubscribe)
        self._subs[rendition].append(sub)
        if rendition in self._gates:
            self._gates[rendition].want()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.rendition, [])
        if sub in subs:
            subs.remove(sub)

    def request_keyframe(self, rendition: str) -> bool:
        """A subscriber of `rendition` lost the picture (PLI/FIR). Merged: at most one forced
        keyframe per rendition per keyframe_interval. Returns True if this request forces one."""
        gate = self._gates.get(rendition)
        return gate.request() if gate is not None else False

    def want_keyframe(self, rendition: str) -> None:
        """A subscriber of `rendition` waits for a keyframe (it started after the last one): the
        next frame allowed by keyframe_interval is one; requests meanwhile are merged."""
        gate = self._gates.get(rendition)
        if gate is not None:
            gate.want()

    def set_active_renditions(self, renditions: Iterable[str] | None) -> None:
        """Encode only these renditions (None: all), e.g. those with subscribers: an idle rendition
        costs no CPU. A rendition that becomes active again starts with a keyframe."""
        new = None if renditions is None else frozenset(renditions)
        if new == self._active:
            return
        for name, gate in self._gates.items():
            if new is not None and name in new and self._active is not None and name not in self._active:
                gate.want()
        self._active = new

    def _effective_active(self) -> frozenset[str] | None:
        """The requested renditions plus every rendition a queue subscriber reads (a recorder, HLS)."""
        if self._active is None:
            return None
        queued = {rendition for rendition, subs in self._subs.items() if any(s.queued and not s.closed for s in subs)}
        return self._active | queued

    def keyframe_stats(self, rendition: str) -> dict[str, int]:
        g = self._gates[rendition]
        return {"requests": g.requests, "merged": g.merged, "forced": g.forced}

    # ---- one composite ---------------------------------------------------------------
    async def compose_once(self, pts: int | None = None) -> dict[str, list[EncodedFrame]]:
        """Decode what arrived for the on-screen sources, compose, encode every rendition, deliver.
        The clock calls this once per tick; tests may call it directly. Composites never
        overlap (decoders, encoders and the canvas are used by one composite at a time)."""
        if self._stopped:
            raise RuntimeError("compositor is stopped")
        async with self._one_at_a_time:
            return await self._compose_once(pts)

    async def _compose_once(self, pts: int | None) -> dict[str, list[EncodedFrame]]:
        loop = asyncio.get_running_loop()
        scene, version = self._scene, self._scene_version
        if pts is None:
            pts = self.stats.composites
        work = [
            (slot.source, items, slot.rect)
            for slot in scene
            if slot.source is not None and (items := slot.source.take())
        ]
        n = min(self._workers, len(work))  # one job per worker, not per source
        for failed in await asyncio.gather(
            *[loop.run_in_executor(self._pool, self._decode_batch, work[i::n]) for i in range(n)]
        ):
            for src in failed:
                src.need_keyframe = True
                self._ask_keyframe(src.id)
        canvas = await loop.run_in_executor(self._pool, self._compose, scene, version)
        active = self._effective_active()
        forced = {
            name: gate.take() if active is None or name in active else False for name, gate in self._gates.items()
        }
        results = await asyncio.gather(
            *[
                loop.run_in_executor(self._pool, self._encode_group, group, canvas, pts, forced, active)
                for group in self._encode_groups
            ]
        )
        encoders = [e for group in self._encode_groups for e in group]
        results = [frames for group in results for frames in group]
        out = {e.rendition.name: frames for e, frames in zip(encoders, results)}
        self.stats.composites += 1
        self._deliver(out)
        return out

    def _decode_batch(self, work: list[tuple[Source, list[EncodedInput], Rect]]) -> list[Source]:
        """Worker: decode several sources; returns those that need a keyframe."""
        return [src for src, items, rect in work if not self._decode(src, items, rect)]

    @staticmethod
    def _encode_group(
        group: list[RenditionEncoder],
        canvas: av.VideoFrame,
        pts: int,
        forced: dict[str, bool],
        active: frozenset[str] | None = None,
    ) -> list[list[EncodedFrame]]:
        scaled: dict[tuple[int, int], av.VideoFrame] = {}
        out: list[list[EncodedFrame]] = []
        for e in group:
            if active is not None and e.rendition.name not in active:
                out.append([])
                continue
            picture = scaled.get((e.width, e.height))
            if picture is None:
                picture = scaled[e.width, e.height] = e.scale(canvas)
            out.append(e.encode(picture, pts, forced[e.rendition.name]))
        return out

    @staticmethod
    def _decode(src: Source, items: list[EncodedInput], rect: Rect) -> bool:
        """Worker: decode a source's new frames and scale the latest one to its tile, so that
        scaling runs in parallel across sources rather than in the composition step."""
        ok = src.decode(items)
        if (size := src.size) is not None:
            inner = fit(size[0], size[1], rect)
            src.planes(inner.w, inner.h)
        return ok

    def _compose(self, scene: tuple[Slot, ...], version: int) -> av.VideoFrame:
        t0 = time.thread_time()
        y, u, v = self._y, self._u, self._v
        if version != self._drawn_version:
            y[:], u[:], v[:] = BLACK
            self._drawn_version = version
        for slot in scene:
            r = slot.rect
            size = slot.source.size if slot.source is not None else None
            inner = fit(size[0], size[1], r) if size else r
            t1 = time.thread_time()
            planes = slot.source.planes(inner.w, inner.h) if size else None
            t0 += time.thread_time() - t1  # scaling is accounted as libav time
            if planes is None or inner != r:
                self._fill(r, EMPTY if planes is None else BLACK)
            if planes is not None:
                py, pu, pv = planes
                y[inner.y : inner.y + inner.h, inner.x : inner.x + inner.w] = py
                cy, cx, ch, cw = inner.y // 2, inner.x // 2, inner.h // 2, inner.w // 2
                u[cy : cy + ch, cx : cx + cw] = pu
                v[cy : cy + ch, cx : cx + cw] = pv
            label = make_label(slot.name, r.w, r.h)
            if label is not None:
                draw_label(y, u, v, r.x, r.y, r.w, r.h, label)
        frame = av.VideoFrame.from_ndarray(self._buf.reshape(-1, self.width), format="yuv420p")
        self.meter.add("compose", time.thread_time() - t0)
        return frame

    def _fill(self, r: Rect, colour: tuple[int, int, int]) -> None:
        self._y[r.y : r.y + r.h, r.x : r.x + r.w] = colour[0]
        self._u[r.y // 2 : (r.y + r.h) // 2, r.x // 2 : (r.x + r.w) // 2] = colour[1]
        self._v[r.y // 2 : (r.y + r.h) // 2, r.x // 2 : (r.x + r.w) // 2] = colour[2]

    def _deliver(self, out: dict[str, list[EncodedFrame]]) -> None:
        st = self.stats
        for rendition, frames in out.items():
            gate = self._gates[rendition]
            for frame in frames:
                st.frames_out[rendition] = st.frames_out.get(rendition, 0) + 1
                st.bytes_out[rendition] = st.bytes_out.get(rendition, 0) + len(frame.data)
                if frame.keyframe:
                    st.keyframes_out[rendition] = st.keyframes_out.get(rendition, 0) + 1
                    gate.emitted()
                for sub in list(self._subs[rendition]):
                    if sub.offer(frame):
                        gate.want()

    # ---- the clock -------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None and not self._stopped:
            self._task = asyncio.create_task(self._run(), name="compositor-clock")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        start = next_t = loop.time()
        while True:
            next_t += period
            delay = next_t - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            lag = max(0.0, loop.time() - next_t)
            st = self.stats
            st.lag_max, st.lag_sum, st.lag_count = max(st.lag_max, lag), st.lag_sum + lag, st.lag_count + 1
            if lag > period:  # the loop stalled: skip the missed ticks
                missed = int(lag / period)
                next_t += missed * period
                st.ticks_dropped += missed
            if self._inflight is not None and not self._inflight.done():
                st.ticks_dropped += 1  # still composing: latest picture wins
                continue
            pts = round((next_t - start) * self.fps)
            self._inflight = asyncio.create_task(self._tick(pts))

    async def _tick(self, pts: int) -> None:
        try:
            await self.compose_once(pts)
        except Exception:
            self.stats.tick_errors += 1
            log.exception("composite failed")

    async def stop(self) -> None:
        """Stop the clock, finish the composite in flight, close subscriptions. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight is not None:
            await asyncio.gather(self._inflight, return_exceptions=True)
        for subs in self._subs.values():
            for sub in list(subs):
                sub.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
