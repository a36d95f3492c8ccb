"""The composite's renditions as RTP streams, one per (codec, rendition) a subscriber may need.

The rendition ladder (``720p``, ``360p``, ``180p``: ``mcu.bridge.rendition_policy``) is encoded in
each codec the node may encode: VP8 renditions keep their names (``720p``: stream ``mcu:720p``),
those of another codec carry it (``h264:720p``: stream ``mcu:h264:720p``; libx264 baseline
zerolatency, see ``mcu.compose.renditions``: these slice-bounded renditions stay on libx264 where
the GPU's h264_nvenc is chosen). Each rendition's encoded frames are packetized once
(``mcu.bridge.packetize``) into its synthetic ``Stream``, which feeds every subscriber of that
rendition through the SFU's fast path. H.264 is encoded in slices that each fit a packet and sent
as single NAL units (RFC 6184 packetization mode 0): one stream that receivers of either mode
decode (room systems often speak mode 0 only), for about 0.2 dB of PSNR at 720p. PLIs of a stream's subscribers
become merged, rate-limited key-frame requests to that rendition's encoder: the same gate for
every codec.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial

from mcu.bridge.packetize import H264_MAX_PAYLOAD, Packetizer
from mcu.compose import Compositor, EncodedFrame, Rendition
from mcu.sfu.stream import Stream

KEYFRAME_INTERVAL = 0.3  # s: merged PLIs of one rendition's subscribers
ENCODERS = {"VP8": "vp8", "H264": "h264"}  # codec name in mcu -> the compositor's encoder


def rendition_name(codec: str, rendition: str) -> str:
    """The compositor's name of a ladder rendition in ``codec`` ("720p", "h264:720p")."""
    return rendition if codec == "VP8" else f"{ENCODERS[codec]}:{rendition}"


def expand(renditions: Sequence[Rendition], codecs: Iterable[str]) -> list[Rendition]:
    """The VP8 renditions of ``renditions`` are the ladder, encoded in each of ``codecs``; the
    others (audio only, the H.264 one for HLS) stay as they are."""
    out: list[Rendition] = []
    for r in renditions:
        if r.audio_only or r.codec != "vp8":
            out.append(r)
        else:
            out += [
                Rendition(
                    rendition_name(c, r.name),
                    r.height,
                    r.bitrate,
                    codec=ENCODERS[c],
                    speed=r.speed,
                    slice_max=H264_MAX_PAYLOAD if c == "H264" else 0,
                )
                for c in codecs
            ]
    return out


class RenditionStreams:
    """Per (codec, ladder rendition): a synthetic stream fed by the compositor's encoder."""

    def __init__(self, compositor: Compositor, ladder: Sequence[str], codecs: Sequence[str], fps: int) -> None:
        self.compositor = compositor
        self.fps = fps
        self.streams: dict[str, Stream] = {}  # by the compositor's rendition name
        self._keys: dict[tuple[str, str], str] = {}  # (codec, ladder rendition) -> that name
        self._packetizers: dict[str, Packetizer] = {}
        for codec in codecs:
            for rendition in ladder:
                name = self._keys[codec, rendition] = rendition_name(codec, rendition)
                self.streams[name] = Stream(
                    stream_id=f"mcu:{name}",
                    endpoint_id="mcu",
                    kind="video",
                    source="composite",
                    codec=codec,
                    clock_rate=90000,
                    send_keyframe_request=partial(self._keyframe, name),
                    keyframe_interval=KEYFRAME_INTERVAL,
                )
                self._packetizers[name] = Packetizer()
                compositor.subscribe(name, callback=partial(self._on_frame, name))

    def get(self, codec: str, rendition: str) -> Stream | None:
        """The stream of a ladder rendition in ``codec``; None for ``audio`` or a codec not encoded."""
        name = self._keys.get((codec, rendition))
        return self.streams[name] if name is not None else None

    def name(self, codec: str, rendition: str) -> str | None:
        return self._keys.get((codec, rendition))

    def in_use(self) -> list[str]:
        """The renditions that feed an output."""
        return [name for name, s in self.streams.items() if s.outputs()]

    def _on_frame(self, name: str, frame: EncodedFrame) -> None:
        stream = self.streams[name]
        if stream.closed:
            return
        ts = frame.pts * 90000 // self.fps
        packetizer = self._packetizers[name]
        packets = packetizer.h264(frame.data, ts, mode=0) if frame.codec == "h264" else packetizer.vp8(frame.data, ts)
        for packet in packets:
            stream.on_rtp(packet)

    def _keyframe(self, name: str, stream: Stream) -> None:
        """Merged PLIs of a rendition's subscribers (and outputs waiting to start on it). A request
        the gate merges into a recent key frame may come from an output that started after
        that frame: it is then served by the next key frame the interval allows."""
        if not self.compositor.request_keyframe(name):
            self.compositor.want_keyframe(name)

    def close(self) -> None:
        for stream in self.streams.values():
            stream.close()
