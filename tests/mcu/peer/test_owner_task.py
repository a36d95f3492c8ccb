"""mcu.peer.owner_task: a peer's operations run one at a time in order, a full queue refuses new
ones, notifications give way first, and stopping fails what still waits."""

from __future__ import annotations

import asyncio

import pytest

from mcu.peer.errors import PeerBusy, PeerClosed
from mcu.peer.owner_task import OPS_QUEUE_SIZE, OwnerTask


async def nothing() -> None:
    pass


async def test_operations_run_one_at_a_time_in_order():
    owner = OwnerTask("a")
    running: list[str] = []
    log: list[str] = []

    def op(name: str):
        async def run() -> str:
            running.append(name)
            assert running == [name]  # nothing else is running meanwhile
            await asyncio.sleep(0)
            log.append(name)
            running.remove(name)
            return name

        return run

    results = await asyncio.gather(*(owner.submit(op(n)) for n in "abc"))
    assert results == ["a", "b", "c"] and log == ["a", "b", "c"]
    await owner.stop()


async def test_a_failure_goes_to_its_caller_and_the_next_operation_still_runs():
    owner = OwnerTask("a")

    async def fail() -> None:
        raise ValueError("bad offer")

    async def ok() -> str:
        return "ok"

    with pytest.raises(ValueError, match="bad offer"):
        await owner.submit(fail)
    assert await owner.submit(ok) == "ok"
    await owner.stop()


async def test_a_full_queue_refuses_and_notifications_give_way_at_half():
    owner = OwnerTask("a")
    gate = asyncio.Event()
    started = asyncio.Event()

    async def blocked() -> None:
        started.set()
        await gate.wait()

    owner.post(blocked)
    await started.wait()  # the task runs it: the queue is empty again
    for _ in range(OPS_QUEUE_SIZE // 2):
        owner.post(nothing)
    owner.post(nothing, droppable=True)  # a speaker notification
    assert owner.dropped_notifications == 1
    for _ in range(OPS_QUEUE_SIZE // 2):
        owner.post(nothing)
    assert owner.full
    with pytest.raises(PeerBusy, match="peer a: too many pending operations"):
        await owner.submit(nothing)
    gate.set()
    await owner.stop()


async def test_stop_fails_the_running_and_the_waiting_operations():
    owner = OwnerTask("a")
    gate, started = asyncio.Event(), asyncio.Event()

    async def blocked() -> None:
        started.set()
        await gate.wait()

    running = asyncio.ensure_future(owner.submit(blocked))
    waiting = asyncio.ensure_future(owner.submit(blocked))
    await started.wait()
    await owner.stop()
    with pytest.raises(PeerClosed, match="closed during this operation"):
        await running
    with pytest.raises(PeerClosed, match="peer closed"):
        await waiting
