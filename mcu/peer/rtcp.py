"""A media peer's RTCP duties, outside aiortc's own senders and receivers (which never see the
forwarded packets): sender-report data for what the router sent, and receiver reports + REMB for
what a publisher (or a cascade trunk) sends us."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterable

from mcu.fence import ntp_time, set_sender_report
from mcu.sfu.rtp_header import remb, receiver_report

if TYPE_CHECKING:
    from mcu.peer.transport import PeerTransport
    from mcu.sfu.stream import Stream
    from mcu.sfu.subscriber import Output


# REMB sent to publishers: the most a camera / a screen share may use (bit/s); under loss the
# node asks for 85 % of what arrives instead.
REMB_MAX = {"camera": 2_500_000, "screen": 3_000_000}


def update_sender_reports(
    transport: "PeerTransport", transceivers: Iterable[Any], outputs: dict[str, "Output"]
) -> None:
    """Give aiortc's senders the NTP/RTP pair and counts of what the router sent, so that
    their RTCP sender reports (A/V sync, RTT) describe the forwarded streams."""
    if transport.binding is None:
        return
    now = time.monotonic()
    ntp = ntp_time()
    for t in transceivers:
        out = outputs.get(t.mid) if t.mid is not None else None
        state = out.report_state(now) if out is not None else None
        if state is None:
            continue
        rtp_now, packets = state  # a state only while the output has a source
        set_sender_report(t.sender, ntp, rtp_now, packets, packets * out.source.mean_payload())


def publisher_feedback(
    transport: "PeerTransport", streams: Any, interval: float, caps: dict[str, int] = REMB_MAX
) -> None:
    """RTCP RR (+ REMB for video, at most ``caps[source]``) for ``streams`` received on
    ``transport`` (also used by a cascade trunk for what it receives from the origin)."""
    if transport.binding is None:
        return
    blocks = []
    video: list[tuple["Stream", int]] = []
    for stream in streams:
        report = stream.reception_report(interval)
        if report is None or stream.ssrc is None:
            continue
        fraction, lost, high, rate = report
        blocks.append((stream.ssrc, fraction, lost, high))
        if stream.kind == "video":
            cap = caps.get(stream.source, REMB_MAX["camera"])
            video.append((stream, cap if fraction < 26 or not rate else int(rate * 0.85)))
    if not blocks:
        return
    packet = receiver_report(transport.rtcp_ssrc, blocks)
    for stream, bitrate in video:
        packet += remb(transport.rtcp_ssrc, bitrate, [stream.ssrc or 0])
    transport.send_rtcp(packet)
