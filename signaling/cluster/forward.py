"""Recordings and live streams live on the media node that runs the meeting. In a cluster any node
answers their routes by forwarding the request there (the caller's token is valid on every node);
a forwarded request carries ``X-Giaoban-Forwarded`` and is answered from the receiving node only,
so a request never travels twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import web

from signaling.api.http import ctx_of, read_raw
from signaling.cluster.cluster_placement import ClusterPlacement
from signaling.errors import unavailable

log = logging.getLogger("giaoban.cluster")
FORWARDED = "X-Giaoban-Forwarded"
REQUEST_HEADERS = ("Authorization", "Range", "Content-Type")
RESPONSE_HEADERS = (
    "Content-Type",
    "Content-Disposition",
    "Content-Range",
    "Accept-Ranges",
    "Cache-Control",
    "Access-Control-Allow-Origin",
    "WWW-Authenticate",
)


def in_cluster(request: web.Request) -> ClusterPlacement | None:
    """The cluster's placement when this node is part of one (None on one machine)."""
    placement = ctx_of(request).placement
    return placement if isinstance(placement, ClusterPlacement) else None


def _placement(request: web.Request) -> ClusterPlacement | None:
    """The cluster's placement when this request may be forwarded (not forwarded already)."""
    return None if FORWARDED in request.headers else in_cluster(request)


def _http(placement: ClusterPlacement) -> aiohttp.ClientSession:
    assert placement.http is not None, "placement not started"
    return placement.http


def _headers(request: web.Request, placement: ClusterPlacement) -> dict[str, str]:
    """What a forwarded request carries: the caller's credentials and range, and the mark."""
    return {h: request.headers[h] for h in REQUEST_HEADERS if h in request.headers} | {FORWARDED: placement.node_id}


async def forward(request: web.Request, placement: ClusterPlacement, base_url: str) -> web.StreamResponse:
    """Send ``request`` to ``base_url`` and stream the answer back (recordings can be large)."""
    try:
        upstream = await _http(placement).request(
            request.method,
            base_url + str(request.rel_url),
            headers=_headers(request, placement),
            data=await read_raw(request),
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=3, sock_read=30),
        )
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise unavailable(f"the media node of this meeting cannot be reached: {exc}") from None
    async with upstream:
        resp = web.StreamResponse(
            status=upstream.status, headers={h: upstream.headers[h] for h in RESPONSE_HEADERS if h in upstream.headers}
        )
        if "Content-Length" in upstream.headers:
            resp.content_length = int(upstream.headers["Content-Length"])
        await resp.prepare(request)
        async for chunk in upstream.content.iter_chunked(1 << 16):
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def to_meeting_node(request: web.Request, meeting_id: str) -> web.StreamResponse | None:
    """Forward when the meeting runs on another media node; None: answer here."""
    placement = _placement(request)
    if placement is None:
        return None
    url = await placement.media_url_of(meeting_id)
    return await forward(request, placement, url) if url else None


async def gather_json(request: web.Request) -> list[tuple[int, Any]]:
    """The same request answered by every other live media node: (status, JSON body) each."""
    placement = _placement(request)
    if placement is None:
        return []
    headers, http = _headers(request, placement), _http(placement)

    async def one(url: str) -> tuple[int, Any]:
        try:
            async with http.get(
                url + str(request.rel_url), headers=headers, timeout=aiohttp.ClientTimeout(total=5)
            ) as resp:
                return resp.status, await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.warning("recording list from %s failed: %s", url, exc)
            return 503, None

    return await asyncio.gather(*(one(url) for url in await placement.other_media_urls()))


async def to_owner(request: web.Request) -> web.StreamResponse | None:
    """A recording id this node does not hold: the answer of the first other media node that does."""
    placement = _placement(request)
    if placement is None:
        return None
    headers, http = _headers(request, placement), _http(placement)
    for url in await placement.other_media_urls():
        try:
            async with http.head(
                url + str(request.rel_url), headers=headers, timeout=aiohttp.ClientTimeout(total=5)
            ) as probe:
                if probe.status == 404:
                    continue
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            continue
        return await forward(request, placement, url)
    return None
