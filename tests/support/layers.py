"""Which test layer a test belongs to: ``browser``, ``integration`` or ``unit`` (README, "Tests").

- browser: everything under tests/web, and any test that drives a browser (the ``browser`` or
  ``page`` fixture);
- integration: a test that starts a server, a media node, a real WebRTC peer, a Redis server or a
  process, itself or through a fixture or helper it uses;
- integration also: tests/fuzz, whose tests send thousands of inputs each (seconds per test);
- unit: the rest; they run in seconds in all.

"Starts" is read from the code, not from a list of fixture names: the test function, the fixtures
it uses and every function or class of tests/ they call (followed through their globals) are
searched for the objects below. A marker written on a test (``pytest.mark.integration``, or on a
fixture parameter as ``pytest.param("redis", marks=pytest.mark.integration)``) wins.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import subprocess
import textwrap
import types
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp.test_utils
from aiohttp import web
from aiortc import RTCPeerConnection

from endpoints.agent import Agent
from mcu.node import LocalMediaNode
from signaling.guard.connection_limits import GuardedSite

LAYERS = ("unit", "integration", "browser")
TESTS = Path(__file__).resolve().parent.parent
BROWSER_FIXTURES = frozenset({"browser", "page"})

# What a unit test never touches: servers, media nodes, WebRTC peers, processes (RedisServer and
# the process helpers are found through the subprocess module they use).
STARTERS: tuple[Any, ...] = (
    web.AppRunner,
    web.TCPSite,
    aiohttp.test_utils.TestServer,
    GuardedSite,
    LocalMediaNode,
    RTCPeerConnection,
    Agent,
    subprocess,
    asyncio.create_subprocess_exec,
    asyncio.create_subprocess_shell,
    asyncio.start_server,
)


def layer_of(item: Any) -> str:
    """The layer of a collected pytest item."""
    explicit = [mark.name for mark in item.iter_markers() if mark.name in LAYERS]
    if explicit:
        return max(explicit, key=LAYERS.index)  # the heaviest one written
    path = Path(str(item.path)).resolve()
    if path.is_relative_to(TESTS / "web") or BROWSER_FIXTURES & set(item.fixturenames):
        return "browser"
    if path.is_relative_to(TESTS / "fuzz"):
        return "integration"
    functions = [getattr(item, "function", None)]
    for name in item.fixturenames:
        functions.extend(fixture.func for fixture in item._fixtureinfo.name2fixturedefs.get(name, ()))
    return "integration" if any(_starts_something(f) for f in functions if f is not None) else "unit"


@cache
def _starts_something(code: Any) -> bool:
    """Whether ``code`` names a starter, directly or through the functions and classes of tests/
    that it names (depth first, each visited once)."""
    seen: set[int] = set()
    pending = [code]
    while pending:
        current = inspect.unwrap(pending.pop())
        if id(current) in seen or not _in_tests(current):
            continue
        seen.add(id(current))
        for obj in _named_objects(current):
            if any(obj is starter for starter in STARTERS):
                return True
            if isinstance(obj, (types.FunctionType, type)):
                pending.append(obj)
    return False


def _in_tests(obj: Any) -> bool:
    try:
        source_file = inspect.getsourcefile(obj)
    except TypeError:  # a builtin or an instance
        return False
    return source_file is not None and Path(source_file).resolve().is_relative_to(TESTS)


def _named_objects(code: Any) -> list[Any]:
    """The objects that ``code``'s names and ``module.attribute`` references resolve to."""
    scope = _globals_of(code)
    found = []
    for node in ast.walk(_syntax(code)):
        if isinstance(node, ast.Name) and node.id in scope:
            found.append(scope[node.id])
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = scope.get(node.value.id)
            if isinstance(owner, (types.ModuleType, type)) and hasattr(owner, node.attr):
                found.append(getattr(owner, node.attr))
    return found


def _globals_of(code: Any) -> dict[str, Any]:
    if isinstance(code, types.FunctionType):
        return code.__globals__
    return vars(inspect.getmodule(code))


@cache
def _syntax(code: Any) -> ast.AST:
    return ast.parse(textwrap.dedent(inspect.getsource(code)))
