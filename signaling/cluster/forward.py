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

from signaling.cluster.placement import PINS
from signaling.errors import unavailable
from signaling.api.http import ctx_of, read_raw

log = logging.getLogger("giaoban.cluster")
FORWARDED = "X-Giaoban-Forwarded"
REQUEST_HEADERS = ("Authorization", "Range", "Content-Type")
RESPONSE_HEADERS = ("Content-Type", "Content-Disposition", "Content-Range", "Accept-Ranges", "Cache-Control",
                    "Access-Control-Allow-Origin", "WWW-Authenticate")


def _router(request: web.Request) -> Any | None:
    router = ctx_of(request).router
    if router is None or not router.clustered or FORWARDED in request.headers:
        return None
    return router


def _headers(request: web.Request, router: Any) -> dict[str, str]:
    """What a forwarded request carries: the caller's credentials and range, and the mark."""
    return {h: request.headers[h] for h in REQUEST_HEADERS if h in request.headers} | {FORWARDED: router.node_id}


async def meeting_node_url(router: Any, meeting_id: str) -> str | None:
    """The internal URL of the live media node the meeting is pinned to, when that is another node
    of a cluster (None on one machine)."""
    if router is None or not router.clustered:
        return None
    pin = await router.store.get(PINS, meeting_id)
    if pin is None or pin["node"] == router.node_id:
        return None
    node = (await router.registry.media_nodes()).get(pin["node"])
    return node["url"] if node else None


async def other_media_urls(router: Any) -> list[str]:
    return [doc["url"] for node_id, doc in sorted((await router.registry.media_nodes()).items())
            if node_id != router.node_id]


async def forward(request: web.Request, base_url: str) -> web.StreamResponse:
    """Send ``request`` to ``base_url`` and stream the answer back (recordings can be large)."""
    router = ctx_of(request).router
    try:
        upstream = await router.http.request(request.method, base_url + str(request.rel_url),
                                             headers=_headers(request, router),
                                             data=await read_raw(request), allow_redirects=False,
                                             timeout=aiohttp.ClientTimeout(total=None, sock_connect=3, sock_read=30))
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise unavailable(f"the media node of this meeting cannot be reached: {exc}") from None
    async with upstream:
        resp = web.StreamResponse(status=upstream.status,
                                  headers={h: upstream.headers[h] for h in RESPONSE_HEADERS if h in upstream.headers})
        if "Content-Length" in upstream.headers:
            resp.content_length = int(upstream.headers["Content-Length"])
        await resp.prepare(request)
        async for chunk in upstream.content.iter_chunked(1 << 16):
            await resp.write(chunk)
        await resp.write_eof()
        return resp


async def to_meeting_node(request: web.Request, meeting_id: str) -> web.StreamResponse | None:
    """Forward when the meeting runs on another media node; None: answer here."""
    url = await meeting_node_url(_router(request), meeting_id)
    return await forward(request, url) if url else None


async def gather_json(request: web.Request) -> list[tuple[int, Any]]:
    """The same request answered by every other live media node: (status, JSON body) each."""
    router = _router(request)
    if router is None:
        return []
    headers = _headers(request, router)

    async def one(url: str) -> tuple[int, Any]:
        try:
            async with router.http.get(url + str(request.rel_url), headers=headers,
                                       timeout=aiohttp.ClientTimeout(total=5)) as resp:
                return resp.status, await resp.json()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            log.warning("recording list from %s failed: %s", url, exc)
            return 503, None

    return await asyncio.gather(*(one(url) for url in await other_media_urls(router)))


async def to_owner(request: web.Request) -> web.StreamResponse | None:
    """A recording id this node does not hold: the answer of the first other media node that does."""
    router = _router(request)
    if router is None:
        return None
    headers = _headers(request, router)
    for url in await other_media_urls(router):
        try:
            async with router.http.head(url + str(request.rel_url), headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=5)) as probe:
                if probe.status == 404:
                    continue
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
            continue
        return await forward(request, url)
    return None
