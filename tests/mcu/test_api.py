"""The media seam (mcu/api.py) is implemented exactly: by the in-process node and peer, by the
remote node and peer of a cluster, by both placements, and by the recording service.

Two checks, for two kinds of drift: ``test_*`` compares signatures at run time (every declared
method exists, is async, takes the same parameters: the sync ``link_stats`` that made the
placement call methods by name would fail here), and ``_conforms`` is checked by mypy (it is in
``[tool.mypy] files``): parameter and return types must fit the protocols.
"""

from __future__ import annotations

import inspect

import pytest

from mcu.api import HostedMediaNode, LinkStats, MediaNode, MediaPeer, RecordingFiles, Recordings
from mcu.meeting.contracts import Member
from mcu.node import LocalMediaNode
from mcu.peer.peer import LocalPeer
from mcu.rtp.leg import RtpLeg
from mcu.record import RecordingService, RecordingStore
from signaling.cluster.cluster_placement import ClusterPlacement
from signaling.cluster.local_placement import LocalPlacement
from signaling.cluster.placement import Placement
from signaling.cluster.remote_media import RemoteMediaNode, RemotePeer


def _conforms(
    local: LocalMediaNode,
    remote: RemoteMediaNode,
    one_machine: LocalPlacement,
    cluster: ClusterPlacement,
    local_peer: LocalPeer,
    remote_peer: RemotePeer,
    sip_leg: RtpLeg,
    recording_service: RecordingService,
    recording_store: RecordingStore,
) -> None:
    """Never called: mypy checks that each assignment type-checks."""
    nodes: list[MediaNode] = [local, remote]
    hosted: HostedMediaNode = local
    placements: list[Placement] = [one_machine, cluster]
    peers: list[MediaPeer] = [local_peer, remote_peer, sip_leg]
    members: list[Member] = [local_peer, sip_leg]
    recordings: Recordings = recording_service
    files: RecordingFiles = recording_store
    del nodes, hosted, placements, peers, members, recordings, files


def _declared(protocol: type) -> dict[str, inspect.Signature]:
    """The protocol's own methods, its bases' included (a Placement is a MediaNode)."""
    out: dict[str, inspect.Signature] = {}
    for cls in reversed(protocol.__mro__):
        if cls is object or not getattr(cls, "_is_protocol", False):
            continue
        out |= {
            name: inspect.signature(fn)
            for name, fn in vars(cls).items()
            if inspect.isfunction(fn) and not name.startswith("_")
        }
    return out


def _differences(implementation: type, protocol: type) -> list[str]:
    found = []
    for name, declared in _declared(protocol).items():
        method = getattr(implementation, name, None)
        if method is None:
            found.append(f"{name}: missing")
            continue
        if inspect.iscoroutinefunction(method) != inspect.iscoroutinefunction(getattr(protocol, name)):
            found.append(f"{name}: async in one, not in the other")
        if list(inspect.signature(method).parameters) != list(declared.parameters):
            found.append(f"{name}{inspect.signature(method)} differs from {name}{declared}")
    return found


@pytest.mark.parametrize(
    "implementation, protocol",
    [
        (LocalMediaNode, HostedMediaNode),
        (RemoteMediaNode, MediaNode),
        (LocalPlacement, Placement),
        (ClusterPlacement, Placement),
        (LocalPeer, MediaPeer),
        (RemotePeer, MediaPeer),
        (RtpLeg, MediaPeer),
        (RecordingService, Recordings),
        (RecordingStore, RecordingFiles),
    ],
    ids=lambda c: c.__name__,
)
def test_implements_the_seam_exactly(implementation: type, protocol: type) -> None:
    assert _differences(implementation, protocol) == []


def test_the_check_tells_drift_apart() -> None:
    class SyncStats:
        async def link_stats(self, meeting_id: str) -> LinkStats:
            return {}

    class Drifted(SyncStats):
        def link_stats(self, meeting_id: str) -> LinkStats:  # type: ignore[override]
            return {}

    class Renamed(SyncStats):
        async def link_stats(self, meeting: str) -> LinkStats:
            return {}

    stats_only = type("StatsOnly", (), {"link_stats": SyncStats.link_stats, "_is_protocol": True})
    assert _differences(SyncStats, stats_only) == []
    assert _differences(Drifted, stats_only) == ["link_stats: async in one, not in the other"]
    [renamed] = _differences(Renamed, stats_only)
    assert renamed.startswith("link_stats(self, meeting: ") and "differs from link_stats(self, meeting_id: " in renamed
    assert _differences(object, stats_only) == ["link_stats: missing"]
