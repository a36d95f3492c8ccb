"""Recording of a meeting: the composite picture (remuxed, never re-encoded) and the mixed
Opus sound, as crash-safe WebM segments and, on stop, one final WebM file.

Layout of a recording folder::

    recording.json        index: meeting, title, participants, start, state, segments (atomic)
    seg-00001.webm ...    self-contained segments, each starting at a keyframe (while recording)
    recording.webm        the final file, written by stop() or by recover() after a crash

Each segment is an ordinary WebM file closed (and fsynced) when the next one starts; the open
segment is written with one-second clusters and a flush per packet, so a ``kill -9`` loses at
most about a second of it. ``recover()`` concatenates whatever segments exist into the final
file. VP8 goes into WebM; an H.264 composite goes into Matroska (.mkv) instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import av

from mcu.compose.renditions import EncodedFrame

from mcu.record.feeds import opus_head
from mcu.record.segmenter import MS, SegmentedSink
from mcu.record.util import fsync_file, read_json, write_json_atomic

log = logging.getLogger(__name__)
VN = ZoneInfo("Asia/Ho_Chi_Minh")
INDEX = "recording.json"
LIVE_OPTIONS = {"cluster_time_limit": "1000", "max_interleave_delta": "300000", "flush_packets": "1"}
FORMATS = {"vp8": ("webm", ".webm"), "h264": ("matroska", ".mkv")}


def container_metadata(index: dict) -> dict[str, str]:
    """Title/comment tags players show, plus machine-readable Matroska tags."""
    started = index.get("started_at", "")
    people = index.get("participants") or []
    return {
        "title": index.get("title") or index.get("meeting_id", ""),
        "comment": (
            f"Cuộc họp {index.get('meeting_id', '')}, bắt đầu {started}; "
            f"điểm cầu: {', '.join(people) if people else '-'}"
        ),
        "MEETING_ID": index.get("meeting_id", ""),
        "OCCURRENCE_ID": index.get("occurrence_id") or "",
        "START_TIME": started,
        "DATE_RECORDED": started[:10],
        "PARTICIPANTS": "; ".join(people),
        "creation_time": index.get("started_at_utc", ""),
    }


class Recorder(SegmentedSink):
    kind = "recorder"

    def __init__(
        self,
        path_dir: str | os.PathLike,
        meeting_meta: dict[str, Any],
        video_source: Any,
        audio_source: Any,
        segment_seconds: float = 4.0,
        request_keyframe: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not 2.0 <= segment_seconds <= 6.0:
            raise ValueError("segment_seconds must be between 2 and 6")
        super().__init__(Path(path_dir), segment_seconds, video_source, audio_source, request_keyframe, clock)
        if not meeting_meta.get("meeting_id"):
            raise ValueError("meeting_meta needs a meeting_id")
        self._wall = wall
        self.index: dict[str, Any] = {
            "id": Path(path_dir).name,
            "meeting_id": meeting_meta["meeting_id"],
            "occurrence_id": meeting_meta.get("occurrence_id"),
            "title": meeting_meta.get("title") or meeting_meta["meeting_id"],
            "participants": list(dict.fromkeys(meeting_meta.get("participants") or [])),
            "state": "new",
            "segments": [],
        }
        self._container: av.container.OutputContainer | None = None
        self._seg_path: Path | None = None
        self._vstream = self._astream = None
        self._seg_last_ms = 0
        # fsync and index writes leave the event loop (a slow disk must not stall the media);
        # one thread keeps them in order: a segment is durable before the index lists it.
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rec-io")

    def add_participants(self, names: list[str]) -> None:
        """Endpoints that joined later; written to the index and the final file's tags."""
        for n in names:
            if n not in self.index["participants"]:
                self.index["participants"].append(n)

    # ---- SegmentedSink ------------------------------------------------------------------
    def _open_sink(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        now = datetime.fromtimestamp(self._wall(), UTC)
        self.index.update(
            state="recording",
            started_at=now.astimezone(VN).isoformat(timespec="seconds"),
            started_at_utc=now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        )
        write_json_atomic(self.directory / INDEX, self.index)

    def _begin_segment(self, index: int, start_ms: int) -> None:
        fmt, ext = FORMATS.get(self.codec or "vp8", FORMATS["vp8"])
        self.index["format"], self.index["ext"] = fmt, ext
        self._seg_path = self.directory / f"seg-{index:05d}{ext}"
        c = av.open(str(self._seg_path), "w", format=fmt, options=dict(LIVE_OPTIONS))
        c.metadata.update({k: v for k, v in container_metadata(self.index).items() if v})
        v = c.add_stream(self.codec or "vp8")
        v.codec_context.width, v.codec_context.height = self.width or 1280, self.height or 720
        v.time_base = MS
        a = c.add_stream("libopus", rate=48000)
        a.codec_context.layout = "mono"
        a.codec_context.extradata = opus_head()
        a.time_base = MS
        self._container, self._vstream, self._astream = c, v, a
        self._seg_last_ms = start_ms

    def _mux(self, stream, data: bytes, ms: int, keyframe: bool) -> None:
        pkt = av.Packet(data)
        pkt.stream, pkt.time_base, pkt.pts, pkt.dts = stream, MS, ms, ms
        pkt.is_keyframe = keyframe
        self._container.mux(pkt)
        self._seg_last_ms = max(self._seg_last_ms, ms)

    def _write_video(self, frame: EncodedFrame, ms: int) -> None:
        self._mux(self._vstream, frame.data, ms, frame.keyframe)

    def _write_audio(self, payload: bytes, ms: int) -> None:
        self._mux(self._astream, payload, ms, True)

    def _finish_segment(self, end_ms: int) -> None:
        c, self._container = self._container, None
        if c is None:
            return
        c.close()
        self.index["segments"].append({"file": self._seg_path.name, "start_ms": self.seg_start_ms, "end_ms": end_ms})
        self.index["duration_s"] = round(end_ms / 1000, 3)
        self._io.submit(self._persist, self._seg_path, dict(self.index, segments=list(self.index["segments"])))

    async def sync(self) -> None:
        """Wait until the closed segments are on disk and listed in the index."""
        if not self._io._shutdown:
            await asyncio.get_running_loop().run_in_executor(self._io, lambda: None)

    def _persist(self, segment: Path, index: dict[str, Any]) -> None:
        try:
            fsync_file(segment)
            write_json_atomic(self.directory / INDEX, index)
        except OSError:
            log.exception("recording %s: writing the index failed", self.directory)

    async def _finalise(self) -> None:
        self.index["stopped_at"] = datetime.fromtimestamp(self._wall(), VN).isoformat(timespec="seconds")
        index = dict(self.index, segments=list(self.index["segments"]))
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._io, write_json_atomic, self.directory / INDEX, index)
            self.index = await loop.run_in_executor(self._io, finalise, self.directory, "done")
        finally:
            self._io.shutdown(wait=False)

    def result(self) -> dict[str, Any]:
        return dict(self.index)


