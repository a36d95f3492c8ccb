"""Per-endpoint link quality for the operator's live map, from counters the SFU keeps anyway.

The media node's ticker calls ``QualitySampler.sample(peers, now)`` about once a second. Per
publisher stream it reads ``packets``, ``octets`` (payload bytes, counted in ``Stream.on_rtp``)
and the extended highest sequence number, and keeps one previous sample, so nothing is added
to the per-packet path. ``report(meeting)`` then gives, per endpoint of the meeting::

    {"connected": true,                       # the peer's DTLS/ICE link is up
     "sending": {"audio": true, "video": true, "screen": false},  # packets in the last 3 s
     "kbps": {"audio": 38, "video": 610, "screen": 0}, "bitrate_kbps": 648,   # inbound
     "loss_in_pct": 0.0,    # publisher -> node: missing sequence numbers in the last sample
     "loss_out_pct": 1.2,   # node -> endpoint: the RTCP RR fraction lost the endpoint reports
     "quality": "good",     # good | fair | poor (see ``grade``)
     "why": []}             # what made the grade worse, short English keys for the console

Grades: ``poor`` when the endpoint sends nothing, or loss (either way) reaches 10 %; ``fair``
when loss reaches 3 %, when it sends sound but no picture, or when its camera arrives below
``THIN_VIDEO_KBPS``; ``good`` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from mcu.api import PeerSpec
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output

SENDING_WINDOW = 3.0  # s: a stream counts as sending if a packet arrived this recently
POOR_LOSS_PCT = 10.0
FAIR_LOSS_PCT = 3.0
THIN_VIDEO_KBPS = 12  # a camera below this: a frozen or black picture, or a starved uplink
KINDS = ("audio", "video", "screen")


class Sampled(Protocol):
    """An endpoint's connection as the sampler reads it (``mcu.meeting.contracts.Member``)."""

    spec: PeerSpec

    @property
    def connected(self) -> bool: ...

    @property
    def streams(self) -> Mapping[str, Stream]: ...

    @property
    def outputs(self) -> Mapping[str, Output]: ...


class SampledMeeting(Protocol):
    @property
    def peers(self) -> Mapping[str, Sampled]: ...


def kind_of(stream: Stream) -> str:
    if stream.kind == "audio":
        return "audio"
    return "screen" if stream.source == "screen" else "video"


class _Sample:
    __slots__ = ("t", "packets", "octets", "high", "last_rx", "kbps", "loss_pct")

    def __init__(self, t: float, packets: int, octets: int, high: int) -> None:
        self.t, self.packets, self.octets, self.high = t, packets, octets, high
        self.last_rx = t if packets else -1e9
        self.kbps = 0.0
        self.loss_pct = 0.0


class QualitySampler:
    """One previous sample per live publisher stream; rates over the sampling interval."""

    def __init__(self) -> None:
        self._samples: dict[Stream, _Sample] = {}

    def sample(self, peers: Iterable[Sampled], now: float) -> None:
        seen: dict[Stream, _Sample] = {}
        for peer in peers:
            for stream in list(peer.streams.values()):
                high = stream.seq_cycles + stream.hi_seq
                prev = self._samples.get(stream)
                cur = _Sample(now, stream.packets, stream.octets, high)
                if prev is not None:
                    dt = now - prev.t
                    got = cur.packets - prev.packets
                    cur.last_rx = now if got > 0 else prev.last_rx
                    cur.kbps = (cur.octets - prev.octets) * 8 / dt / 1000 if dt > 0 else prev.kbps
                    expected = high - prev.high if prev.packets else got
                    cur.loss_pct = max(0.0, (expected - got) * 100.0 / expected) if expected > 0 else 0.0
                seen[stream] = cur
        self._samples = seen  # streams that are gone are forgotten here

    def endpoint(self, peer: Sampled, now: float) -> dict[str, Any]:
        sending = dict.fromkeys(KINDS, False)
        kbps = dict.fromkeys(KINDS, 0.0)
        loss_in = 0.0
        for stream in list(peer.streams.values()):
            s = self._samples.get(stream)
            if s is None or stream.closed:
                continue
            k = kind_of(stream)
            if now - s.last_rx <= SENDING_WINDOW:
                sending[k] = True
                kbps[k] += s.kbps
                loss_in = max(loss_in, s.loss_pct)
        lost = [o.fraction_lost for o in list(peer.outputs.values()) if o.live]
        loss_out = max(lost, default=0) * 100.0 / 256
        out = {
            "connected": peer.connected,
            "publishes": bool(peer.spec.publish),
            "sending": sending,
            "kbps": {k: round(v) for k, v in kbps.items()},
            "bitrate_kbps": round(sum(kbps.values())),
            "loss_in_pct": round(loss_in, 1),
            "loss_out_pct": round(loss_out, 1),
        }
        out["quality"], out["why"] = grade(out)
        return out

    def report(self, meeting: SampledMeeting | None, now: float) -> dict[str, dict[str, Any]]:
        if meeting is None:
            return {}
        return {ep: self.endpoint(peer, now) for ep, peer in list(meeting.peers.items())}


def grade(s: dict[str, Any]) -> tuple[str, list[str]]:
    """good | fair | poor, and the reasons ("no_media", "loss", "no_video", "thin_video")."""
    why: list[str] = []
    loss = max(s["loss_in_pct"], s["loss_out_pct"])
    sending = s["sending"]
    if not s["connected"]:
        return "poor", ["not_connected"]
    if s["publishes"] and not any(sending.values()):
        return "poor", ["no_media"]
    if loss >= POOR_LOSS_PCT:
        return "poor", ["loss"]
    if loss >= FAIR_LOSS_PCT:
        why.append("loss")
    if s["publishes"] and sending["audio"] and not sending["video"]:
        why.append("no_video")
    elif sending["video"] and s["kbps"]["video"] < THIN_VIDEO_KBPS:
        why.append("thin_video")
    return ("fair" if why else "good"), why
