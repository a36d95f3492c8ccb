"""Fixtures of the SIP tests: headless baresip room systems (tests/support/baresip.py), always stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from tests.support.baresip import Baresip, require_baresip


@pytest.fixture
async def baresips(tmp_path) -> AsyncIterator[Callable[..., Baresip]]:
    """``make(name, **options)`` -> a Baresip configured in its own directory (start it yourself);
    every one made is stopped at teardown, together, whatever the test did."""
    require_baresip()
    made: list[Baresip] = []

    def make(name: str = "room", **options) -> Baresip:
        room = Baresip(tmp_path / f"baresip-{name}-{len(made)}", user=name, **options)
        made.append(room)
        return room

    yield make
    await asyncio.gather(*(room.stop() for room in made), return_exceptions=True)
