"""The ``incr_ephemeral`` contract (failed-login counters), run against both backends.

The audit saw 40 parallel wrong logins all counted as one: a read-then-write counter loses
increments. These tests race many increments, from two store objects (two nodes / two
processes on one file), and require that none is lost.
"""

from __future__ import annotations

import asyncio

import pytest

from signaling.store import Store


async def test_counts_and_reads_back_as_a_document(store: Store) -> None:
    assert await store.incr_ephemeral("login-failures", "operator:admin", 30) == 1
    assert await store.incr_ephemeral("login-failures", "operator:admin", 30) == 2
    assert await store.incr_ephemeral("login-failures", "operator:admin", 30, by=-1) == 1
    assert await store.get_ephemeral("login-failures", "operator:admin") == {"count": 1}
    assert await store.list_ephemeral("login-failures") == [("operator:admin", {"count": 1})]
    assert await store.incr_ephemeral("login-failures", "other", 30, by=5) == 5


async def test_parallel_increments_from_two_stores_are_never_lost(store_pair: tuple[Store, Store]) -> None:
    a, b = store_pair
    results = await asyncio.gather(
        *(s.incr_ephemeral("login-failures", "address:10.0.0.1", 30) for _ in range(20) for s in (a, b))
    )
    assert sorted(results) == list(range(1, 41))  # each caller saw its own count
    assert await a.get_ephemeral("login-failures", "address:10.0.0.1") == {"count": 40}


async def test_counter_expires_and_restarts(store: Store) -> None:
    await store.incr_ephemeral("login-failures", "k", 0.3)
    await store.incr_ephemeral("login-failures", "k", 0.3)
    await asyncio.sleep(0.5)
    assert await store.get_ephemeral("login-failures", "k") is None
    assert await store.list_ephemeral("login-failures") == []
    assert await store.incr_ephemeral("login-failures", "k", 30) == 1


async def test_a_document_that_is_no_counter_restarts_from_zero(store: Store) -> None:
    await store.put_ephemeral("login-failures", "k", {"note": "not a counter"}, 30)
    assert await store.incr_ephemeral("login-failures", "k", 30) == 1


async def test_bad_arguments_are_refused_and_store_nothing(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.incr_ephemeral("login-failures", "k", 0)
    with pytest.raises(TypeError):
        await store.incr_ephemeral("login-failures", "k", 30, by=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.incr_ephemeral("login-failures", "bad\x00key", 30)
    assert await store.list_ephemeral("login-failures") == []
