"""A peer's owner task: its operations run one at a time, in the order they came.

Every SDP operation of a ``LocalPeer`` (client offer, answer, ICE candidate, server offer) and
every notification to its client runs in one task fed by a bounded queue, so negotiations never
interleave. Overflow policy: a new operation is rejected with ``PeerBusy``; droppable ones
(speaker notifications) are dropped once the queue is half full, so that a slow client never
makes its own SDP operations fail.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from mcu.peer.errors import PeerBusy, PeerClosed

log = logging.getLogger("mcu.peer.owner_task")

OPS_QUEUE_SIZE = 32

Operation = Callable[[], Awaitable[Any]]


class OwnerTask:
    def __init__(self, endpoint_id: str) -> None:
        self.endpoint_id = endpoint_id  # whose peer it serves (for messages)
        self.dropped_notifications = 0
        self._ops: asyncio.Queue[tuple[Operation, asyncio.Future[Any]]] = asyncio.Queue(OPS_QUEUE_SIZE)
        self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def full(self) -> bool:
        return self._ops.full()

    async def submit(self, op: Operation) -> Any:
        """Run ``op`` in turn and return its result (or raise its exception)."""
        fut = asyncio.get_running_loop().create_future()
        try:
            self._ops.put_nowait((op, fut))
        except asyncio.QueueFull:
            raise PeerBusy(f"peer {self.endpoint_id}: too many pending operations") from None
        return await fut

    def post(self, op: Operation, droppable: bool = False) -> None:
        """Queue an operation nobody waits for; a failure is logged."""
        if droppable and self._ops.qsize() >= OPS_QUEUE_SIZE // 2:
            self.dropped_notifications += 1
            return
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        try:
            self._ops.put_nowait((op, fut))
        except asyncio.QueueFull:
            fut.set_exception(PeerBusy("operation queue full"))

    async def stop(self) -> None:
        """End the task (an operation running is cancelled) and fail what still waits."""
        self._task.cancel()
        try:
            await self._task
        except BaseException:
            pass
        while not self._ops.empty():
            _, fut = self._ops.get_nowait()
            if not fut.done():
                fut.set_exception(PeerClosed("peer closed"))

    async def _run(self) -> None:
        while True:
            op, fut = await self._ops.get()
            if fut.done():
                continue
            try:
                result = await op()
            except asyncio.CancelledError:  # the peer is closing (a newer peer of its id replaced it)
                if not fut.done():  # the caller gets an error it can answer with, not a cancellation
                    fut.set_exception(PeerClosed(f"peer {self.endpoint_id} was closed during this operation"))
                raise
            except Exception as exc:  # handed to the caller
                if not fut.done():
                    fut.set_exception(exc)
            else:
                if not fut.done():
                    fut.set_result(result)


def _consume(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled() and fut.exception() is not None:
        log.warning("media peer operation failed: %s", fut.exception())
