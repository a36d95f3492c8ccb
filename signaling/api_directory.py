"""REST: the 4-tier endpoint directory (read-only over HTTP; the YAML file is the source)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from signaling.meetings.model import Selector
from signaling.http import ctx_of, identity, json_response, read_body

routes = web.RouteTableDef()


class SelectRequest(msgspec.Struct, forbid_unknown_fields=True):
    selectors: Annotated[list[Selector], msgspec.Meta(min_length=1, max_length=500)]


@routes.get("/api/v1/directory")
async def directory(request: web.Request) -> web.Response:
    identity(request)
    d = ctx_of(request).directory
    return json_response({"name": d.name, "count": len(d), "endpoints": [ep.to_dict() for ep in d]})


@routes.get("/api/v1/directory/endpoints/{endpoint_id}")
async def endpoint(request: web.Request) -> web.Response:
    identity(request)
    d = ctx_of(request).directory
    ep = d.get(request.match_info["endpoint_id"])
    return json_response(dict(ep.to_dict(), children=[c.id for c in d.children(ep.id)]))


@routes.post("/api/v1/directory/select")
async def select(request: web.Request) -> web.Response:
    identity(request)
    body = await read_body(request, SelectRequest)
    found = ctx_of(request).directory.select(body.selectors)
    return json_response({"count": len(found), "endpoint_ids": [ep.id for ep in found]})
