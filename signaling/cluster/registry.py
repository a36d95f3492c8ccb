"""Which nodes are alive. Every node writes an ephemeral heartbeat document each second; a media
node adds its address and load. A node that stops beating drops out after ``NODE_TTL_S``; a
node seen dead sooner (its media WebSocket broke) is suspected locally until then.

Collections: ``nodes`` (signaling nodes), ``media-nodes`` (media nodes: url, peers, meetings,
capacity, serves, cpu).

Each heartbeat is signed with a key derived from the node key (``sig``), and entries without a
valid signature are ignored: otherwise whoever can write to Redis could list a media node of
their own, and the other nodes would send it node tokens and users' tokens (forwarded requests).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
from typing import Any, Callable

from signaling.store import codec
from signaling.store.base import Store

log = logging.getLogger("giaoban.cluster")
NODES = "nodes"
MEDIA_NODES = "media-nodes"
HEARTBEAT_S = 1.0
# > 5 missed beats: a node killed with -9 is gone from every list within this (a broken link
# says it sooner); a busy node whose event loop lags a few seconds is not taken for dead
NODE_TTL_S = 6.0
CACHE_S = 0.5  # reads within this reuse the last list (211 joins at once read it once)


class NodeRegistry:
    def __init__(
        self,
        store: Store,
        node_id: str,
        media_info: Callable[[], dict[str, Any]] | None = None,
        node_info: Callable[[], dict[str, Any]] | None = None,
        key: bytes | None = None,
    ) -> None:
        self.store, self.node_id, self.media_info, self.node_info = store, node_id, media_info, node_info
        self._key = key  # None: entries are neither signed nor checked (unit tests of placement)
        self._warned: set[str] = set()
        self.started_at = time.time()
        self._task: asyncio.Task[None] | None = None
        self._suspects: dict[str, float] = {}  # node id -> until (monotonic)
        self._cache: dict[str, tuple[float, dict[str, dict[str, Any]]]] = {}
        self._cpu = (time.monotonic(), time.process_time())

    async def start(self) -> None:
        if self._task is None:
            await self._beat()  # listed before the first client can ask
            self._task = asyncio.create_task(self._run(), name="node-heartbeat")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        try:  # a graceful stop leaves the lists at once; a crash waits for the TTL
            await self.store.delete_ephemeral(NODES, self.node_id)
            if self.media_info is not None:
                await self.store.delete_ephemeral(MEDIA_NODES, self.node_id)
        except Exception as exc:
            log.warning("node deregistration failed: %s", exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            try:
                await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store may be restarting: keep beating
                log.exception("node heartbeat failed")

    def _cpu_share(self) -> float:
        now, cpu = time.monotonic(), time.process_time()
        (t0, c0), self._cpu = self._cpu, (now, cpu)
        return round((cpu - c0) / max(now - t0, 1e-3), 3)

    async def _beat(self) -> None:
        doc = {"pid": os.getpid(), "started": self.started_at, "seen": time.time(), "cpu": self._cpu_share()}
        if self.node_info is not None:
            doc |= self.node_info()
        await self.store.put_ephemeral(NODES, self.node_id, self._signed(NODES, self.node_id, doc), NODE_TTL_S)
        if self.media_info is not None:
            media = self._signed(MEDIA_NODES, self.node_id, doc | self.media_info())
            await self.store.put_ephemeral(MEDIA_NODES, self.node_id, media, NODE_TTL_S)

    def _sig(self, coll: str, node_id: str, doc: dict[str, Any]) -> str:
        assert self._key is not None
        text = codec.dumps([coll, node_id, {k: v for k, v in doc.items() if k != "sig"}])
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def _signed(self, coll: str, node_id: str, doc: dict[str, Any]) -> dict[str, Any]:
        return doc if self._key is None else doc | {"sig": self._sig(coll, node_id, doc)}

    def _genuine(self, coll: str, node_id: str, doc: dict[str, Any]) -> bool:
        if self._key is None:
            return True
        sig = doc.get("sig")
        if isinstance(sig, str) and hmac.compare_digest(sig, self._sig(coll, node_id, doc)):
            return True
        if node_id not in self._warned:  # once per id: a forged entry beats every second
            self._warned.add(node_id)
            log.warning(
                "ignoring node %r in %s: its entry is not signed with this cluster's node key "
                "(a node with another node_key, or a forged entry in Redis)",
                node_id,
                coll,
            )
        return False

    def suspect(self, node_id: str) -> None:
        """This node saw ``node_id`` fail (a broken link): treat it as dead until its TTL runs out."""
        if node_id != self.node_id:
            self._suspects[node_id] = time.monotonic() + NODE_TTL_S + HEARTBEAT_S
            self._cache.clear()

    async def _alive(self, coll: str) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        hit = self._cache.get(coll)
        if hit is not None and now - hit[0] < CACHE_S:
            return hit[1]
        self._suspects = {n: t for n, t in self._suspects.items() if t > now}
        rows = {
            key: doc
            for key, doc in await self.store.list_ephemeral(coll)
            if key not in self._suspects and self._genuine(coll, key, doc)
        }
        self._cache[coll] = (now, rows)
        return rows

    async def media_nodes(self) -> dict[str, dict[str, Any]]:
        return await self._alive(MEDIA_NODES)

    async def signaling_nodes(self) -> dict[str, dict[str, Any]]:
        return await self._alive(NODES)
