"""REST: logins, credentials, join links, identity and presence."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

import msgspec
from aiohttp import web

from signaling.guard.client_address import client_address
from signaling.api.http import ctx_of, identity, json_response, read_body, require_operator

routes = web.RouteTableDef()
# no NUL: names become store keys, and a NUL there is a 400, not a store error
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120, pattern="^[^\x00]*$")]


class OperatorLogin(msgspec.Struct, forbid_unknown_fields=True):
    username: Name
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class EndpointLogin(msgspec.Struct, forbid_unknown_fields=True):
    endpoint_id: Name
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class LinkRequest(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    role: Literal["chair", "participant", "viewer"] = "participant"
    endpoint_id: Name | None = None
    ttl_minutes: Annotated[int, msgspec.Meta(ge=1, le=7 * 24 * 60)] = 240


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


@routes.post("/api/v1/auth/login")
async def login(request: web.Request) -> web.Response:
    body = await read_body(request, OperatorLogin)
    ctx = ctx_of(request)
    address = client_address(request, ctx.settings.trusted_proxies)
    token, claims = await ctx.auth.login_operator(body.username, body.password, address)
    return json_response({"token": token, "expires_at": _iso(claims.exp), "operator": body.username})


@routes.post("/api/v1/auth/endpoint")
async def endpoint_login(request: web.Request) -> web.Response:
    body = await read_body(request, EndpointLogin)
    ctx = ctx_of(request)
    address = client_address(request, ctx.settings.trusted_proxies)
    token, claims = await ctx.auth.login_endpoint(body.endpoint_id, body.secret, address)
    return json_response({"token": token, "expires_at": _iso(claims.exp), "endpoint_id": body.endpoint_id})


@routes.post("/api/v1/endpoints/{endpoint_id}/credentials")
async def issue_credentials(request: web.Request) -> web.Response:
    require_operator(request)
    endpoint_id = request.match_info["endpoint_id"]
    ctx = ctx_of(request)
    secret = await ctx.auth.issue_credentials(endpoint_id)
    # a rotated secret (a stolen or replaced terminal): its tokens and sessions end everywhere
    await ctx.sessions.publish_revocation(await ctx.auth.revoke("endpoint", endpoint_id))
    return json_response({"endpoint_id": endpoint_id, "secret": secret}, 201)


@routes.post("/api/v1/meetings/{meeting_id}/links")
async def join_link(request: web.Request) -> web.Response:
    me = require_operator(request)
    ctx = ctx_of(request)
    body = await read_body(request, LinkRequest)
    meeting = await ctx.meetings.get(request.match_info["meeting_id"])
    ttl = min(body.ttl_minutes * 60, ctx.settings.tokens.link_max_s)
    # the link names its maker: deleting that operator revokes it (signaling.auth.authenticator.Identity.revocation_keys)
    token, claims = ctx.auth.join_link(meeting.id, body.name, body.role, body.endpoint_id, ttl, made_by=me.id)
    url = f"{ctx.settings.public_url}/join?token={token}"
    return json_response({"token": token, "url": url, "expires_at": _iso(claims.exp), "role": body.role}, 201)


@routes.delete("/api/v1/meetings/{meeting_id}/links")
async def revoke_links(request: web.Request) -> web.Response:
    """Every join link of the meeting issued so far stops working, and its sessions (WebSocket,
    WHIP, WHEP) end on every node: a leaked link, a guest list redone. Links made after this work."""
    require_operator(request)
    ctx = ctx_of(request)
    meeting = await ctx.meetings.get(request.match_info["meeting_id"])  # unknown id: 404, nothing stored
    event = await ctx.auth.revoke("links", meeting.id)
    await ctx.sessions.publish_revocation(event)
    return json_response({"meeting_id": meeting.id, "links_revoked_before": _iso(event["at"])})


@routes.get("/api/v1/me")
async def me(request: web.Request) -> web.Response:
    return json_response(identity(request).to_dict())


@routes.get("/api/v1/presence")
async def presence(request: web.Request) -> web.Response:
    require_operator(request)
    rows = await ctx_of(request).store.list_ephemeral("presence")
    return json_response({"online": [dict(doc, endpoint_id=key) for key, doc in rows]})
