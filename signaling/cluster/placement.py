"""Placement: which media node serves each peer and meeting, behind one interface.

Signaling talks to media only through a ``Placement``: it is itself an ``mcu.api.MediaNode``
(open a peer, floor, layout, link statistics, recording), plus what the operator's view and a
session whose media node vanished need. ``build_context`` (signaling.app) picks one of two:

* ``signaling.cluster.local_placement.LocalPlacement``: one machine (embedded store), everything
  goes to the in-process media node;
* ``signaling.cluster.cluster_placement.ClusterPlacement``: a cluster (Redis store), meetings
  pinned to live media nodes, cascade edges, other nodes reached over their internal API.

This module is the interface only and imports nothing but ``mcu.api``: ``signaling.context``,
below the cluster's implementations, types its ``placement`` with it.
"""

from __future__ import annotations

from typing import Protocol

from mcu.api import JsonObject, MediaNode


class Placement(MediaNode, Protocol):
    async def describe(self) -> JsonObject:
        """For operators (GET /api/v1/cluster): whether clustered, this node, and in a cluster the
        live nodes, their load and the meeting pins."""

    def node_lost(self, node_id: str) -> None:
        """A peer's link to ``node_id`` broke: place no new peer there for a while."""
