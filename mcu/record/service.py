"""Recording and live HLS of meetings on one media node: the object behind ``ctx.recordings``.

The media core connects it with one call::

    service.connect_media(lambda meeting_id: taps_or_none)

where the callable returns, for a meeting with media running on this node, an object with
``compositor`` (``mcu.compose.Compositor``) and ``mixer`` (``mcu.audio.AudioMixer``) attributes,
and None otherwise. Recording takes the compositor's ``record_rendition`` (VP8, 720p) and a mixer
listener; HLS takes ``hls_rendition`` (an H.264 rendition, e.g. ``Rendition("hls", 540, 1_200_000,
codec="h264")``: a compositor's renditions differ in height or codec) and another listener. Several
meetings may record and stream at once; each has its own sinks.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mcu.api import MediaConflict, MediaUnavailable
from mcu.record.feeds import AudioFeed
from mcu.record.hls import HlsWriter
from mcu.record.recorder import Recorder
from mcu.record.rtmp import RtmpPusher
from mcu.record.store import RecordingStore

log = logging.getLogger(__name__)


# Refusals (mcu.api's errors, which signaling maps to HTTP statuses): MediaUnavailable when this
# node has no compositor/mixer for the meeting (not wired, or the meeting has no media here).


class AlreadyRunning(MediaConflict):
    """The meeting is already being recorded (or streamed)."""


class NotRunning(MediaConflict):
    """The meeting is not being recorded (or streamed)."""


@dataclass
class _Active:
    sink: Any
    cleanup: Callable[[], None]
    info: dict[str, Any] = field(default_factory=dict)


class RecordingService:
    def __init__(
        self,
        root: str | Path,
        retention_days: float = 30,
        hls_root: str | Path | None = None,
        segment_seconds: float = 4.0,
        record_rendition: str = "720p",
        hls_rendition: str = "hls",
        hls_segment_seconds: float = 2.0,
        hls_window: int = 6,
        audio_profile: str = "fibre",
        sweep_interval_s: float = 3600.0,
    ) -> None:
        self.store = RecordingStore(root, retention_days)
        self.hls_root = Path(hls_root) if hls_root else Path(root).parent / "live"
        self.segment_seconds, self.record_rendition, self.hls_rendition = (
            segment_seconds,
            record_rendition,
            hls_rendition,
        )
        self.hls_segment_seconds, self.hls_window = hls_segment_seconds, hls_window
        self.audio_profile = audio_profile
        self.sweep_interval_s = sweep_interval_s
        self._media: Callable[[str], Any] | None = None
        self._release: Callable[[str], Any] | None = None
        self._recording: dict[str, _Active] = {}
        self._streaming: dict[str, _Active] = {}
        self._pushing: dict[str, _Active] = {}
        self._sweeper: asyncio.Task | None = None
        self._lock = asyncio.Lock()

    def connect_media(self, provider: Callable[[str], Any] | None, release: Callable[[str], Any] | None = None) -> None:
        """``provider(meeting_id)`` (plain or async) -> an object with ``compositor`` and
        ``mixer`` (e.g. ``mcu.bridge.pipeline.McuPipeline``), or None when the meeting has no media
        here. The provider may create the pipeline; each successful call is paired with one
        ``release(meeting_id)`` when that recording/stream ends, so the media core can keep the
        pipeline alive while anything records or streams it (reference count)."""
        self._media, self._release = provider, release

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Finish recordings a crash interrupted, sweep, and sweep again every interval."""
        loop = asyncio.get_running_loop()
        recovered = await loop.run_in_executor(None, self.store.recover_all, self.active_ids())
        if recovered:
            log.warning("recovered %d interrupted recording(s): %s", len(recovered), ", ".join(recovered))
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="recordings-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        for mid in list(self._recording):
            await self.stop_recording(mid)
        for mid in list(self._streaming):
            await self.stop_streaming(mid)

    async def _sweep_loop(self) -> None:
        while True:
            try:
                gone = await self.sweep()
                if gone:
                    log.info("retention: deleted %d recording(s)", len(gone))
            except Exception:
                log.exception("recording retention sweep failed")
            await asyncio.sleep(self.sweep_interval_s)

    async def sweep(self) -> list[str]:
        return await asyncio.get_running_loop().run_in_executor(None, self.store.sweep, self.active_ids())

    def active_ids(self) -> list[str]:
        return [a.info["id"] for a in self._recording.values() if a.sink.running]

    # ---- wiring to the media of a meeting -----------------------------------------------
    async def _taps(self, meeting_id: str) -> Any:
        if self._media is None:
            raise MediaUnavailable("media pipeline not wired yet")
        taps = self._media(meeting_id)
        if inspect.isawaitable(taps):
            taps = await taps
        if taps is None:
            raise MediaUnavailable(f"meeting {meeting_id} has no media running on this node")
        return taps

    def _sources(self, meeting_id: str, taps: Any, rendition: str, listener_id: str):
        """Subscribe to a rendition and to the mix; on failure the media is released again."""
        comp, mixer = taps.compositor, taps.mixer
        sub, feed, done = None, AudioFeed(), []
        try:
            sub = comp.subscribe(rendition, maxsize=120)
            mixer.listener(listener_id, self.audio_profile, feed.on_packet)
        except Exception as exc:
            if sub is not None:
                sub.close()
            self._let_go(meeting_id)
            if isinstance(exc, KeyError):
                raise MediaUnavailable(f"the compositor has no {rendition!r} rendition") from exc
            raise

        def cleanup() -> None:
            if not done:
                done.append(True)
                sub.close()
                mixer.remove_listener(listener_id)
                feed.close()
                self._let_go(meeting_id)

        return sub, feed, (lambda: comp.request_keyframe(rendition)), cleanup

    def _let_go(self, meeting_id: str) -> None:
        if self._release is not None:
            try:
                self._release(meeting_id)
            except Exception:
                log.exception("releasing the media of meeting %s failed", meeting_id)

    # ---- recording ----------------------------------------------------------------------
    def recording(self, meeting_id: str) -> dict[str, Any] | None:
        act = self._recording.get(meeting_id)
        return dict(act.info, **act.sink.result()) if act is not None and act.sink.running else None

    async def start_recording(self, meeting_id: str, meta: dict[str, Any]) -> dict[str, Any]:
        async with self._lock:
            act = self._recording.get(meeting_id)
            if act is not None and act.sink.running:
                raise AlreadyRunning(f"meeting {meeting_id} is already being recorded ({act.info['id']})")
            if act is not None:  # ended by itself (the meeting's media stopped)
                act.cleanup()
            taps = await self._taps(meeting_id)
            folder = self.store.new_dir(meeting_id)
            try:
                sub, feed, keyframe, cleanup = self._sources(
                    meeting_id, taps, self.record_rendition, f"rec:{folder.name}"
                )
            except Exception:
                shutil.rmtree(folder, ignore_errors=True)
                raise
            rec = Recorder(folder, dict(meta, meeting_id=meeting_id), sub, feed, self.segment_seconds, keyframe)
            await rec.start()
            self._recording[meeting_id] = _Active(rec, cleanup, {"id": folder.name})
            return rec.result()

    def add_participants(self, meeting_id: str, names: list[str]) -> None:
        act = self._recording.get(meeting_id)
        if act is not None:
            act.sink.add_participants(names)

    async def stop_recording(self, meeting_id: str) -> dict[str, Any]:
        act = self._recording.pop(meeting_id, None)
        if act is None:
            raise NotRunning(f"meeting {meeting_id} is not being recorded")
        act.cleanup()
        await act.sink.stop(drain_s=1.0)
        return self.store.get(act.info["id"])

    # ---- live HLS -----------------------------------------------------------------------
    def hls_dir(self, meeting_id: str) -> Path | None:
        """The folder of a meeting's live stream while it is on; None otherwise."""
        act = self._streaming.get(meeting_id)
        return act.sink.directory if act is not None and act.sink.running else None

    async def start_streaming(self, meeting_id: str, rtmp_url: str | None = None) -> dict[str, Any]:
        """Public HLS, plus (optional) an RTMP push of the same rendition to ``rtmp_url``."""
        async with self._lock:
            act = self._streaming.get(meeting_id)
            if act is not None and act.sink.running:
                raise AlreadyRunning(f"meeting {meeting_id} is already streaming")
            if act is not None:
                await self.stop_streaming(meeting_id)
            taps = await self._taps(meeting_id)
            sub, feed, keyframe, cleanup = self._sources(meeting_id, taps, self.hls_rendition, f"hls:{meeting_id}")
            folder = self.hls_root / (re.sub(r"[^A-Za-z0-9_-]+", "_", meeting_id) or "meeting")
            hls = HlsWriter(folder, self.hls_segment_seconds, self.hls_window, sub, feed, keyframe)
            await hls.start()
            self._streaming[meeting_id] = _Active(hls, cleanup, {"dir": str(folder)})
            if rtmp_url:
                taps = await self._taps(meeting_id)  # one provider call per release
                sub, feed, keyframe, cleanup = self._sources(meeting_id, taps, self.hls_rendition, f"rtmp:{meeting_id}")
                pusher = RtmpPusher(rtmp_url, sub, feed, keyframe)
                await pusher.start()
                self._pushing[meeting_id] = _Active(pusher, cleanup, {"url": rtmp_url})
            return {"meeting_id": meeting_id, "streaming": True, "rtmp": bool(rtmp_url)}

    async def stop_streaming(self, meeting_id: str) -> dict[str, Any]:
        act = self._streaming.pop(meeting_id, None)
        if act is None:
            raise NotRunning(f"meeting {meeting_id} is not streaming")
        act.cleanup()
        await act.sink.stop(drain_s=1.0)
        shutil.rmtree(act.sink.directory, ignore_errors=True)
        out: dict[str, Any] = {"meeting_id": meeting_id, "streaming": False}
        push = self._pushing.pop(meeting_id, None)
        if push is not None:
            push.cleanup()
            out["rtmp"] = await push.sink.stop(drain_s=1.0)
        return out
