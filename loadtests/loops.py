"""The event loop a benchmark runs on: ``--loop uvloop|asyncio``, uvloop by default.

``giaoban serve`` runs uvloop, so a benchmark measures that loop unless told ``--loop asyncio``
(issue #12, item 6). A benchmark adds the option with :func:`add_option`, runs its coroutine
with :func:`run`, passes the name on to the servers it starts that take ``--loop``, and records
:func:`running` (the loop that actually ran) in its table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

LOOPS = ("uvloop", "asyncio")
DEFAULT = "uvloop"

T = TypeVar("T")


def add_option(parser: argparse.ArgumentParser, what: str = "this benchmark") -> None:
    """``--loop`` with the choices and the default every benchmark shares."""
    parser.add_argument(
        "--loop", choices=LOOPS, default=DEFAULT, help=f"event loop of {what} (default {DEFAULT}, as giaoban serve)"
    )


def factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A function that makes a new loop of that kind."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    if name == "asyncio":
        return asyncio.new_event_loop
    raise ValueError(f"unknown event loop {name!r} (one of {', '.join(LOOPS)})")


def run(main: Coroutine[Any, Any, T], name: str) -> T:
    """``asyncio.run(main)`` on a new loop of that kind."""
    with asyncio.Runner(loop_factory=factory(name)) as runner:
        return runner.run(main)


def running() -> str:
    """The kind of the running loop, read from the loop itself: ``uvloop`` or ``asyncio``."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
