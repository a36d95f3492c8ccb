"""``GET /api/v1/cluster`` (operator): the live signaling and media nodes, their load and the codecs they
may encode, the meeting pins."""

from __future__ import annotations

from aiohttp import web

from signaling.api.http import ctx_of, json_response, require_operator

routes = web.RouteTableDef()


@routes.get("/api/v1/cluster")
async def cluster_view(request: web.Request) -> web.Response:
    require_operator(request)
    ctx = ctx_of(request)
    if ctx.placement is None:
        return json_response({"clustered": False, "node": ctx.settings.node_id, "media": False})
    return json_response(await ctx.placement.describe())


def openapi_paths(op, ok) -> dict:
    """The cluster routes in the OpenAPI document (built with ``signaling.api.openapi``'s helpers). The
    internal media routes take a node token, never a user's: documented for operators of proxies."""
    tag = "cluster"
    return {
        "/api/v1/cluster": {
            "get": op(
                "Live signaling and media nodes, their load, the codecs each media node may encode "
                "(setting encode_codecs) and the meeting pins (operator)",
                tag,
                ok("cluster"),
            )
        },
        "/internal/media/peer": {
            "get": op(
                "Node-to-node: one media peer over a WebSocket (node token)",
                tag,
                {"101": {"description": "WebSocket: open, offer, answer, ice, mute"}},
            )
        },
        "/internal/media/meetings/{meeting_id}/{what}": {
            "post": op(
                "Node-to-node: a meeting's floor, layout, link statistics or the chair's record action (node token)",
                tag,
                ok("done"),
                params=["meeting_id", "what"],
            )
        },
    }
