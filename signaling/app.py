"""Build the aiohttp application for one signaling node and run it with a graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from endpoints.directory import load_directory
from mcu.peer.bounded_stop import finish_all
from signaling import metrics, web as web_pages
from signaling.api import auth as api_auth, directory as api_directory, meetings as api_meetings
from signaling.api import operators as api_operators, recordings as api_recordings, sip_calls as api_sip_calls, whip
from signaling.auth.authenticator import Authenticator
from signaling.api import cluster as cluster_api
from signaling.cluster import media_api
from signaling.cluster.cluster_placement import ClusterPlacement
from signaling.cluster.local_placement import LocalPlacement
from signaling.cluster.placement import Placement
from signaling.guard.connection_limits import LIMITER, AddressLimiter, proxy_client_limit
from signaling.context import Context
from signaling.api.http import CTX, ctx_of, error_middleware, json_response
from signaling.meetings.scheduler import Scheduler
from signaling.meetings.service import MeetingService
from signaling.api.openapi import openapi_document
from signaling.rooms import RoomHub
from signaling.ws.session import Session
from signaling.ws.registry import MEETING_EVENTS, SessionRegistry
from signaling.settings import Settings
from signaling.store import open_store
from signaling.auth.tokens import TokenSigner

log = logging.getLogger("giaoban.app")
# s between reads of the revocation marker: half the 1 s in which a revoked identity's sessions
# must end, the other half for ending them (one read of one small document per tick)
REVOCATION_POLL_S = 0.5
routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    try:
        await ctx.store.get("secrets", "health-probe")
        store_ok = True
    except Exception:
        store_ok = False
    body = {
        "status": "ok" if store_ok else "degraded",
        "node": ctx.settings.node_id,
        "store": store_ok,
        "sessions": len(ctx.sessions),
        "uptime_s": round(time.time() - ctx.started, 1),
        "endpoints": len(ctx.directory),
    }
    return json_response(body, 200 if store_ok else 503)


@routes.get("/metrics")
async def metrics_view(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    metrics.ONLINE.set(len(await ctx.store.list_ephemeral("presence")))
    if ctx.media is not None:
        load = ctx.media.load()
        metrics.MEDIA_PEERS.set(load["peers"])
        metrics.MEDIA_MEETINGS.set(load["meetings"])
    return web.Response(body=generate_latest(metrics.REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(openapi_document(ctx_of(request).settings.public_url))


@routes.get("/ws")
async def websocket(request: web.Request) -> web.WebSocketResponse:
    ctx = ctx_of(request)
    # aiohttp drops frames far above the limit itself (close 1009); the session answers ones
    # just above it with an error message so a client learns what was wrong.
    ws = web.WebSocketResponse(heartbeat=20.0, max_msg_size=4 * ctx.settings.limits.ws_max_message_bytes)
    await ws.prepare(request)
    await Session(ctx, ws, request.remote).run()
    return ws


async def build_context(settings: Settings, serving: bool = True) -> Context:
    """The one place that wires a node, and picks its placement: a cluster's (shared store) or one
    machine's (in-process media node). ``serving=False``: the operator's commands (credentials,
    operator), which talk to no other node: no placement, so no node key is needed."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    directory = load_directory(settings.directory)
    settings.check_against(directory)
    store = open_store(settings.store, pool_size=settings.store_pool_size, pool_wait_s=settings.store_pool_wait_s)
    await store.start()
    signer = await TokenSigner.from_store(store)
    auth = Authenticator(store, directory, signer, settings.tokens, settings.limits)
    meetings = MeetingService(store, directory, early_join_minutes=settings.early_join_minutes)
    scheduler = Scheduler(store, meetings, node_id=settings.node_id, publish_channel=MEETING_EVENTS)
    media = recordings = None
    if settings.media == "local":
        from mcu.node import LocalMediaNode  # imported lazily: signaling-only nodes skip aiortc
        from mcu.record import RecordingService

        data = Path(settings.data_dir)
        recordings = RecordingService(
            data / "recordings", retention_days=settings.recording_retention_days, hls_root=data / "live"
        )
        media = LocalMediaNode(
            settings.node_id,
            ice_host=settings.ice_host or None,
            public_ip=settings.public_ip,
            encode_codecs=tuple(settings.encode_codecs),
            recordings=recordings,
            max_transcodes=settings.limits.transcodes_per_node,
        )
        recordings.connect_media(media.recording_pipeline, media.recording_release)
    placement: Placement | None = None
    registry = None  # the cluster's live nodes: a dead node's room entries are left out at once
    if serving and store.shared:  # a signaling-only node of a cluster uses the others' media
        cluster = ClusterPlacement(settings, store, directory, media, node_info=lambda: {"sessions": len(sessions)})
        placement, registry = cluster, cluster.registry
        if media is not None:
            media.origin_factory = cluster.cascade_origin  # as a cascade edge, it reaches origins so
    elif serving and media is not None:
        placement = LocalPlacement(media, list(settings.encode_codecs))
    rooms = RoomHub(store, settings.node_id, registry)
    sessions = SessionRegistry(
        store,
        settings.node_id,
        auth,
        release_floor=lambda occurrence_id, meeting_id, endpoint_id: rooms.release_floor(
            occurrence_id, meeting_id, endpoint_id, "revocation", placement
        ),
    )
    return Context(
        settings,
        store,
        directory,
        auth,
        meetings,
        scheduler,
        rooms,
        sessions,
        media,
        recordings=recordings,
        placement=placement,
    )


