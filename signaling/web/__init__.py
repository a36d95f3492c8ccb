"""Browser pages served by the signaling node: the laptop join page and the operator console.

Plain HTML, CSS and ES modules from ``static/`` (no build step, nothing from the Internet). Pages
and assets are public; everything they show comes from the authenticated REST API and WebSocket.
"""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from signaling.errors import not_found

STATIC = Path(__file__).resolve().parent / "static"
ASSET = re.compile(r"^[a-z0-9][a-z0-9_-]{0,60}\.(js|css|svg)$")
TYPES = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
# Same-origin only: scripts, styles, fetch and the /ws WebSocket of this node; media from blobs.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob: mediastream:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}

routes = web.RouteTableDef()


def _page(name: str) -> web.FileResponse:
    return web.FileResponse(STATIC / name, headers={**HEADERS, "Content-Type": "text/html; charset=utf-8"})


@routes.get("/join")
async def join_page(request: web.Request) -> web.FileResponse:
    """Laptop join page; the signed link token is in the query string (?token=...)."""
    return _page("join.html")


@routes.get("/console")
async def console_page(request: web.Request) -> web.FileResponse:
    return _page("console.html")


@routes.get("/web/{name}")
async def asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    path = STATIC / name
    if not ASSET.match(name) or not path.is_file():
        raise not_found(f"no web asset named {name!r}")
    ext = name.rsplit(".", 1)[1]
    return web.FileResponse(path, headers={**HEADERS, "Content-Type": f"{TYPES[ext]}; charset=utf-8"})
