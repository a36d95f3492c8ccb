"""The internal API of a media node, used by the other nodes of a cluster (never by clients).

* ``GET /internal/media/peer`` (WebSocket): one peer; the first request is ``open`` with the
  PeerSpec, then ``offer``/``answer``/``ice``/``mute``/``keyframe``; events are pushed as ``{"event": ...}``;
  closing the socket closes the peer.
* ``POST /internal/media/meetings/{id}/floor|layout|links|record``: floor holder, layout, link
  quality, and the chair's record action (the use case ``signaling.recording.set_recording``).

Callers present a node token (``Bearer``) signed with the cluster's node key: a user's token is
refused here, and a node token is refused by the user API.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from mcu.api import EventSink, JsonObject, MediaNode, MediaPeer, MediaRetry, OfferRefused, PeerSpec
from signaling.api.http import CTX, ctx_of, json_response, read_raw
from signaling.cluster.cluster_placement import ClusterPlacement
from signaling.cluster.forward import in_cluster
from signaling.errors import ApiError, bad_request, classify, not_found, unavailable
from signaling.guard.connection_limits import exempt_cluster_node
from signaling.recording import set_recording

log = logging.getLogger("giaoban.cluster")
routes = web.RouteTableDef()
SOCKETS = web.AppKey("media_peer_sockets", set[web.WebSocketResponse])
MAX_MESSAGE = 1 << 20  # an SDP offer with many m-lines stays far below


def _local_media(request: web.Request) -> MediaNode:
    ctx = ctx_of(request)
    placement = in_cluster(request)
    if placement is None:
        raise unavailable("this node is not part of a cluster (embedded store)")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise ApiError("unauthorized", "node API: Authorization 'Bearer <node token>' required", 401)
    placement.verify_node_token(token.strip())
    exempt_cluster_node(request)  # a signaling node may hold more peer links than one address may
    if ctx.media is None:
        raise unavailable(f"node {ctx.settings.node_id} runs without media (media: none)")
    return ctx.media


def _spec(raw: Any) -> PeerSpec:
    if not isinstance(raw, dict):
        raise bad_request("open: spec must be an object")
    try:
        spec = PeerSpec(**raw)
    except TypeError as exc:
        raise bad_request(f"open: bad spec: {exc}") from None
    if not all(isinstance(getattr(spec, f), str) for f in ("meeting_id", "endpoint_id", "role", "link")):
        raise bad_request("open: meeting_id, endpoint_id, role and link must be strings")
    return spec


@routes.get("/internal/media/peer")
async def peer_socket(request: web.Request) -> web.WebSocketResponse:
    media = _local_media(request)
    ws = web.WebSocketResponse(heartbeat=5.0, max_msg_size=MAX_MESSAGE)
    await ws.prepare(request)
    request.app[SOCKETS].add(ws)
    send_lock = asyncio.Lock()

    async def send(data: dict[str, Any]) -> None:
        async with send_lock:
            if not ws.closed:
                await ws.send_str(json.dumps(data))

    async def events(event: JsonObject) -> None:
        await send({"event": event})

    peer: MediaPeer | None = None
    try:
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            req: dict[str, Any] = {}
            try:
                req = _request(msg.data)
                reply = await _serve(media, peer, req, events)
                if req.get("op") == "open":
                    peer = reply.pop("peer")
            except Exception as exc:
                api = classify(exc)
                if api is None:
                    log.exception("media request failed", extra={"op": req.get("op")})
                reply = {
                    "error": api.message if api else f"internal error: {exc}",
                    "retry": isinstance(exc, MediaRetry),
                    "refused": isinstance(exc, OfferRefused),  # a SIP leg's 488
                }
            await send({"re": req.get("id"), **reply})
    finally:
        request.app[SOCKETS].discard(ws)
        if peer is not None:
            await peer.close()
    return ws


async def leave_cluster(app: web.Application) -> None:
    """Graceful stop: leave the node lists first (new peers go elsewhere), then close every peer
    link with 1001 so their sessions move at once instead of after the shutdown timeout."""
    placement = app[CTX].placement
    if isinstance(placement, ClusterPlacement):
        await placement.registry.stop()
    sockets = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=1001, message=b"media node stopping")


def _request(text: str) -> dict[str, Any]:
    try:
        req = json.loads(text)
    except (ValueError, RecursionError):
        raise bad_request("each message must be JSON") from None
    if not isinstance(req, dict):
        raise bad_request("each message must be a JSON object")
    return req


async def _serve(media: MediaNode, peer: MediaPeer | None, req: dict[str, Any], events: EventSink) -> dict[str, Any]:
    op = req.get("op")
    if op == "open":
        if peer is not None:
            raise bad_request("open: this link already has a peer")
        return {"peer": await media.open_peer(_spec(req.get("spec")), events)}
    if peer is None:
        raise bad_request(f"{op}: send open first")
    if op in ("offer", "answer"):
        sdp = req.get("sdp")
        if not isinstance(sdp, str) or not sdp.startswith("v=0"):
            raise bad_request(f"{op}: sdp must be an SDP text starting with 'v=0'")
        if op == "offer":
            return {"sdp": await peer.handle_offer(sdp)}
        await peer.handle_answer(sdp)
    elif op == "ice":
        await peer.add_ice_candidate(req.get("candidate"))
    elif op == "mute":
        await peer.set_muted(str(req.get("kind")), bool(req.get("muted")))
    elif op == "keyframe":  # SIP INFO picture_fast_update from a room system
        await peer.request_keyframe()
    else:
        raise bad_request(f"unknown op {op!r}; expected open, offer, answer, ice, mute or keyframe")
    return {}


@routes.post("/internal/media/meetings/{meeting_id}/{what}")
async def meeting_call(request: web.Request) -> web.Response:
    media = _local_media(request)
    meeting_id, what = request.match_info["meeting_id"], request.match_info["what"]
    raw = await read_raw(request)  # whole, bounded in size and time
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("body must be a JSON object") from None
    if not isinstance(body, dict):
        raise bad_request("body must be a JSON object")
    if what == "floor":
        await media.set_floor(meeting_id, body.get("endpoint_id"))
    elif what == "layout":
        await media.set_layout(meeting_id, body.get("layout"))
    elif what == "links":
        return json_response({"links": await media.link_stats(meeting_id)})
    elif what == "record":  # the chair's record action, sent by the node that holds the chair's session
        return json_response(await set_recording(ctx_of(request), meeting_id, bool(body.get("on"))))
    else:
        raise not_found(f"unknown meeting call {what!r}; expected floor, layout, links or record")
    return json_response({"ok": True})
