"""Selective forwarding router of one meeting: which stream feeds which output.

The router is the mechanism; the meeting (``mcu.meeting.meeting``) decides the policy. It keeps the
publisher streams, switches outputs between sources (each output's rewrite state keeps its
sequence numbers and timestamps continuous; video resumes on a key frame) and acts on RTCP
feedback from subscribers: PLI/FIR become (merged, rate-limited) key-frame requests to the
publisher of the output's current source, NACKs are answered from the source's packet cache.
"""

from __future__ import annotations

from typing import Any

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


class Router:
    def __init__(self) -> None:
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
        """Make ``stream`` the source of ``out`` (None: pause). True if it changed."""
        if out.source is stream or out.closed:
            return False
        if out.source is not None:
            out.source.remove_output(out)
        if stream is not None and not stream.closed:
            stream.add_output(out)
        return True

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
