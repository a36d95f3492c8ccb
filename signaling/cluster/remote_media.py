"""A media node in another process, reached over its internal API (``signaling.cluster.media_api``):
``RemoteMediaNode`` and ``RemotePeer`` implement ``mcu.api.MediaNode`` and ``mcu.api.MediaPeer``.

Each peer is one WebSocket from the node that holds the client's session to the media node:
requests ``{"op", "id", ...}`` get replies ``{"re": id, ...}``; the media node pushes the peer's
events as ``{"event": {...}}``. Closing the socket closes the peer, so a signaling node that dies
takes its peers with it. A socket that breaks from the other side means the media node is gone:
pending calls fail and the session gets one ``media_reset`` event (``lost_node`` set) to move on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from dataclasses import asdict
from typing import Any, Callable

import aiohttp

from mcu.api import EventSink, JsonObject, LinkStats, MediaError, MediaRetry, OfferRefused, PeerSpec, RecordingLabels
from signaling.errors import ApiError

log = logging.getLogger("giaoban.cluster")
CALL_TIMEOUT_S = 15.0  # an offer on a loaded node can take seconds (ICE gathering, DTLS setup)
CONNECT_TIMEOUT_S = 3.0


class MediaNodeLost(MediaError):
    """The media node did not answer or its link broke; the caller should pick another node."""


class RemoteMediaNode:
    """Calls go over ``http``, owned by the placement that made this node: start and stop have
    nothing of their own to do."""

    def __init__(self, node_id: str, url: str, http: aiohttp.ClientSession, token: Callable[[], str]) -> None:
        self.node_id, self.url, self.http, self._token = node_id, url.rstrip("/"), http, token

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}"}

    async def open_peer(self, spec: PeerSpec, events: EventSink) -> "RemotePeer":
        try:
            ws = await self.http.ws_connect(
                f"{self.url}/internal/media/peer",
                headers=self._headers(),
                timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                heartbeat=5.0,
                max_msg_size=4 << 20,
            )
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise MediaNodeLost(f"media node {self.node_id} unreachable: {exc}") from None
        peer = RemotePeer(self.node_id, ws, events)
        try:
            await peer.call("open", spec=asdict(spec))
        except BaseException:
            await peer.close()
            raise
        return peer

    async def _post(self, path: str, body: JsonObject) -> Any:
        try:
            async with self.http.post(
                f"{self.url}/internal/media/{path}",
                json=body,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT_S),
            ) as resp:
                data = await resp.json()
                if resp.status >= 400:  # the media node's own answer (409 already recording, 503 ...) stands
                    err = data.get("error", {})
                    raise ApiError(
                        err.get("code", "media"),
                        f"media node {self.node_id}: {err.get('message', resp.status)}",
                        resp.status,
                    )
                return data
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            raise MediaNodeLost(f"media node {self.node_id} unreachable: {exc}") from None

    async def set_floor(self, meeting_id: str, endpoint_id: str | None) -> None:
        await self._post(f"meetings/{meeting_id}/floor", {"endpoint_id": endpoint_id})

    async def set_layout(self, meeting_id: str, layout: str | None) -> None:
        await self._post(f"meetings/{meeting_id}/layout", {"layout": layout})

    async def record(self, meeting_id: str, on: bool, labels: RecordingLabels) -> JsonObject:
        """The meeting's node runs the record use case itself, labels included (body: ``on``)."""
        entry: JsonObject = await self._post(f"meetings/{meeting_id}/record", {"on": on})
        return entry

    async def link_stats(self, meeting_id: str) -> LinkStats:
        stats: LinkStats = (await self._post(f"meetings/{meeting_id}/links", {}))["links"]
        return stats


class RemotePeer:
    """MediaPeer over one WebSocket; calls are answered in order by the media node's peer task."""

    def __init__(self, node_id: str, ws: aiohttp.ClientWebSocketResponse, events: EventSink) -> None:
        self.node_id, self.ws, self.events = node_id, ws, events
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[JsonObject]] = {}
        self._closing = False
        self._reader = asyncio.create_task(self._read(), name=f"media-link:{node_id}")

    async def call(self, op: str, **fields: Any) -> JsonObject:
        if self.ws.closed:
            raise MediaNodeLost(f"link to media node {self.node_id} is closed")
        call_id = next(self._ids)
        fut: asyncio.Future[JsonObject] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = fut
        try:
            await self.ws.send_str(json.dumps({"op": op, "id": call_id, **fields}))
            reply = await asyncio.wait_for(fut, CALL_TIMEOUT_S)
        except asyncio.TimeoutError:
            raise MediaNodeLost(f"media node {self.node_id} did not answer {op} in {CALL_TIMEOUT_S:g} s") from None
        except (ConnectionError, aiohttp.ClientError) as exc:
            raise MediaNodeLost(f"link to media node {self.node_id} broke: {exc}") from None
        finally:
            self._pending.pop(call_id, None)
        if "error" in reply:
            kind = MediaRetry if reply.get("retry") else OfferRefused if reply.get("refused") else MediaError
            raise kind(reply["error"])
        return reply

    async def _read(self) -> None:
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                if "event" in data:
                    await self.events(data["event"])
                else:
                    fut = self._pending.get(data.get("re"))
                    if fut is not None and not fut.done():
                        fut.set_result(data)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("media link reader failed", extra={"media_node": self.node_id})
        lost = MediaNodeLost(f"link to media node {self.node_id} closed")
        for fut in list(self._pending.values()):
            if not fut.done():
                fut.set_exception(lost)
        if self._closing:
            return
        if self.ws.close_code == 1000:  # the media node closed this peer
            await self.events({"type": "media_reset", "reason": f"media node {self.node_id} closed the peer"})
        else:  # the node is going away (1001), died, or cannot be reached
            await self.events(
                {"type": "media_reset", "reason": f"media node {self.node_id} lost", "lost_node": self.node_id}
            )

    async def handle_offer(self, sdp: str) -> str:
        return str((await self.call("offer", sdp=sdp))["sdp"])

    async def handle_answer(self, sdp: str) -> None:
        await self.call("answer", sdp=sdp)

    async def add_ice_candidate(self, candidate: JsonObject | None) -> None:
        await self.call("ice", candidate=candidate)

    async def set_muted(self, kind: str, muted: bool) -> None:
        await self.call("mute", kind=kind, muted=muted)

    async def request_keyframe(self) -> None:
        await self.call("keyframe")

    @property
    def closed(self) -> bool:
        """Closed here, or its link to the media node broke (the node closed the peer or is gone)."""
        return self._closing or self.ws.closed

    async def close(self) -> None:
        self._closing = True
        if not self.ws.closed:
            await self.ws.close()
        if self._reader is not asyncio.current_task():
            await asyncio.gather(self._reader, return_exceptions=True)
