"""Live state of open meeting occurrences, shared through the store so any node can serve a client.

* who is in the room: ephemeral documents ``live:<occurrence>`` / <session id>, refreshed by the
  session's heartbeat, so a crashed node's participants fade out by themselves;
* floor, raised hands, mutes, lock: one document ``rooms`` / <occurrence>, changed with
  compare-and-put (two nodes acting at once never lose an update);
* events: published on channel ``room:<occurrence>``; each node relays them to its own sessions,
  encoding each event to JSON once for all of them.

The participant list goes out whole but coalesced: joins and leaves within ``list_delay`` (0.5 s,
up to 2 s for national meetings) produce one ``participants`` message of compact entries
(``roster``). Sending it per join would cost O(N^2) (211 terminals joining at 07:50 = 44,000
messages of 211 entries each).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any, Callable, Protocol

from signaling.protocol import encode, server_msg
from signaling.store.base import Store, Subscription

log = logging.getLogger("giaoban.rooms")
PRESENCE_TTL_S = 30.0
LIST_DELAY_S = 0.5  # a small meeting's list follows a change this fast ...
LIST_DELAY_MAX_S = 2.0  # ... a national one (800 rooms joining at once) waits longer between lists
READ_CACHE_S = 0.3  # joins within this reuse one read of the room's entries
ROSTER_FIELDS = ("endpoint_id", "name", "role", "kind", "tier")  # what clients get of each participant


def roster(people: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The participant list as clients get it (the REST live view keeps node, session, seen)."""
    return [{k: p[k] for k in ROSTER_FIELDS if k in p} for p in people]


def list_delay(size: int) -> float:
    """Seconds between participant lists: each goes to every member, so with N members a list
    costs O(N) to build and O(N^2) bytes to send; bigger meetings get fewer lists."""
    return min(LIST_DELAY_MAX_S, max(LIST_DELAY_S, size / 400))


class LocalMember(Protocol):
    session_id: str
    endpoint_id: str

    async def on_room_event(self, msg: dict[str, Any], text: str) -> None: ...


class FloorMedia(Protocol):
    """What the floor needs of the media placement (signaling.cluster.placement.Placement)."""

    async def set_floor(self, meeting_id: str, endpoint_id: str | None) -> None: ...


def empty_room() -> dict[str, Any]:
    return {"floor": None, "hands": [], "muted": {}, "locked": False, "removed": [], "layout": "speaker_strip"}


class _Relay:
    """One subscription per occurrence on this node, fanning events out to local members."""

    def __init__(self, sub: Subscription) -> None:
        self.sub = sub
        self.members: dict[str, LocalMember] = {}
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        async for msg in self.sub:
            target = msg.get("to")
            text = encode(msg)
            for member in list(self.members.values()):  # copy: members may leave meanwhile
                if target is None or member.endpoint_id == target:
                    await member.on_room_event(msg, text)