def _segment_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("seg-*") if p.suffix in (".webm", ".mkv"))


def concat_segments(segments: list[Path], out: Path, fmt: str, metadata: dict[str, str]) -> int:
    """Remux segments into one file (timestamps are already global); a truncated last segment
    contributes what can be read. Returns the end time in ms (0: nothing readable)."""
    tmp = out.with_name(out.name + ".part")
    oc = av.open(str(tmp), "w", format=fmt)
    oc.metadata.update({k: v for k, v in metadata.items() if v})
    targets: dict[str, Any] = {}
    last: dict[str, int] = {}
    end = 0
    try:
        for path in segments:
            try:
                ic = av.open(str(path))
            except (av.error.FFmpegError, OSError):
                log.warning("segment %s is unreadable; skipped", path)
                continue
            with ic:
                if not targets and not last:
                    for s in ic.streams:
                        if s.type in ("video", "audio") and s.type not in targets:
                            targets[s.type] = oc.add_stream_from_template(s)
                            targets[s.type].time_base = MS
                try:
                    for pkt in ic.demux():
                        target = targets.get(pkt.stream.type)
                        if pkt.pts is None or target is None:
                            continue
                        ms = round(pkt.pts * pkt.time_base * 1000)
                        if ms <= last.get(pkt.stream.type, -1):
                            continue
                        last[pkt.stream.type] = ms
                        pkt.stream, pkt.time_base, pkt.pts, pkt.dts = target, MS, ms, ms
                        oc.mux(pkt)
                        end = max(end, ms + (33 if pkt.stream.type == "video" else 20))
                except (av.error.FFmpegError, EOFError, ValueError):
                    log.warning("segment %s is truncated; kept what was readable", path)
    finally:
        oc.close()
    if end == 0:
        tmp.unlink(missing_ok=True)
        return 0
    fsync_file(tmp)
    os.replace(tmp, out)
    return end


def finalise(directory: str | os.PathLike, state: str = "done") -> dict[str, Any]:
    """Concatenate a recording's segments into its final file, update the index, then delete
    the segments. Used by ``Recorder.stop()`` and, after a crash, by ``recover()``."""
    directory = Path(directory)
    index = read_json(directory / INDEX) or {
        "id": directory.name,
        "meeting_id": directory.name,
        "participants": [],
        "segments": [],
    }
    segments = _segment_files(directory)
    ext = index.get("ext") or (segments[0].suffix if segments else ".webm")
    fmt = index.get("format") or ("matroska" if ext == ".mkv" else "webm")
    final = directory / f"recording{ext}"
    end = concat_segments(segments, final, fmt, container_metadata(index)) if segments else 0
    if not end and final.is_file():  # a crash after the concatenation: probe it
        try:
            with av.open(str(final)) as c:
                end = round((c.duration or 0) / 1000)
        except (av.error.FFmpegError, OSError):
            end = 0
    if end:
        index.update(
            file=final.name, duration_s=round(end / 1000, 3), size_bytes=final.stat().st_size, state=state, segments=[]
        )
    else:
        index.update(file=None, duration_s=0, size_bytes=0, state="empty", segments=[])
    write_json_atomic(directory / INDEX, index)  # the index names the final file first,
    if end:  # then the segments go
        for p in segments:
            p.unlink(missing_ok=True)
    return index


def recover(directory: str | os.PathLike) -> dict[str, Any]:
    """Finish a recording whose server died (state still "recording"): the final file holds
    every segment, the interrupted one up to its last complete cluster."""
    return finalise(directory, state="recovered")
