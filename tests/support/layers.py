"""Test layers (README, "Tests"): which layer a test is in, and the guard that keeps unit tests honest.

A test's layer is, in this order:

1. the layer marker written on it, its class or its module (``pytestmark = pytest.mark.integration``,
   or ``pytest.param(..., marks=pytest.mark.integration)``); the heaviest wins if several are;
2. ``browser`` for everything under tests/web, ``integration`` for everything under tests/fuzz;
3. ``unit`` otherwise.

A unit test starts nothing: while one runs, :func:`start_nothing` fails it if it binds or connects a
socket, opens a server or a datagram endpoint, or starts a process. The failure names what it did;
the fix is to mark the test (or its module) integration.
"""

from __future__ import annotations

import asyncio
import ctypes.util
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvloop

LAYERS = ("unit", "integration", "browser")  # lightest first
TESTS = Path(__file__).resolve().parent.parent
DIRECTORY_LAYERS = {TESTS / "web": "browser", TESTS / "fuzz": "integration"}

# What a unit test must not call. The event loop methods are patched on both loops the tests run on:
# uvloop's are its own (C), not asyncio's, and do not go through socket.socket.
LOOP_METHODS = (
    "create_server",
    "create_connection",
    "create_datagram_endpoint",
    "create_unix_server",
    "create_unix_connection",
    "subprocess_exec",
    "subprocess_shell",
)
SOCKET_METHODS = ("bind", "connect", "connect_ex")


def layer_of(item: pytest.Item) -> str:
    """The layer of a collected test."""
    written = [mark.name for mark in item.iter_markers() if mark.name in LAYERS]
    if written:
        return max(written, key=LAYERS.index)
    path = Path(item.path).resolve()
    for directory, layer in DIRECTORY_LAYERS.items():
        if path.is_relative_to(directory):
            return layer
    return "unit"


class StartedSomething(AssertionError):
    """A unit test started a server, a connection or a process."""


@contextmanager
def start_nothing(test_id: str) -> Iterator[list[str]]:
    """While inside, a socket bind or connect, a server, a datagram endpoint or a process raises
    :class:`StartedSomething` naming what ``test_id`` did; the list yielded records each one (for code
    that catches the error). Looking a C library up (``ctypes.util.find_library`` runs ldconfig) is allowed."""
    offences: list[str] = []
    library_lookups = 0

    def forbidden(name: str, original: Callable[..., Any], describe: Callable[..., str]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if library_lookups:
                return original(*args, **kwargs)
            offences.append(f"called {name}({describe(*args, **kwargs)})")
            raise StartedSomething(unit_test_started(test_id, offences[-1]))

        return call

    def find_library(name: str) -> str | None:
        nonlocal library_lookups
        library_lookups += 1
        try:
            return original_find_library(name)
        finally:
            library_lookups -= 1

    original_find_library = ctypes.util.find_library
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ctypes.util, "find_library", find_library)
        for method in SOCKET_METHODS:
            original = getattr(socket.socket, method)
            patch.setattr(
                socket.socket, method, forbidden(f"socket.{method}", original, lambda _, address: repr(address))
            )
        popen = forbidden("subprocess.Popen", subprocess.Popen.__init__, lambda _, argv, *__, **___: repr(argv))
        patch.setattr(subprocess.Popen, "__init__", popen)
        for loop_class in (asyncio.BaseEventLoop, uvloop.Loop):
            for method in LOOP_METHODS:
                original = getattr(loop_class, method)
                patch.setattr(loop_class, method, forbidden(f"loop.{method}", original, lambda *_, **__: "..."))
        yield offences


def unit_test_started(test_id: str, offence: str) -> str:
    return (
        f"{test_id} is a unit test but {offence}. A unit test starts nothing: if it must, mark it integration "
        "(@pytest.mark.integration on it, or pytestmark = pytest.mark.integration in its module)."
    )
