"""Subscription queues shared by both backends, and the in-process broker of the embedded store.

Overflow policy: every subscription owns a bounded queue (``DEFAULT_QUEUE_SIZE`` messages). A
subscriber that falls that far behind loses the *oldest* queued message for each new one; the
loss is counted in ``Subscription.dropped`` and logged once per burst. Publishers never wait
for slow subscribers, so one stuck consumer cannot stall the node.
"""

from __future__ import annotations

import asyncio
import logging
from typing import AsyncIterator, Awaitable, Callable

import signaling.store.codec as codec
from signaling.store.base import Doc, Subscription

log = logging.getLogger("giaoban.store.pubsub")
DEFAULT_QUEUE_SIZE = 1000
_CLOSED = object()  # wakes a waiting get() when the subscription stops


class QueueSubscription(Subscription):
    """A bounded queue of decoded messages; the backend feeds it with ``deliver``."""

    def __init__(
        self, channel: str, on_stop: Callable[["QueueSubscription"], Awaitable[None]], maxsize: int = DEFAULT_QUEUE_SIZE
    ) -> None:
        self.channel = channel
        self.dropped = 0
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=maxsize)
        self._on_stop = on_stop
        self._stopped = False

    @property
    def stopped(self) -> bool:
        return self._stopped

    def deliver(self, message: Doc) -> None:
        """Queue a message without waiting; drops the oldest one when full."""
        if self._stopped:
            return
        self._put_dropping_oldest(message)

    def _put_dropping_oldest(self, item: object) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("subscriber on %r too slow: %d messages dropped", self.channel, self.dropped)
        self._queue.put_nowait(item)

    async def get(self, timeout: float | None = None) -> Doc | None:
        if self._stopped:
            return None
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except asyncio.TimeoutError:
            return None
        if item is _CLOSED:
            return None
        return item  # type: ignore[return-value]

    def __aiter__(self) -> AsyncIterator[Doc]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Doc]:
        while (message := await self.get()) is not None:
            yield message

    def close(self) -> None:
        """Mark stopped and wake waiters, without telling the backend (it is closing us)."""
        if self._stopped:
            return
        self._stopped = True
        while not self._queue.empty():  # unread messages are discarded on stop
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)

    async def stop(self) -> None:
        if self._stopped:
            return
        self.close()
        await self._on_stop(self)


class LocalBroker:
    """Pub/sub inside one process (the embedded store); messages are copied per subscriber."""

    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self._queue_size = queue_size
        self._subs: dict[str, set[QueueSubscription]] = {}

    def subscribe(self, channel: str) -> QueueSubscription:
        sub = QueueSubscription(channel, self._forget, self._queue_size)
        self._subs.setdefault(channel, set()).add(sub)
        return sub

    def publish(self, channel: str, message: Doc) -> None:
        text = codec.encode_doc(message)  # same JSON round trip as Redis: no shared mutable dicts
        for sub in list(self._subs.get(channel, ())):
            sub.deliver(codec.loads(text))

    async def _forget(self, sub: QueueSubscription) -> None:
        subs = self._subs.get(sub.channel)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.channel]

    def close_all(self) -> None:
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()
        self._subs.clear()
