"""Stopping without waiting forever, and without cutting a close short.

* An aiortc RTCPeerConnection whose transports never finish closing, or a task that never ends
  (both seen at teardown under load), must not hold up a peer, an agent or a node that stops:
  every wait here is bounded.
* A close that has begun must finish even when the task doing it is cancelled (a stop cancels
  the agent's owner task while it closes its peer). aiortc stops its non-daemon decoder threads
  inside ``RTCPeerConnection.close``; cut short, a 'video-decoder' thread waits in ``Queue.get``
  forever and the interpreter waits for it at exit. So a close runs as its own task
  (``finishing``), shared by every caller; a cancelled caller leaves it running, and whoever
  stops last (the agent, the node) waits for the ones still running (``finish_all``).
* A process asked to stop exits within its bound whatever state it is in (``exit_deadline``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any, Awaitable, Callable, Hashable, Iterable

log = logging.getLogger("mcu.peer.bounded_stop")
CLOSE_TIMEOUT_S = 5.0
FORCED_EXIT = "forced exit"  # in the one line a forced exit writes (tests look for it)

_finishing: dict[Hashable, asyncio.Task] = {}  # object being closed -> the task closing it


def finishing(key: Hashable, close: Callable[[], Awaitable[Any]], what: str) -> asyncio.Task:
    """The one task running ``close()`` for ``key``: started by the first caller, shared by the
    later ones (so a second caller waits for the first close instead of returning early)."""
    task = _finishing.get(key)
    if task is None:
        task = asyncio.get_running_loop().create_task(_quietly(close, what), name=f"closing {what}")
        _finishing[key] = task
        task.add_done_callback(lambda _t: _finishing.pop(key, None))
    return task


async def _quietly(close: Callable[[], Awaitable[Any]], what: str) -> None:
    try:
        await close()
    except Exception as exc:  # aiortc teardown quirks (a second close, a transport already gone)
        log.debug("closing %s: %s", what, exc)


async def wait_bounded(task: asyncio.Task, what: str, timeout: float = CLOSE_TIMEOUT_S) -> bool:
    """Wait for ``task`` at most ``timeout`` s; True when it finished. Neither the timeout nor a
    cancellation of the caller cancels ``task`` (asyncio.wait never does)."""
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        log.warning("%s did not finish within %g s; left running", what, timeout)
    return bool(done)


async def close_pc(pc: Any, what: str) -> None:
    """Close an RTCPeerConnection, waiting at most CLOSE_TIMEOUT_S; the close itself runs on."""
    await wait_bounded(
        finishing(pc, pc.close, f"the peer connection of {what}"), f"closing the peer connection of {what}"
    )


async def finish_all(timeout: float = CLOSE_TIMEOUT_S) -> int:
    """Wait (bounded) for every close still running, e.g. one whose caller was cancelled; call it
    last in a stop, before the event loop ends (asyncio.run cancels what is left). Returns how
    many did not finish."""
    loop = asyncio.get_running_loop()
    left = [t for t in _finishing.values() if not t.done() and t.get_loop() is loop]
    if not left:
        return 0
    _, pending = await asyncio.wait(left, timeout=timeout)
    if pending:
        log.warning(
            "%d close(s) did not finish within %g s: %s",
            len(pending),
            timeout,
            ", ".join(t.get_name() for t in pending),
        )
    return len(pending)


async def cancel_and_wait(tasks: Iterable[asyncio.Task | None], what: str) -> None:
    """Cancel ``tasks`` and wait for them, but not forever: on Python 3.11 a task can lose its
    cancellation (a wait_for whose inner future finished at the same moment) and run on."""
    pending = [t for t in tasks if t is not None]
    for task in pending:
        task.cancel()
    if pending:
        _, left = await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
        if left:
            log.warning("%d task(s) of %s did not stop within %g s", len(left), what, CLOSE_TIMEOUT_S)


_deadline: threading.Timer | None = None


def exit_deadline(seconds: float, code: int, what: str) -> None:
    """Last resort, armed when a process is asked to stop: if it is still alive ``seconds`` later
    (a stop stuck somewhere, or the interpreter waiting at exit for a non-daemon thread), write one
    line naming the threads still running and exit with ``code`` at once. Armed once; the timer
    is a daemon thread, so a process that exits in time is not held up by it."""
    global _deadline
    if _deadline is not None:
        return

    def fire() -> None:
        me = threading.current_thread()
        stuck = [
            t.name
            for t in threading.enumerate()
            if t is not me and t.is_alive() and (t is threading.main_thread() or not t.daemon)
        ]
        line = (
            f"{what}: {FORCED_EXIT} {seconds:g} s after the stop request; threads still running: "
            f"{', '.join(stuck) or 'none'}\n"
        )
        try:
            os.write(2, line.encode("utf-8", "replace"))  # not logging: its lock may be held by a stuck thread
        finally:
            os._exit(code)

    _deadline = threading.Timer(seconds, fire)
    _deadline.name = "exit-deadline"
    _deadline.daemon = True
    _deadline.start()
