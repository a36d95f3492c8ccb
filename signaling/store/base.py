"""The one state-store interface every part of giaoban talks to.

Two implementations keep the same contract (tests/signaling/store/test_contract.py runs against both):

* ``SqliteStore``  - the embedded single-node default: a file under the data folder, durable across
  ``kill -9`` (every write is committed before the call returns), pub/sub inside the process.
* ``RedisStore``   - for several nodes: an external Redis; pub/sub and TTL keys are Redis's own.

The model is deliberately small so that both backends stay thin and obviously equivalent:

* documents: JSON-able dicts in named collections, addressed by (collection, key);
  ``put_if_absent`` and ``compare_and_put`` give the atomic steps that two nodes could race on;
* logs: append-only lists of JSON-able dicts (attendance events);
* ephemeral documents: documents with a time-to-live (presence heartbeats), and counters among
  them (``incr_ephemeral``: failed logins, counted atomically by every node);
* locks: named, owned, expiring (a meeting opened by exactly one scheduler);
* pub/sub: JSON-able messages on named channels, delivered to every live subscriber.
"""

from __future__ import annotations

import abc
import builtins
from typing import Any, AsyncIterator

Doc = dict[str, Any]


class StoreError(Exception):
    """The store could not do what was asked (backend down, corrupt value)."""


class StoreBusy(StoreError):
    """The store is overloaded for the moment (no free connection in time): nothing was done, and
    the same call may succeed after ``retry_after_s`` seconds. Clients are told "busy", not
    "internal"."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class BeatWriter(abc.ABC):
    """Writes ephemeral documents from a thread of its own, on a connection of its own, so that a
    busy event loop cannot delay them (node heartbeats: ``signaling.cluster.registry``)."""

    @abc.abstractmethod
    def put_ephemeral(self, coll: str, key: str, doc: Doc, ttl_s: float) -> None:
        """As ``Store.put_ephemeral``, blocking; raises StoreError."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Subscription(abc.ABC):
    """Messages published on one channel after ``subscribe`` returned, in publish order.

    Each subscription buffers in a bounded queue; a subscriber that falls behind loses the
    oldest buffered messages (counted in ``dropped``), so publishers never wait. Iteration ends
    and ``get`` returns None once the subscription (or its store) is stopped.
    """

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[Doc]: ...

    @abc.abstractmethod
    async def get(self, timeout: float | None = None) -> Doc | None:
        """Next message, or None when ``timeout`` seconds pass first."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Unsubscribe; idempotent."""


class Store(abc.ABC):
    """Abstract state store. Keys and collection names are non-empty strings without NUL.

    Documents are compared and stored as canonical JSON (sorted keys, UTF-8). Backend failures
    and calls before ``start`` or after ``stop`` raise ``StoreError``; bad names or a ttl <= 0
    raise ValueError, a document that is not a JSON-able dict TypeError/ValueError.
    """

    shared = False  # True when several processes (nodes) can use this store together

    # lifecycle ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None:
        """Close connections and background tasks; idempotent."""

    # documents ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def get(self, coll: str, key: str) -> Doc | None: ...

    @abc.abstractmethod
    async def put(self, coll: str, key: str, doc: Doc) -> None: ...

    @abc.abstractmethod
    async def put_if_absent(self, coll: str, key: str, doc: Doc) -> bool:
        """Store ``doc`` only if the key is free; True when stored."""

    @abc.abstractmethod
    async def compare_and_put(self, coll: str, key: str, expected: Doc | None, doc: Doc) -> bool:
        """Replace the value only if it still equals ``expected`` (None: key absent)."""

    @abc.abstractmethod
    async def delete(self, coll: str, key: str) -> bool:
        """True when something was deleted."""

    @abc.abstractmethod
    async def list(self, coll: str) -> list[tuple[str, Doc]]:
        """All documents of a collection, sorted by key."""

    # append-only logs ----------------------------------------------------------------------
    @abc.abstractmethod
    async def append(self, log: str, entry: Doc) -> int:
        """Append; returns the new length of the log."""

    @abc.abstractmethod
    async def read_log(self, log: str, start: int = 0) -> builtins.list[Doc]:
        """Entries from index ``start`` on, in append order."""

    # ephemeral documents (presence) ------------------------------------------------------
    @abc.abstractmethod
    async def put_ephemeral(self, coll: str, key: str, doc: Doc, ttl_s: float) -> None:
        """Store ``doc`` for ``ttl_s`` seconds; calling again refreshes it."""

    @abc.abstractmethod
    async def get_ephemeral(self, coll: str, key: str) -> Doc | None: ...

    @abc.abstractmethod
    async def incr_ephemeral(self, coll: str, key: str, ttl_s: float, by: int = 1) -> int:
        """Add ``by`` to the counter ``{"count": n}`` at (coll, key) in one atomic step (no
        increment is lost between coroutines, processes or nodes) and return the new count. A
        missing or expired counter (or a document without an integer ``count``) starts from 0;
        the counter then lives ``ttl_s`` seconds from this call. It reads back with
        ``get_ephemeral``/``list_ephemeral`` as ``{"count": n}``."""

    @abc.abstractmethod
    async def delete_ephemeral(self, coll: str, key: str) -> bool: ...

    @abc.abstractmethod
    async def list_ephemeral(self, coll: str) -> builtins.list[tuple[str, Doc]]:
        """Live (unexpired) documents, sorted by key."""

    # locks -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the lock, or refresh it when ``owner`` already holds it."""

    @abc.abstractmethod
    async def release_lock(self, name: str, owner: str) -> bool:
        """Release only when held by ``owner``; True when released."""

    # pub/sub -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def publish(self, channel: str, message: Doc) -> None: ...

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> Subscription: ...

    # heartbeats off the event loop -------------------------------------------------------
    def beat_writer(self) -> BeatWriter | None:
        """A writer for a heartbeat thread, on a connection of its own; None when the store has
        none (the embedded store: one node, whose own liveness nobody else reads)."""
        return None
