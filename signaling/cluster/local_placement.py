"""The placement of one machine (embedded store): every call goes to the in-process media node.

Implements ``signaling.cluster.placement.Placement``; the node itself is started and stopped by
the application (signaling.app), so this placement's own start and stop have nothing to do.
"""

from __future__ import annotations

from mcu.api import EventSink, JsonObject, LinkStats, MediaNode, MediaPeer, PeerSpec, RecordingLabels


class LocalPlacement:
    def __init__(self, local: MediaNode, encode_codecs: list[str] | None = None) -> None:
        self.local = local
        self.node_id = local.node_id
        self.encode_codecs = encode_codecs  # the node's setting, for operators (None: not told)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def open_peer(self, spec: PeerSpec, events: EventSink) -> MediaPeer:
        return await self.local.open_peer(spec, events)

    async def set_floor(self, meeting_id: str, endpoint_id: str | None) -> None:
        await self.local.set_floor(meeting_id, endpoint_id)

    async def set_layout(self, meeting_id: str, layout: str | None) -> None:
        await self.local.set_layout(meeting_id, layout)

    async def link_stats(self, meeting_id: str) -> LinkStats:
        return await self.local.link_stats(meeting_id)

    async def record(self, meeting_id: str, on: bool, labels: RecordingLabels) -> JsonObject:
        return await self.local.record(meeting_id, on, labels)

    async def describe(self) -> JsonObject:
        view: JsonObject = {"clustered": False, "node": self.node_id}
        if self.encode_codecs is not None:
            view["encode_codecs"] = list(self.encode_codecs)
        return view

    def node_lost(self, node_id: str) -> None:
        pass  # the in-process node is never lost
