"""REST: meeting recordings (operator) and the public live HLS stream of a meeting.

The routes use ``ctx.recordings`` (``mcu.api.Recordings``: the media node's RecordingService); a node without it
answers 503, and so does starting a recording or a stream while the media pipeline is not
connected to the service (``RecordingService.connect_media``). Starting and stopping a recording
is the use case ``signaling.recording.set_recording``, shared with the chair's WebSocket action.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import quote

import msgspec
from aiohttp import web

from mcu.api import Recordings
from signaling.api.http import ctx_of, json_response, read_body, require_operator
from signaling.cluster import forward
from signaling.errors import bad_request, conflict, not_found, unavailable
from signaling.recording import set_recording

routes = web.RouteTableDef()
SEGMENT_NAME = re.compile(r"^(index\.m3u8|seg\d{6}\.ts)$")
CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
}


class RecordingAction(msgspec.Struct, forbid_unknown_fields=True):
    """Start or stop recording a meeting."""

    action: Literal["start", "stop"]


class StreamingAction(msgspec.Struct, forbid_unknown_fields=True):
    """Start or stop the public live stream (HLS at /live/{meeting_id}/index.m3u8); on start,
    ``rtmp_url`` (rtmp:// or rtmps://, with the platform's stream key) also pushes it there."""

    action: Literal["start", "stop"]
    rtmp_url: str | None = None


def _service(request: web.Request, rec_id: str | None = None) -> Recordings:
    ctx = ctx_of(request)
    if ctx.recordings is None:
        if rec_id is not None and forward.in_cluster(request) is not None:
            raise not_found(f"no recording with id {rec_id!r} on any media node")  # none of them has it
        raise unavailable("recording is not enabled on this node")
    return ctx.recordings


def _holds(request: web.Request) -> bool:
    """This node holds the recording in the path."""
    service = ctx_of(request).recordings
    try:
        return service is not None and bool(service.store.get(request.match_info["recording_id"]))
    except KeyError:
        return False


@routes.get("/api/v1/recordings")
async def list_recordings(request: web.Request) -> web.Response:
    require_operator(request)
    ctx = ctx_of(request)
    others = await forward.gather_json(request)  # a cluster: every media node lists its own
    if ctx.recordings is None and not others:
        _service(request)
    recs, retention = [], None
    if ctx.recordings is not None:
        retention = ctx.recordings.store.retention_days
        recs = [
            dict(r, node=ctx.settings.node_id)
            for r in ctx.recordings.store.list(request.query.get("meeting_id") or None)
        ]
    for status, body in others:
        if status == 200:
            recs += body["recordings"]
            retention = retention if retention is not None else body["retention_days"]
    return json_response({"recordings": recs, "retention_days": retention})


@routes.get("/api/v1/recordings/{recording_id}")
async def download_recording(request: web.Request) -> web.StreamResponse:
    """The final file; HTTP Range requests are answered with 206 (aiohttp FileResponse)."""
    require_operator(request)
    if not _holds(request) and (elsewhere := await forward.to_owner(request)) is not None:
        return elsewhere
    rec_id = request.match_info["recording_id"]
    service = _service(request, rec_id)
    try:
        info = service.store.get(rec_id)
        path = service.store.file_of(rec_id)
    except KeyError:
        raise not_found(f"no recording with id {rec_id!r}") from None
    if path is None:
        if info["state"] == "recording":
            raise conflict(f"recording {rec_id} is still running; stop it first")
        raise not_found(f"recording {rec_id} has no media file (state {info['state']})")
    name = f"{rec_id}{path.suffix}"
    title = f"{info.get('title') or rec_id}{path.suffix}"
    headers = {
        "Content-Disposition": f"attachment; filename=\"{name}\"; filename*=UTF-8''{quote(title)}",
        "Content-Type": CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
    }
    return web.FileResponse(path, headers=headers)


@routes.delete("/api/v1/recordings/{recording_id}")
async def delete_recording(request: web.Request) -> web.Response:
    require_operator(request)
    if not _holds(request) and (elsewhere := await forward.to_owner(request)) is not None:
        return elsewhere
    rec_id = request.match_info["recording_id"]
    service = _service(request, rec_id)
    try:
        info = service.store.get(rec_id)
        if info["state"] == "recording" and rec_id in service.active_ids():
            raise conflict(f"recording {rec_id} is running; stop it before deleting")
        service.store.delete(rec_id)
    except KeyError:
        raise not_found(f"no recording with id {rec_id!r}") from None
    return json_response({"deleted": rec_id})


@routes.get("/api/v1/meetings/{meeting_id}/recording")
async def recording_state(request: web.Request) -> web.Response:
    require_operator(request)
    mid = request.match_info["meeting_id"]
    if (elsewhere := await forward.to_meeting_node(request, mid)) is not None:
        return elsewhere
    service = _service(request)
    await ctx_of(request).meetings.get(mid)
    current = service.recording(mid)
    return json_response(
        {
            "meeting_id": mid,
            "recording": current is not None,
            "current": current,
            "streaming": service.hls_dir(mid) is not None,
        }
    )


@routes.post("/api/v1/meetings/{meeting_id}/recording")
async def recording_action(request: web.Request) -> web.Response:
    require_operator(request)
    if (elsewhere := await forward.to_meeting_node(request, request.match_info["meeting_id"])) is not None:
        return elsewhere  # the body is checked there
    body = await read_body(request, RecordingAction)
    result = await set_recording(ctx_of(request), request.match_info["meeting_id"], body.action == "start")
    return json_response(result, 201 if body.action == "start" else 200)


@routes.post("/api/v1/meetings/{meeting_id}/streaming")
async def streaming_action(request: web.Request) -> web.Response:
    """Public live HLS on or off; when on it is served at /live/{meeting_id}/index.m3u8."""
    require_operator(request)
    mid = request.match_info["meeting_id"]
    if (elsewhere := await forward.to_meeting_node(request, mid)) is not None:
        return elsewhere  # the body is checked there
    body = await read_body(request, StreamingAction)
    service = _service(request)
    await ctx_of(request).meetings.get(mid)
    if body.rtmp_url is not None and not re.match(r"^rtmps?://[^\s/]+/\S+$", body.rtmp_url):
        raise bad_request("rtmp_url must look like rtmp://host/app/stream-key", "rtmp_url")
    if body.action == "start":  # refusals: MediaUnavailable (503), MediaConflict (409)
        out = await service.start_streaming(mid, body.rtmp_url)
        return json_response(dict(out, hls=f"/live/{quote(mid)}/index.m3u8"), 201)
    return json_response(await service.stop_streaming(mid))


@routes.get("/live/{meeting_id}/{name}")
async def live_file(request: web.Request) -> web.StreamResponse:
    """Public (no login): the playlist and segments of a meeting whose streaming is on."""
    mid, name = request.match_info["meeting_id"], request.match_info["name"]
    if (elsewhere := await forward.to_meeting_node(request, mid)) is not None:
        return elsewhere
    service = ctx_of(request).recordings
    folder = service.hls_dir(mid) if service is not None else None
    if folder is None:
        raise not_found(f"meeting {mid} is not streaming")
    path = folder / name
    if not SEGMENT_NAME.match(name) or not path.is_file():
        raise not_found(f"no live file {name!r} (yet)" if SEGMENT_NAME.match(name) else f"no live file {name!r}")
    playlist = name.endswith(".m3u8")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": CONTENT_TYPES[path.suffix],
            "Access-Control-Allow-Origin": "*",
            "Cache-Control": "no-cache" if playlist else "public, max-age=120",
        },
    )


