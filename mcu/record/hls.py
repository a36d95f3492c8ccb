"""Live HLS of a meeting for the public: MPEG-TS segments of H.264 + AAC and a rolling playlist.

Video is the compositor's H.264 rendition, remuxed (no re-encode). The mixed Opus sound is decoded
and encoded once to AAC-LC (mono, 48 kHz): MPEG-TS with H.264 + AAC is what every HLS player
plays (Safari/iOS natively, hls.js, VLC, smart TVs), whereas Opus or VP8 in HLS is not.

Files in ``dir``: ``seg000001.ts`` ... (each written as ``.part`` and renamed when complete) and
``index.m3u8``, rewritten atomically (temp file + rename) after every segment, listing the last
``window`` segments with EXT-X-MEDIA-SEQUENCE counting the ones that rolled out. Segments that
left the playlist are deleted a few segments later (a player may still be fetching them).
stop() appends EXT-X-ENDLIST.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from mcu.compose.renditions import EncodedFrame

from mcu.record.aac import AacTranscoder
from mcu.record.feeds import AUDIO_RATE
from mcu.record.segmenter import MS, SegmentedSink
from mcu.record.util import write_atomic

PLAYLIST = "index.m3u8"
KEEP_EXTRA = 3  # segments kept on disk after they left the playlist


class HlsWriter(SegmentedSink):
    kind = "hls"

    def __init__(
        self,
        dir: str | os.PathLike,
        segment_seconds: float = 2.0,
        window: int = 6,
        video_source: Any = None,
        audio_source: Any = None,
        request_keyframe: Callable[[], Any] | None = None,
        audio_bitrate: int = 64000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window < 3:
            raise ValueError("window must be at least 3 segments")
        super().__init__(Path(dir), segment_seconds, video_source, audio_source, request_keyframe, clock)
        self.window = window
        self.audio_bitrate = audio_bitrate
        self.segments: list[tuple[str, float]] = []  # (file, seconds) still on disk, oldest first
        self.media_sequence = 0  # sequence number of segments[0]
        self.target = math.ceil(segment_seconds)
        self._container = None
        self._vstream = self._astream = None
        self._part: Path | None = None
        self._aac: AacTranscoder | None = None
        self.ended = False

    # ---- SegmentedSink ------------------------------------------------------------------
    def _open_sink(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        for p in self.directory.glob("seg*.ts*"):
            p.unlink()
        (self.directory / PLAYLIST).unlink(missing_ok=True)
        self._aac = AacTranscoder(self.audio_bitrate)

    def _begin_segment(self, index: int, start_ms: int) -> None:
        self._part = self.directory / f"seg{index:06d}.ts.part"
        c = av.open(str(self._part), "w", format="mpegts")
        v = c.add_stream(self.codec or "h264")
        v.codec_context.width, v.codec_context.height = self.width or 1280, self.height or 720
        v.time_base = MS
        a = c.add_stream("aac", rate=AUDIO_RATE)
        a.codec_context.layout = "mono"
        a.codec_context.extradata = self._aac.extradata
        a.time_base = MS
        self._container, self._vstream, self._astream = c, v, a

    def _mux(self, stream, data: bytes, ms: int, keyframe: bool) -> None:
        pkt = av.Packet(data)
        pkt.stream, pkt.time_base, pkt.pts, pkt.dts = stream, MS, ms, ms
        pkt.is_keyframe = keyframe
        self._container.mux(pkt)

    def push_video(self, frame: EncodedFrame) -> None:
        if frame.codec != "h264":
            raise ValueError(f"HLS needs the compositor's H.264 rendition, got {frame.codec}")
        super().push_video(frame)

    def _write_video(self, frame: EncodedFrame, ms: int) -> None:
        self._mux(self._vstream, frame.data, ms, frame.keyframe)

    def _write_audio(self, payload: bytes, ms: int) -> None:
        for data, out in self._aac.feed(payload, ms):
            self._mux(self._astream, data, out, True)

    def _finish_segment(self, end_ms: int) -> None:
        c, self._container = self._container, None
        if c is None:
            return
        c.close()
        final = self._part.with_suffix("")  # seg000001.ts.part -> seg000001.ts
        os.replace(self._part, final)
        seconds = max(0.001, (end_ms - self.seg_start_ms) / 1000)
        self.target = max(self.target, int(seconds + 0.5))  # EXTINF rounded <= TARGETDURATION
        self.segments.append((final.name, seconds))
        while len(self.segments) > self.window + KEEP_EXTRA:
            (self.directory / self.segments.pop(0)[0]).unlink(missing_ok=True)
        self._write_playlist()

    async def _finalise(self) -> None:
        self.ended = True
        self._write_playlist()

    # ---- the playlist -------------------------------------------------------------------
    def playlist_text(self) -> str:
        listed = self.segments[-self.window :]
        first_seq = self.segment_index_of(listed[0][0]) - 1 if listed else 0
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{self.target}",
            f"#EXT-X-MEDIA-SEQUENCE:{first_seq}",
        ]
        for name, seconds in listed:
            lines += [f"#EXTINF:{seconds:.3f},", name]
        if self.ended:
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    @staticmethod
    def segment_index_of(name: str) -> int:
        return int(name[3:9])

    def _write_playlist(self) -> None:
        if self.segments:
            self.media_sequence = self.segment_index_of(self.segments[-self.window :][0][0]) - 1
            write_atomic(self.directory / PLAYLIST, self.playlist_text().encode(), sync=False)

    def result(self) -> dict[str, Any]:
        return {"dir": str(self.directory), "segments": self.segment_index, "ended": self.ended}
