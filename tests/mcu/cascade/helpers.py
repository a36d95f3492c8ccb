"""Edge-side test clients and what the cascade carries."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.support.media_clients import Client
from mcu.cascade.trunk import CascadeTrunk

ORIGIN = {"node_id": "origin", "url": "http://127.0.0.1:1/unused"}


def edge_client(edge: Any, meeting: str, endpoint: str, **kw: Any) -> Client:
    """A client of the edge node: its spec names the meeting's origin, as signaling does."""
    extra = {"cascade_origin": dict(ORIGIN), **kw.pop("extra", {})}
    client = Client(edge, meeting, endpoint, **kw)
    client.spec = dataclasses.replace(client.spec, extra=extra)
    return client


def cascade_peers(origin: Any, meeting: str) -> list[Any]:
    m = origin.meetings.get(meeting)
    return [p for p in m.peers.values() if p.spec.role == "cascade"] if m else []


def sent_down(origin: Any, meeting: str) -> int:
    """RTP packets the origin has sent on its cascade peers' outputs (sender-report count)."""
    total = 0
    for peer in cascade_peers(origin, meeting):
        for out in peer.outputs.values():
            state = out.report_state(0.0)
            total += state[1] if state else out.packets_before
    return total


def received_down(edge: Any, meeting: str) -> int:
    """RTP packets the edge has received over its cascade trunk."""
    m = edge.meetings.get(meeting)
    trunk = m.extension(CascadeTrunk) if m else None
    return sum(s.packets for s in trunk.lines.streams.values()) if trunk else 0