async def _housekeeping(ctx: Context) -> None:
    """Every REVOCATION_POLL_S: event-loop lag, and revocations written by other processes (the
    CLI on a SQLite node), so that their sessions end within 1 s (#11). An unchanged
    revocation marker costs one read of one document (see Authenticator.load_revocations)."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(REVOCATION_POLL_S)
        metrics.LOOP_LAG.set(max(0.0, time.perf_counter() - t0 - REVOCATION_POLL_S))
        try:
            if await ctx.auth.load_revocations(only_if_changed=True):
                await ctx.sessions.end_revoked()  # sessions revoked by another process (the CLI)
        except Exception:
            log.exception("reloading revocations failed")


def make_app(ctx: Context) -> web.Application:
    limits = ctx.settings.limits
    # keepalive_timeout also bounds how long a connection may take to send a request's headers:
    # aiohttp closes the connection if they are incomplete when it fires (connection_limits.py)
    app = web.Application(
        middlewares=[error_middleware, proxy_client_limit],
        client_max_size=limits.http_max_body_bytes,
        handler_args={"keepalive_timeout": limits.http_header_timeout_s},
    )
    app[CTX] = ctx
    app[LIMITER] = AddressLimiter(limits.connections_per_address, ctx.settings.trusted_proxies)
    app[whip.RESOURCES] = {}
    app[media_api.SOCKETS] = set()
    for table in (
        routes,
        api_auth.routes,
        api_directory.routes,
        api_meetings.routes,
        api_operators.routes,
        api_recordings.routes,
        whip.routes,
        api_sip_calls.routes,
        web_pages.routes,
        cluster_api.routes,
        media_api.routes,
    ):
        app.add_routes(table)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await ctx.auth.load_revocations()
        password = await ctx.auth.ensure_admin(ctx.settings.admin_password, Path(ctx.settings.data_dir))
        if password:
            log.warning("created operator 'admin'; its password is in %s/admin-password.txt", ctx.settings.data_dir)
        if ctx.media is not None:
            await ctx.media.start()
        if ctx.placement is not None:
            await ctx.placement.start()
        if ctx.recordings is not None:
            await ctx.recordings.start()
        await ctx.sessions.start()
        await ctx.scheduler.start()
        gateway = None
        if ctx.settings.sip.enabled:  # the SIP gateway for room systems (#14)
            from signaling.sip.gateway import SipGateway

            ctx.sip = gateway = SipGateway(ctx)
            await gateway.start()
        lag = asyncio.create_task(_housekeeping(ctx), name="housekeeping")
        log.info(
            "signaling node ready",
            extra={
                "node": ctx.settings.node_id,
                "endpoints": len(ctx.directory),
                "store": ctx.settings.store.split("://")[0].split(":")[0],
            },
        )
        yield
        lag.cancel()
        if gateway is not None:
            await gateway.stop()  # its calls leave their rooms before the rooms and media stop
            ctx.sip = None
        await ctx.scheduler.stop()
        await ctx.sessions.stop()
        await ctx.rooms.stop()
        if ctx.recordings is not None:
            await ctx.recordings.stop()
        if ctx.placement is not None:
            await ctx.placement.stop()
        if ctx.media is not None:
            await ctx.media.stop()
            await finish_all()  # peer closes whose waiters were cut short run on: end them before the loop does
        await ctx.store.stop()
        log.info("signaling node stopped", extra={"node": ctx.settings.node_id})

    async def close_sessions(app: web.Application) -> None:
        await media_api.leave_cluster(app)
        await ctx.sessions.stop()  # before the server cancels handlers: clients get close 1001
        await whip.stop_all(app)

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(close_sessions)
    return app
