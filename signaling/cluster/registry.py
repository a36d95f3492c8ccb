"""Which nodes are alive. Every node writes an ephemeral heartbeat document each second; a media
node adds its address and load. A node that stops beating drops out after ``NODE_TTL_S``; a
node seen dead sooner (its media WebSocket broke) is suspected locally until then.

Liveness that load cannot fake (#18): on a shared store the beat is written by a thread of its own
on a Redis connection of its own (``Store.beat_writer``), so an event loop busy for longer than the
TTL (7.1 s measured under a 1,681-endpoint herd, against 6 s) no longer gets a serving node counted
dead. The loop still composes the document (load, peers: loop state) and marks that it ran; the
thread renews the latest document only while the loop has run within ``STALL_S``. A loop wedged
longer than that (a deadlock, not load) stops the beat, and the node drops out a TTL later, so a
node that can no longer serve is not kept alive by its thread. A killed process takes its thread
with it: gone within the TTL.

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
import threading
import time
from typing import Any, Callable

from signaling.store import codec
from signaling.store.base import BeatWriter, Store, StoreError

log = logging.getLogger("giaoban.cluster")
NODES = "nodes"
MEDIA_NODES = "media-nodes"
HEARTBEAT_S = 1.0
# > 5 missed beats: a node killed with -9 is gone from every list within this (a broken link
# says it sooner); a busy node whose event loop lags a few seconds is not taken for dead
NODE_TTL_S = 6.0
CACHE_S = 0.5  # reads within this reuse the last list (211 joins at once read it once)
# The thread stops renewing once the loop has not run for this long: far above any lag seen under
# load (7.1 s), far below "forever"; a wedged node then drops out STALL_S + TTL after it wedged.
STALL_S = 5 * NODE_TTL_S


class NodeRegistry:
    def __init__(
        self,
        store: Store,
        node_id: str,
        media_info: Callable[[], dict[str, Any]] | None = None,
        node_info: Callable[[], dict[str, Any]] | None = None,
        key: bytes | None = None,
        *,
        ttl_s: float = NODE_TTL_S,
        heartbeat_s: float = HEARTBEAT_S,
        stall_s: float = STALL_S,
    ) -> None:
        self.store, self.node_id, self.media_info, self.node_info = store, node_id, media_info, node_info
        self.ttl_s, self.heartbeat_s, self.stall_s = ttl_s, heartbeat_s, stall_s
        self._thread: _BeatThread | None = None
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
            writer = self.store.beat_writer()
            if writer is not None:
                self._thread = _BeatThread(self, writer)
                self._thread.offer(self._docs())
                self._thread.start()
            self._task = asyncio.create_task(self._run(), name="node-heartbeat")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None
        if self._thread is not None:  # before the entries go: the thread must not write them back
            await asyncio.to_thread(self._thread.stop)
            self._thread = None
        try:  # a graceful stop leaves the lists at once; a crash waits for the TTL
            await self.store.delete_ephemeral(NODES, self.node_id)
            if self.media_info is not None:
                await self.store.delete_ephemeral(MEDIA_NODES, self.node_id)
        except Exception as exc:
            log.warning("node deregistration failed: %s", exc)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                if self._thread is not None:
                    self._thread.offer(self._docs())  # the thread writes it: the loop only composes
                else:
                    await self._beat()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store may be restarting: keep beating
                log.exception("node heartbeat failed")

    def _cpu_share(self) -> float:
        now, cpu = time.monotonic(), time.process_time()
        (t0, c0), self._cpu = self._cpu, (now, cpu)
        return round((cpu - c0) / max(now - t0, 1e-3), 3)

    def _docs(self) -> list[tuple[str, dict[str, Any]]]:
        """This node's entries, unsigned and without "seen" (added by whoever writes them)."""
        doc = {"pid": os.getpid(), "started": self.started_at, "cpu": self._cpu_share()}
        if self.node_info is not None:
            doc |= self.node_info()
        docs = [(NODES, doc)]
        if self.media_info is not None:
            docs.append((MEDIA_NODES, doc | self.media_info()))
        return docs

    def _stamped(self, coll: str, doc: dict[str, Any]) -> dict[str, Any]:
        return self._signed(coll, self.node_id, doc | {"seen": time.time()})

    async def _beat(self) -> None:
        for coll, doc in self._docs():
            await self.store.put_ephemeral(coll, self.node_id, self._stamped(coll, doc), self.ttl_s)

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
            self._suspects[node_id] = time.monotonic() + self.ttl_s + self.heartbeat_s
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


class _BeatThread(threading.Thread):
    """Renews the node's entries every heartbeat from outside the event loop (see the module doc)."""

    def __init__(self, registry: NodeRegistry, writer: BeatWriter) -> None:
        super().__init__(name=f"node-heartbeat:{registry.node_id}", daemon=True)  # dies with the process
        self._registry, self._writer = registry, writer
        self._stopping = threading.Event()
        self._docs: list[tuple[str, dict[str, Any]]] = []
        self._loop_ran = time.monotonic()
        self._stalled = False

    def offer(self, docs: list[tuple[str, dict[str, Any]]]) -> None:
        """From the loop: the latest entries, and the proof that the loop runs."""
        self._docs, self._loop_ran = docs, time.monotonic()  # each a single reference swap

    def run(self) -> None:
        reg = self._registry
        while not self._stopping.wait(reg.heartbeat_s):
            stalled_s = time.monotonic() - self._loop_ran
            if stalled_s > reg.stall_s:
                if not self._stalled:
                    log.error("event loop has not run for %.1f s: heartbeat stopped, this node drops out", stalled_s)
                self._stalled = True
                continue
            if self._stalled:
                log.warning("event loop runs again: heartbeat resumed")
                self._stalled = False
            self._renew(reg)

    def _renew(self, reg: NodeRegistry) -> None:
        for coll, doc in self._docs:
            try:
                self._writer.put_ephemeral(coll, reg.node_id, reg._stamped(coll, doc), reg.ttl_s)
            except StoreError as exc:  # the store may be restarting: keep beating
                log.warning("node heartbeat failed: %s", exc)
                return
            except Exception:  # never let the thread die: the node would drop out while serving
                log.exception("node heartbeat failed")
                return

    def stop(self) -> None:
        """Blocking: ends the thread (a write in flight finishes first) and closes its connection."""
        self._stopping.set()
        self.join()
        self._writer.close()