def openapi_paths(op, ok) -> dict:
    """The OpenAPI paths of these routes, built with ``signaling.api.openapi``'s ``_op`` and ``_ok``:
    ``**api_recordings.openapi_paths(_op, _ok)`` in ``_paths()``; ``RecordingAction`` and ``StreamingAction`` join BODIES."""
    err = {s: {"$ref": "#/components/responses/BadRequest"} for s in ("409", "503")}
    binary = {"schema": {"type": "string", "format": "binary"}}
    media = {
        s: {"description": d, "content": {t: binary for t in ("video/webm", "video/x-matroska")}}
        for s, d in (
            ("200", "the recording (Content-Disposition: attachment)"),
            ("206", "the requested byte range (Range request)"),
        )
    }
    live = {
        "summary": "Public live HLS of a meeting whose streaming is on: index.m3u8 and seg*.ts",
        "tags": ["recordings"],
        "security": [],
        "parameters": [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in ("meeting_id", "name")
        ],
        "responses": {
            "200": {
                "description": "playlist or MPEG-TS segment",
                "content": {t: {"schema": {"type": "string"}} for t in ("application/vnd.apple.mpegurl", "video/mp2t")},
            },
            "404": {"$ref": "#/components/responses/NotFound"},
        },
    }
    m, r, tag = ["meeting_id"], ["recording_id"], "recordings"
    return {
        "/api/v1/recordings": {
            "get": op("List recordings (operator)", tag, {**ok("recordings"), **err}, query=["meeting_id"])
        },
        "/api/v1/recordings/{recording_id}": {
            "get": op("Download a recording, HTTP Range supported (operator)", tag, {**media, **err}, params=r),
            "delete": op("Delete a recording (operator)", tag, {**ok("deleted"), **err}, params=r),
        },
        "/api/v1/meetings/{meeting_id}/recording": {
            "get": op("Recording and streaming state of a meeting (operator)", tag, {**ok("state"), **err}, params=m),
            "post": op(
                "Start or stop recording a meeting (operator); 503 when no media is connected",
                tag,
                {**ok("started", "201"), **ok("stopped"), **err},
                RecordingAction,
                params=m,
            ),
        },
        "/api/v1/meetings/{meeting_id}/streaming": {
            "post": op(
                "Start or stop the public live HLS stream (operator)",
                tag,
                {**ok("started", "201"), **ok("stopped"), **err},
                StreamingAction,
                params=m,
            )
        },
        "/live/{meeting_id}/{name}": {"get": live},
    }