class RoomHub:
    def __init__(self, store: Store, node_id: str, registry=None) -> None:
        self.store, self.node_id = store, node_id
        self.registry = registry  # cluster: entries of a signaling node that died are left out at once
        self._relays: dict[str, _Relay] = {}
        self._lock = asyncio.Lock()
        self._list_pending: dict[str, asyncio.Task] = {}
        self._read_cache: dict[str, tuple[float, list[dict[str, Any]]]] = {}

    # membership ----------------------------------------------------------------------------
    async def enter(self, occurrence_id: str, member: LocalMember, info: dict[str, Any]) -> None:
        async with self._lock:
            relay = self._relays.get(occurrence_id)
            if relay is None:
                relay = _Relay(await self.store.subscribe(f"room:{occurrence_id}"))
                relay.task = asyncio.create_task(relay.run(), name=f"relay:{occurrence_id}")
                self._relays[occurrence_id] = relay
            relay.members[member.session_id] = member
        await self.heartbeat(occurrence_id, member.session_id, info)

    async def heartbeat(self, occurrence_id: str, session_id: str, info: dict[str, Any]) -> None:
        doc = dict(info, node=self.node_id, seen=time.time())
        await self.store.put_ephemeral(f"live:{occurrence_id}", session_id, doc, PRESENCE_TTL_S)
        self._patch_cache(occurrence_id, session_id, dict(doc, session_id=session_id))

    async def exit(self, occurrence_id: str, session_id: str) -> None:
        await self.store.delete_ephemeral(f"live:{occurrence_id}", session_id)
        self._patch_cache(occurrence_id, session_id, None)
        async with self._lock:
            relay = self._relays.get(occurrence_id)
            if relay is None:
                return
            relay.members.pop(session_id, None)
            if not relay.members:
                del self._relays[occurrence_id]
                await relay.sub.stop()
                if relay.task:
                    relay.task.cancel()

    def _patch_cache(self, occurrence_id: str, session_id: str, entry: dict[str, Any] | None) -> None:
        """Keep a recent read true to this node's own changes (a new list: readers hold the old one)."""
        hit = self._read_cache.pop(occurrence_id, None)
        if hit is not None and time.monotonic() - hit[0] < READ_CACHE_S:  # a stale one is just dropped
            people = [p for p in hit[1] if p["session_id"] != session_id] + ([entry] if entry else [])
            self._read_cache[occurrence_id] = (hit[0], people)

    async def participants(self, occurrence_id: str, recent: bool = False) -> list[dict[str, Any]]:
        """Who is in the room. ``recent``: a read up to READ_CACHE_S old will do (the list in
        ``joined``: a herd of joins shares one read); the result is then shared, read-only."""
        now = time.monotonic()
        hit = self._read_cache.get(occurrence_id)
        if recent and hit is not None and now - hit[0] < READ_CACHE_S:
            return hit[1]
        rows = await self.store.list_ephemeral(f"live:{occurrence_id}")
        if self.registry is not None:  # a dead node's rooms go at once, not after PRESENCE_TTL_S
            alive = await self.registry.signaling_nodes()
            rows = [(key, doc) for key, doc in rows if doc.get("node") in alive or doc.get("node") == self.node_id]
        people = [dict(doc, session_id=key) for key, doc in rows]
        self._read_cache[occurrence_id] = (now, people)
        return people

    # shared state ----------------------------------------------------------------------------
    async def state(self, occurrence_id: str) -> dict[str, Any]:
        return empty_room() | (await self.store.get("rooms", occurrence_id) or {})

    async def update(self, occurrence_id: str, change: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        """Apply ``change`` to the room document atomically (retrying on a concurrent write)."""
        for _ in range(50):
            current = await self.store.get("rooms", occurrence_id)
            new = copy.deepcopy(empty_room() | (current or {}))  # ``change`` may edit nested values
            change(new)
            if await self.store.compare_and_put("rooms", occurrence_id, current, new):
                return new
            await asyncio.sleep(0.005)
        raise RuntimeError(f"room {occurrence_id} is too contended")

    async def publish(self, occurrence_id: str, msg: dict[str, Any]) -> None:
        await self.store.publish(f"room:{occurrence_id}", msg)

    async def release_floor(
        self, occurrence_id: str, meeting_id: str, endpoint_id: str, by: str, media: FloorMedia | None
    ) -> bool:
        """Take the floor from ``endpoint_id`` if it holds it (removal, revocation): the room's state,
        the media node(s), and a ``floor`` event to the room. False when it did not hold it."""
        took: list[bool] = []

        def change(room: dict[str, Any]) -> None:
            took.clear()  # ``update`` may run this again after a concurrent write
            if room["floor"] == endpoint_id:
                room["floor"] = None
                took.append(True)

        await self.update(occurrence_id, change)
        if not took:
            return False
        if media is not None:
            await media.set_floor(meeting_id, None)
        await self.publish(occurrence_id, server_msg("floor", endpoint_id=None, by=by))
        return True

    def participants_changed(self, occurrence_id: str) -> None:
        """Schedule one ``participants`` broadcast for every change within LIST_DELAY_S."""
        if occurrence_id not in self._list_pending:
            task = asyncio.create_task(self._broadcast_list(occurrence_id), name=f"list:{occurrence_id}")
            self._list_pending[occurrence_id] = task

    async def _broadcast_list(self, occurrence_id: str) -> None:
        try:
            while True:  # one list per window in the whole cluster: the node holding the window sends
                hit = self._read_cache.get(occurrence_id)
                delay = list_delay(len(hit[1]) if hit else 0)
                await asyncio.sleep(delay)
                if await self.store.acquire_lock(f"roster:{occurrence_id}", self.node_id, delay):
                    break  # else another node sends now; our change goes out in the next window
            del self._list_pending[occurrence_id]  # changes from here on need another broadcast
            people = await self.participants(occurrence_id)
            await self.publish(occurrence_id, server_msg("participants", participants=roster(people)))
        except Exception:
            self._list_pending.pop(occurrence_id, None)
            log.exception("participant list broadcast failed", extra={"occurrence": occurrence_id})

    async def stop(self) -> None:
        for task in list(self._list_pending.values()):
            task.cancel()
        self._list_pending.clear()
        async with self._lock:
            relays, self._relays = list(self._relays.values()), {}
        for relay in relays:
            await relay.sub.stop()
            if relay.task:
                relay.task.cancel()
