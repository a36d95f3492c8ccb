"""REST: the 4-tier endpoint directory (read-only over HTTP; the YAML file is the source).

Who reads what: operators the whole directory; an endpoint (its own login, or a join link made
for it) its subtree, itself and everything below it; a guest link (no endpoint) nothing. The
directory names every room of the province, so a viewer link handed to a guest must not list it.
An endpoint's ``sip`` block (room system URI, allowed source networks, codecs; no password) is
shown to operators only: it describes the province's network, which a room terminal need not read.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from endpoints.directory import Directory, Endpoint
from signaling.auth.authenticator import Identity
from signaling.errors import forbidden, not_found
from signaling.meetings.model import Selector
from signaling.api.http import ctx_of, identity, json_response, read_body

routes = web.RouteTableDef()


class SelectRequest(msgspec.Struct, forbid_unknown_fields=True):
    selectors: Annotated[list[Selector], msgspec.Meta(min_length=1, max_length=500)]


def visible(who: Identity, d: Directory) -> list[Endpoint]:
    """The part of the directory ``who`` may read, in directory order; 403 for none."""
    if who.kind == "operator":
        return list(d)
    if who.endpoint is None:
        raise forbidden(f"{who.name} joins with a guest link, which does not open the directory")
    return d.subtree(who.endpoint.id)


@routes.get("/api/v1/directory")
async def directory(request: web.Request) -> web.Response:
    d = ctx_of(request).directory
    eps = visible(identity(request), d)
    with_sip = identity(request).kind == "operator"
    return json_response({"name": d.name, "count": len(eps), "endpoints": [ep.to_dict(with_sip) for ep in eps]})


@routes.get("/api/v1/directory/endpoints/{endpoint_id}")
async def endpoint(request: web.Request) -> web.Response:
    d = ctx_of(request).directory
    wanted = request.match_info["endpoint_id"]
    who = identity(request)
    # out of scope and unknown answer alike, so a caller cannot probe which ids exist
    ep = next((e for e in visible(who, d) if e.id == wanted), None)
    if ep is None:
        raise not_found(f"no endpoint {wanted!r} in the part of the directory you may read")
    return json_response(dict(ep.to_dict(who.kind == "operator"), children=[c.id for c in d.children(ep.id)]))


@routes.post("/api/v1/directory/select")
async def select(request: web.Request) -> web.Response:
    d = ctx_of(request).directory
    allowed = {ep.id for ep in visible(identity(request), d)}
    body = await read_body(request, SelectRequest)
    found = [ep for ep in d.select(body.selectors) if ep.id in allowed]
    return json_response({"count": len(found), "endpoint_ids": [ep.id for ep in found]})
