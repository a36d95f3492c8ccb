"""Selective forwarding router of one meeting: which stream feeds which output.

The router is the mechanism; the meeting (``mcu.meeting.meeting``) decides the policy. It keeps the
publisher streams, switches outputs between sources (each output's rewrite state keeps its
sequence numbers and timestamps continuous; video resumes on a key frame) and acts on RTCP
feedback from subscribers: PLI/FIR become (merged, rate-limited) key-frame requests to the
publisher of the output's current source, NACKs are answered from the source's packet cache.

Codecs: a source in a codec the subscriber's line accepts (``Output.accepts``; for H.264 also
its packetization mode and profile) is forwarded untouched, in that codec's payload type
(``Output.use_codec``). Any other source reaches it
converted to ``Output.codec``: the ``convert`` callable (injected by whoever builds the meeting,
``mcu.bridge.transcode.TranscodePool.convert``) returns one stream per (source, codec), shared by
all such outputs, with attribute ``origin`` = the source; None (or no converter) pauses the output.
"""

from __future__ import annotations

from typing import Any, Callable

from mcu.sfu.rtp_header import (
    FEEDBACK_FIR,
    FEEDBACK_NACK,
    FEEDBACK_PLI,
    FEEDBACK_REMB,
    FEEDBACK_RR,
    Feedback,
)
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output


# (source stream, codec the subscriber decodes) -> a shared stream of the source in that codec, or
# None when it cannot be had (the output is then paused)
Convert = Callable[[Stream, str], Stream | None]


class Router:
    def __init__(self, convert: Convert | None = None) -> None:
        self.convert = convert
        self.streams: dict[str, Stream] = {}
        self.feedback_pli = 0
        self.feedback_nack = 0

    def add_stream(self, stream: Stream) -> None:
        self.streams[stream.stream_id] = stream

    def remove_stream(self, stream_id: str) -> list[Output]:
        """Forget a stream; returns the outputs it fed (now without source)."""
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return []
        return stream.close()

    def route(self, out: Output, stream: Stream | None) -> bool:
        """Make ``stream`` (or its conversion to ``out.codec``) the source of ``out`` (None: pause).
        True if it changed."""
        if out.closed:
            return False
        stream = self.in_codec_of(out, stream)
        if out.source is stream:
            return False
        if out.source is not None:
            out.source.remove_output(out)
        if stream is not None and not stream.closed:
            out.use_codec(stream.codec, stream.h264_format)  # a line of several codecs: this one's payload type
            stream.add_output(out)
        return True

    def route_in_its_codec(self, outs: list[Output], stream: Stream | None) -> None:
        """One source for a subscriber's lines of one role, one line per codec (a cascade trunk's):
        ``stream`` in the first line that reads it as sent (untouched), the others paused. No such
        line: converted, in a line of its codec (an H.264 format the line lacks) or the first one.
        A single line is simply routed."""
        chosen = None
        if stream is not None and outs:
            chosen = next((o for o in outs if o.accepts(stream.codec, stream.h264_format)), None)
            chosen = chosen or next((o for o in outs if o.accepts(stream.codec)), outs[0])
        for out in outs:
            if out is not chosen:
                self.route(out, None)
        if chosen is not None:
            self.route(chosen, stream)

    def in_codec_of(self, out: Output, stream: Stream | None) -> Stream | None:
        """``stream`` itself when ``out``'s subscriber decodes its codec (for H.264: in the stream's
        packetization mode and profile), else its conversion (None: there is none, or no converter:
        a stream it cannot decode is never sent to it). An H.264 subscriber that cannot read an
        H.264 source as sent gets the shared transcode to H.264 (single NAL units, constrained
        baseline: every H.264 receiver reads it)."""
        if stream is None or out.kind != "video" or out.accepts(stream.codec, stream.h264_format):
            return stream
        return self.convert(stream, out.codec) if self.convert is not None else None

    def release(self, out: Output) -> None:
        """Detach an output for good (its peer is leaving)."""
        if out.source is not None:
            out.source.remove_output(out)
        out.closed = True
        out.unbind_transport()

    def on_feedback(self, out: Output, items: list[Feedback]) -> None:
        for item in items:
            what = item[0]
            if what == FEEDBACK_PLI or what == FEEDBACK_FIR:
                self.feedback_pli += 1
                src = out.source
                if src is not None:
                    if out.live:
                        src.request_keyframe()
                    elif src.waiting:
                        src.request_keyframe()
            elif what == FEEDBACK_NACK:
                self.feedback_nack += 1
                out.retransmit(item[2])
            elif what == FEEDBACK_RR:
                if item[1] == out.ssrc:  # not the RTX stream's block (it sees no loss)
                    out.fraction_lost = item[2]
            elif what == FEEDBACK_REMB:
                out.remb = item[2]

    def stats(self) -> dict[str, Any]:
        return {
            "streams": [s.stats() for s in self.streams.values()],
            "pli": self.feedback_pli,
            "nack": self.feedback_nack,
        }
