"""The placement of a cluster (Redis store): which media node serves each peer and meeting.

Implements ``signaling.cluster.placement.Placement``:

* every media node registers with its load (``registry``); a meeting is **pinned** to the
  least-loaded live node (``media-pins``, put-if-absent, so 211 simultaneous joins agree);
* a media node that declares ``media_serves: [district ids]`` is the **cascade edge** for those
  subtrees: their endpoints get their peer there, and the edge pulls the meeting from its origin
  over one cascade trunk (``spec.extra["cascade_origin"]``, see mcu.cascade.trunk);
* a pinned node that stops beating (or whose link broke) is replaced by compare-and-put on the
  next join, and sessions whose peer was there get ``media_reset`` and offer again.

Node-to-node calls carry node tokens signed with ``settings.node_key`` (or ``GIAOBAN_NODE_KEY``),
the same on every node and never kept in the store: whoever can write to Redis can sign user
tokens (the token key is there), but not node tokens. A clustered node without it refuses to start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aiohttp

from endpoints.directory import Directory
from mcu.api import (
    CascadeOrigin,
    EventSink,
    HostedMediaNode,
    JsonObject,
    LinkStats,
    MediaNode,
    MediaPeer,
    PeerSpec,
    RecordingLabels,
)
from signaling import metrics
from signaling.auth.tokens import Claims, TokenSigner
from signaling.cluster.registry import NodeRegistry
from signaling.cluster.remote_media import MediaNodeLost, RemoteMediaNode
from signaling.errors import unavailable
from signaling.settings import Settings, SettingsError
from signaling.store.base import Store

log = logging.getLogger("giaoban.cluster")
PINS = "media-pins"
NODE_TOKEN_TTL_S = 3600.0
OPEN_ATTEMPTS = 3
NODE_KEY_ENV = "GIAOBAN_NODE_KEY"
MIN_NODE_KEY_CHARS = 32
T = TypeVar("T")


def node_key(settings: Settings) -> str:
    """The cluster's node key (decided: no generated fallback, as nodes could not agree on one
    without keeping it where a Redis writer reads it)."""
    key = settings.node_key or os.environ.get(NODE_KEY_ENV, "")
    if len(key) < MIN_NODE_KEY_CHARS:
        problem = "is not set" if not key else f"has {len(key)} characters, fewer than {MIN_NODE_KEY_CHARS}"
        raise SettingsError(
            "settings",
            0,
            f"node_key {problem}: with a shared (Redis) store every node needs the "
            f"same secret node_key (settings) or {NODE_KEY_ENV} (environment), e.g. the output of "
            f"`openssl rand -hex 32`; it is never stored in Redis",
        )
    return key


def _load(doc: dict[str, Any]) -> tuple[float, float]:
    return (round(doc.get("peers", 0) / max(1, doc.get("capacity", 1)), 2), doc.get("cpu", 0.0))


class ClusterPlacement:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        directory: Directory,
        local: HostedMediaNode | None,
        node_info: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.settings, self.store, self.directory, self.local = settings, store, directory, local
        self.node_id = settings.node_id
        key = node_key(settings)
        self.node_signer = TokenSigner.for_nodes(key)
        registry_key = hmac.new(key.encode(), b"giaoban/registry", hashlib.sha256).digest()
        self.registry = NodeRegistry(store, self.node_id, self._media_info if local else None, node_info, registry_key)
        self.http: aiohttp.ClientSession | None = None
        self._remotes: dict[tuple[str, str], RemoteMediaNode] = {}
        self._token: tuple[float, str] = (0.0, "")

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        # one WebSocket per remote peer: no pool limit (aiohttp's default 100 would stall joiner 101)
        # pooled connections are dropped before the other node's idle close (its header timeout,
        # limits.http_header_timeout_s): a POST on a connection it is closing would fail
        keepalive = max(1.0, self.settings.limits.http_header_timeout_s / 2)
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=keepalive))
        await self.registry.start()

    async def stop(self) -> None:
        await self.registry.stop()
        if self.http is not None:
            await self.http.close()
            self.http = None

    def _media_info(self) -> dict[str, Any]:
        assert self.local is not None  # only media nodes publish this
        load = self.local.load()
        return {
            "url": self.settings.media_url,
            "peers": load["peers"],
            "meetings": load["meetings"],
            "capacity": self.settings.media_capacity,
            "serves": list(self.settings.media_serves),
            "encode_codecs": list(self.settings.encode_codecs),  # what it may transcode and compose into
        }

    # --- node-to-node auth -----------------------------------------------------------------------
    def node_token(self) -> str:
        expires, token = self._token
        if expires - time.time() < 60:
            token, claims = self.node_signer.issue("node", self.node_id, NODE_TOKEN_TTL_S)
            self._token = (claims.exp, token)
        return token

    def verify_node_token(self, token: str) -> Claims:
        return self.node_signer.verify(token)

    # --- choosing nodes --------------------------------------------------------------------------
    def _node(self, node_id: str, url: str) -> MediaNode:
        if node_id == self.node_id and self.local is not None:
            return self.local
        key = (node_id, url)
        if key not in self._remotes:
            assert self.http is not None, "placement not started"
            self._remotes[key] = RemoteMediaNode(node_id, url, self.http, self.node_token)
        return self._remotes[key]

    def node_at(self, url: str) -> MediaNode:
        """A media node known by its internal URL (the node a meeting is pinned to)."""
        return self._node(url, url)

    def cascade_origin(self, info: CascadeOrigin) -> MediaNode:
        """The origin node of a meeting this node is a cascade edge of (``spec.extra["cascade_origin"]``):
        the local node's ``origin_factory``, wired by ``signaling.app.build_context``."""
        return self._node(info["node_id"], info["url"])

    async def origin_of(self, meeting_id: str, nodes: dict[str, dict[str, Any]]) -> str:
        """The meeting's pinned media node; pins it to the least-loaded live node when unpinned
        or when its node is gone. Origin-only nodes are preferred to cascade edges."""
        for _ in range(5):
            pin = await self.store.get(PINS, meeting_id)
            if pin is not None and pin["node"] in nodes:
                return str(pin["node"])
            candidates = [n for n, d in nodes.items() if not d.get("serves")] or list(nodes)
            choice = min(candidates, key=lambda n: (_load(nodes[n]), n))
            new = {"node": choice, "at": time.time(), "by": self.node_id, "replaces": pin["node"] if pin else None}
            won = (
                await self.store.put_if_absent(PINS, meeting_id, new)
                if pin is None
                else await self.store.compare_and_put(PINS, meeting_id, pin, new)
            )
            if won:
                if pin is not None:
                    metrics.MEDIA_FAILOVERS.inc()
                log.info(
                    "meeting pinned to media node",
                    extra={"meeting": meeting_id, "media_node": choice, "replaces": new["replaces"]},
                )
                return choice
        raise unavailable(f"could not pin meeting {meeting_id} to a media node (too contended)")

    def edge_of(self, endpoint_id: str, nodes: dict[str, dict[str, Any]]) -> str | None:
        """The live node that serves this endpoint's subtree as a cascade edge, if any."""
        if endpoint_id not in self.directory:
            return None
        chain = [endpoint_id] + [a.id for a in self.directory.ancestors(endpoint_id)]
        for ep in chain:  # nearest first: a commune's own district before its province
            for node_id in sorted(nodes):
                if ep in nodes[node_id].get("serves", ()):
                    return node_id
        return None

    async def media_url_of(self, meeting_id: str) -> str | None:
        """The internal URL of the live media node the meeting is pinned to, when that is another
        node (None: this node, or no live node has it)."""
        pin = await self.store.get(PINS, meeting_id)
        if pin is None or pin["node"] == self.node_id:
            return None
        node = (await self.registry.media_nodes()).get(pin["node"])
        return str(node["url"]) if node else None

    async def other_media_urls(self) -> list[str]:
        return [
            str(doc["url"])
            for node_id, doc in sorted((await self.registry.media_nodes()).items())
            if node_id != self.node_id
        ]

    # --- MediaNode -------------------------------------------------------------------------------
    async def open_peer(self, spec: PeerSpec, events: EventSink) -> MediaPeer:
        for _ in range(OPEN_ATTEMPTS):
            nodes = await self.registry.media_nodes()
            if not nodes:
                raise unavailable("no media node is running in the cluster; start one with --media local")
            origin = await self.origin_of(spec.meeting_id, nodes)
            target = self.edge_of(spec.endpoint_id, nodes) or origin
            extra = spec.extra.copy()
            if target != origin:
                extra["cascade_origin"] = {"node_id": origin, "url": nodes[origin]["url"]}
            try:
                return await self._node(target, nodes[target]["url"]).open_peer(
                    dataclasses.replace(spec, extra=extra), events
                )
            except MediaNodeLost as exc:
                log.warning("media node unreachable; choosing another: %s", exc, extra={"media_node": target})
                self.registry.suspect(target)
        raise unavailable("no reachable media node; retry in a few seconds")

    def node_lost(self, node_id: str) -> None:
        self.registry.suspect(node_id)

    async def _on_every_node(self, what: str, call: Callable[[MediaNode], Awaitable[T]]) -> list[T | None]:
        """``call`` on every live media node (origin and edges; the others ignore the meeting)."""
        nodes = await self.registry.media_nodes()

        async def one(node_id: str) -> T | None:
            try:
                return await call(self._node(node_id, nodes[node_id]["url"]))
            except Exception as exc:  # a node that is going away must not fail the chair's action
                log.warning("%s on media node %s failed: %s", what, node_id, exc)
                return None

        return list(await asyncio.gather(*(one(n) for n in sorted(nodes))))

    async def set_floor(self, meeting_id: str, endpoint_id: str | None) -> None:
        await self._on_every_node("set_floor", lambda node: node.set_floor(meeting_id, endpoint_id))

    async def set_layout(self, meeting_id: str, layout: str | None) -> None:
        await self._on_every_node("set_layout", lambda node: node.set_layout(meeting_id, layout))

    async def link_stats(self, meeting_id: str) -> LinkStats:
        merged: LinkStats = {}
        for part in await self._on_every_node("link_stats", lambda node: node.link_stats(meeting_id)):
            merged.update(part or {})
        return merged

    async def record(self, meeting_id: str, on: bool, labels: RecordingLabels) -> JsonObject:
        """On the node the meeting is pinned to (which labels it itself), else here."""
        url = await self.media_url_of(meeting_id)
        if url is not None:
            return await self.node_at(url).record(meeting_id, on, labels)
        if self.local is None:
            raise unavailable("recording is not enabled on this node")
        return await self.local.record(meeting_id, on, labels)

    async def describe(self) -> JsonObject:
        view = {
            "clustered": True,
            "node": self.node_id,
            "signaling_nodes": await self.registry.signaling_nodes(),
            "media_nodes": await self.registry.media_nodes(),
            "pins": dict(await self.store.list(PINS)),
        }
        return cast(JsonObject, view)  # documents read from the store: JSON
