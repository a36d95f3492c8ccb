"""Every subscription of a RedisStore on one shared Redis pub/sub connection.

A Redis connection in subscribe mode serves nothing else, so a connection per subscription took
one connection of the request pool for as long as the subscriber lived: under a join herd (1,681
endpoints on 2 nodes, #18) live subscriptions emptied the pool and requests timed out. Here one
connection, from a client of its own, carries every channel of the process: SUBSCRIBE when the
first local subscriber of a channel arrives, UNSUBSCRIBE when its last one leaves, and one reader
task hands each message to the channel's local subscriptions (their bounded queues,
``pubsub_local``). A process needs one extra Redis connection whatever the number of subscribers.

If the connection is lost, every subscription ends (its reader sees the end, as before) and the
next ``subscribe`` opens a fresh connection.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

import signaling.store.codec as codec
from signaling.store.base import StoreError
from signaling.store.pubsub_local import QueueSubscription

log = logging.getLogger("giaoban.store.redis")
SUBSCRIBE_CONFIRM_S = 10.0


class PubSubHub:
    """One PubSub connection, one reader task, local subscriptions by Redis channel."""

    def __init__(self, client: aioredis.Redis, where: str, queue_size: int) -> None:
        self._client, self._where, self._queue_size = client, where, queue_size
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._open_lock = asyncio.Lock()
        self._subs: dict[str, set[_HubSubscription]] = {}  # Redis channel -> local subscriptions
        # Redis channel -> resolved once Redis confirmed the SUBSCRIBE (then messages flow)
        self._ready: dict[str, asyncio.Future[None]] = {}
        # Redis channel -> SUBSCRIBEs sent and not yet confirmed: after a quick leave and come back
        # (SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE) the first confirmation must not count for the second
        self._unconfirmed: dict[str, int] = {}
        self._stopped = False

    @property
    def channels(self) -> int:
        return len(self._subs)

    async def subscribe(self, redis_channel: str, channel: str) -> QueueSubscription:
        if self._stopped:
            raise StoreError(f"Redis at {self._where}: the store is stopped")
        pubsub = await self._open()
        sub = _HubSubscription(channel, redis_channel, self._leave, self._queue_size)
        # registered before SUBSCRIBE: a message that comes right after the confirmation is kept
        self._subs.setdefault(redis_channel, set()).add(sub)
        ready = self._ready.get(redis_channel)
        try:
            if ready is None:
                ready = self._ready[redis_channel] = asyncio.get_running_loop().create_future()
                self._unconfirmed[redis_channel] = self._unconfirmed.get(redis_channel, 0) + 1
                await pubsub.subscribe(redis_channel)
            # Wait for Redis to confirm, so that anything published after subscribe() returns
            # (from any connection) is delivered.
            await asyncio.wait_for(asyncio.shield(ready), SUBSCRIBE_CONFIRM_S)
        except BaseException as exc:
            await self._leave(sub)
            if isinstance(exc, (RedisError, OSError, asyncio.TimeoutError)):
                raise StoreError(f"Redis at {self._where} failed to subscribe {channel!r}: {exc!r}") from exc
            raise
        return sub

    async def _open(self) -> Any:
        async with self._open_lock:
            if self._pubsub is None:
                pubsub = self._client.pubsub()
                try:
                    await pubsub.connect()  # type: ignore[no-untyped-call]
                except (RedisError, OSError) as exc:
                    await pubsub.aclose()
                    raise StoreError(f"Redis at {self._where} failed: {exc}") from exc
                self._pubsub = pubsub
                self._reader = asyncio.create_task(self._read(pubsub), name="redis-pubsub")
            return self._pubsub

    async def _read(self, pubsub: Any) -> None:
        try:
            while True:
                msg = await pubsub.get_message(timeout=None)
                if msg is not None:
                    self._dispatch(msg)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection lost: end every subscription so its readers notice
            log.error("pub/sub connection to Redis at %s lost: %s", self._where, exc)
            await self._reset(exc)

    def _dispatch(self, msg: dict[str, Any]) -> None:
        kind, redis_channel = msg["type"], msg["channel"]
        if kind == "subscribe":
            left = self._unconfirmed.pop(redis_channel, 1) - 1
            if left > 0:
                self._unconfirmed[redis_channel] = left
                return
            ready = self._ready.get(redis_channel)
            if ready is not None and not ready.done():
                ready.set_result(None)
        elif kind == "message":
            subs = self._subs.get(redis_channel, ())
            for sub in list(subs):
                try:  # decoded once per subscriber: no dict is shared between them
                    sub.deliver(codec.loads(msg["data"]))
                except StoreError as exc:  # a foreign publisher sent non-JSON: skip it
                    log.warning("ignoring message on %r: %s", sub.channel, exc)
                    break

    async def _leave(self, sub: QueueSubscription) -> None:
        assert isinstance(sub, _HubSubscription)
        subs = self._subs.get(sub.redis_channel)
        if subs is None or sub not in subs:
            return
        subs.discard(sub)
        if subs:
            return
        del self._subs[sub.redis_channel]
        ready = self._ready.pop(sub.redis_channel, None)
        if ready is not None and not ready.done():
            ready.cancel()
        if self._pubsub is not None and not self._stopped:
            try:
                await self._pubsub.unsubscribe(sub.redis_channel)
            except (RedisError, OSError) as exc:  # the reader sees the lost connection and resets
                log.warning("unsubscribe from %r failed: %s", sub.redis_channel, exc)

    async def _reset(self, exc: BaseException | None) -> None:
        """Close every subscription and the connection; the next subscribe opens a new one."""
        pubsub, self._pubsub, reader, self._reader = self._pubsub, None, self._reader, None
        subs = [s for group in self._subs.values() for s in group]
        self._subs.clear()
        for ready in self._ready.values():
            if not ready.done():
                ready.set_exception(exc or StoreError("stopped"))
                ready.exception()  # retrieved: no "never retrieved" warning when nobody waits
        self._ready.clear()
        self._unconfirmed.clear()
        for sub in subs:
            sub.close()
        if reader is not None and reader is not asyncio.current_task():
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        if pubsub is not None:
            try:
                await pubsub.aclose()
            except (RedisError, OSError, RuntimeError):
                pass  # the connection is going away either way

    async def stop(self) -> None:
        self._stopped = True
        await self._reset(None)
        await self._client.aclose()
        await self._client.connection_pool.disconnect()


class _HubSubscription(QueueSubscription):
    def __init__(self, channel: str, redis_channel: str, on_stop: Any, queue_size: int) -> None:
        super().__init__(channel, on_stop, queue_size)
        self.redis_channel = redis_channel
