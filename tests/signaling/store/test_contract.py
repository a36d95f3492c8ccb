"""The Store contract, run against every backend (SQLite file, real redis-server)."""

from __future__ import annotations

import asyncio

import pytest

from signaling.store import Store, StoreError

VN = {"name": "Mèo Vạc", "tier": "xã", "note": "Ủy ban nhân dân 🇻🇳"}


# documents -----------------------------------------------------------------------------
async def test_get_missing_is_none(store: Store) -> None:
    assert await store.get("meetings", "nope") is None


async def test_put_get_overwrite(store: Store) -> None:
    await store.put("meetings", "m1", {"title": "Giao ban", "n": 1})
    assert await store.get("meetings", "m1") == {"title": "Giao ban", "n": 1}
    await store.put("meetings", "m1", {"title": "Giao ban tuần", "n": 2, "tags": [1, None, True]})
    assert await store.get("meetings", "m1") == {"title": "Giao ban tuần", "n": 2, "tags": [1, None, True]}
    assert await store.get("other", "m1") is None  # collections are separate


async def test_unicode_keys_and_values(store: Store) -> None:
    await store.put("endpoints", "Mèo Vạc", VN)
    assert await store.get("endpoints", "Mèo Vạc") == VN
    assert await store.list("endpoints") == [("Mèo Vạc", VN)]


async def test_returned_docs_are_copies(store: Store) -> None:
    doc = {"a": [1]}
    await store.put("c", "k", doc)
    doc["a"].append(2)
    got = await store.get("c", "k")
    assert got == {"a": [1]}
    got["a"].append(3)
    assert await store.get("c", "k") == {"a": [1]}


async def test_list_sorted_by_key(store: Store) -> None:
    for key in ["xa-2", "tinh", "huyen-10", "huyen-2", "Zeta"]:
        await store.put("dir", key, {"k": key})
    await store.put("elsewhere", "aaa", {})
    listed = await store.list("dir")
    assert [k for k, _ in listed] == ["Zeta", "huyen-10", "huyen-2", "tinh", "xa-2"]
    assert all(doc == {"k": k} for k, doc in listed)
    assert await store.list("empty") == []


async def test_put_if_absent(store: Store) -> None:
    assert await store.put_if_absent("secrets", "token-key", {"v": 1}) is True
    assert await store.put_if_absent("secrets", "token-key", {"v": 2}) is False
    assert await store.get("secrets", "token-key") == {"v": 1}


async def test_compare_and_put(store: Store) -> None:
    assert await store.compare_and_put("m", "k", None, {"state": "scheduled"}) is True
    assert await store.compare_and_put("m", "k", None, {"state": "other"}) is False
    assert await store.compare_and_put("m", "k", {"state": "wrong"}, {"state": "x"}) is False
    assert await store.get("m", "k") == {"state": "scheduled"}
    # key order in the expected dict does not matter: equality is on the JSON value
    await store.put("m", "k2", {"a": 1, "b": "Mèo Vạc"})
    assert await store.compare_and_put("m", "k2", {"b": "Mèo Vạc", "a": 1}, {"a": 2}) is True
    assert await store.get("m", "k2") == {"a": 2}
    assert await store.compare_and_put("m", "k", {"state": "scheduled"}, {"state": "open"}) is True
    assert await store.get("m", "k") == {"state": "open"}
    assert await store.compare_and_put("m", "absent", {"state": "open"}, {"x": 1}) is False
    assert await store.get("m", "absent") is None


async def test_delete(store: Store) -> None:
    await store.put("c", "k", {"v": 1})
    assert await store.delete("c", "k") is True
    assert await store.get("c", "k") is None
    assert await store.delete("c", "k") is False
    assert await store.list("c") == []


async def test_bad_names_and_values_rejected(store: Store) -> None:
    with pytest.raises(ValueError):
        await store.put("", "k", {})
    with pytest.raises(ValueError):
        await store.get("c", "a\x00b")
    with pytest.raises(TypeError):
        await store.put("c", "k", ["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        await store.put_ephemeral("c", "k", {}, 0)
    assert await store.list("c") == []


# logs ----------------------------------------------------------------------------------
async def test_logs_append_and_read(store: Store) -> None:
    assert await store.read_log("attendance:m1") == []
    for i in range(5):
        assert await store.append("attendance:m1", {"i": i, "who": "Mèo Vạc"}) == i + 1
    assert await store.append("attendance:m2", {"i": 99}) == 1
    assert [e["i"] for e in await store.read_log("attendance:m1")] == [0, 1, 2, 3, 4]
    assert [e["i"] for e in await store.read_log("attendance:m1", start=3)] == [3, 4]
    assert await store.read_log("attendance:m1", start=5) == []
    assert await store.read_log("attendance:m2") == [{"i": 99}]


# ephemeral -----------------------------------------------------------------------------
async def test_ephemeral_expires(store: Store) -> None:
    await store.put_ephemeral("presence", "ep1", {"node": "n1"}, 0.3)
    await store.put_ephemeral("presence", "ep0", {"node": "n0"}, 30)
    assert await store.get_ephemeral("presence", "ep1") == {"node": "n1"}
    assert await store.list_ephemeral("presence") == [("ep0", {"node": "n0"}), ("ep1", {"node": "n1"})]
    await asyncio.sleep(0.45)
    assert await store.get_ephemeral("presence", "ep1") is None
    assert await store.list_ephemeral("presence") == [("ep0", {"node": "n0"})]
    assert await store.delete_ephemeral("presence", "ep1") is False  # expired: nothing to delete


async def test_ephemeral_refresh_extends(store: Store) -> None:
    await store.put_ephemeral("presence", "ep", {"seen": 1}, 0.3)
    await asyncio.sleep(0.2)
    await store.put_ephemeral("presence", "ep", {"seen": 2}, 0.3)
    await asyncio.sleep(0.2)  # 0.4 s after the first put: alive only thanks to the refresh
    assert await store.get_ephemeral("presence", "ep") == {"seen": 2}
    assert await store.list_ephemeral("presence") == [("ep", {"seen": 2})]
    await asyncio.sleep(0.25)
    assert await store.get_ephemeral("presence", "ep") is None


async def test_ephemeral_delete_and_separation(store: Store) -> None:
    await store.put_ephemeral("presence", "ep", {"v": 1}, 30)
    await store.put_ephemeral("a:b", "c", {"v": "ab/c"}, 30)
    await store.put_ephemeral("a", "b:c", {"v": "a/bc"}, 30)
    assert await store.get("presence", "ep") is None  # ephemeral and durable docs are separate
    assert await store.get_ephemeral("a:b", "c") == {"v": "ab/c"}
    assert await store.get_ephemeral("a", "b:c") == {"v": "a/bc"}
    assert await store.delete_ephemeral("presence", "ep") is True
    assert await store.get_ephemeral("presence", "ep") is None
    assert await store.list_ephemeral("presence") == []


# locks ---------------------------------------------------------------------------------
async def test_locks(store: Store) -> None:
    assert await store.acquire_lock("open:m1", "node-a", 5) is True
    assert await store.acquire_lock("open:m1", "node-b", 5) is False
    assert await store.acquire_lock("open:m1", "node-a", 5) is True  # same owner refreshes
    assert await store.release_lock("open:m1", "node-b") is False  # wrong owner
    assert await store.acquire_lock("open:m1", "node-b", 5) is False  # still held by node-a
    assert await store.acquire_lock("open:m2", "node-b", 5) is True  # other names are free
    assert await store.release_lock("open:m1", "node-a") is True
    assert await store.release_lock("open:m1", "node-a") is False
    assert await store.acquire_lock("open:m1", "node-b", 5) is True


async def test_lock_expiry_frees_it(store: Store) -> None:
    assert await store.acquire_lock("sched", "node-a", 0.3) is True
    await asyncio.sleep(0.2)
    assert await store.acquire_lock("sched", "node-a", 0.3) is True  # refresh extends the ttl
    await asyncio.sleep(0.2)
    assert await store.acquire_lock("sched", "node-b", 0.3) is False
    await asyncio.sleep(0.2)
    assert await store.release_lock("sched", "node-a") is False  # expired: not held any more
    assert await store.acquire_lock("sched", "node-b", 5) is True


# pub/sub -------------------------------------------------------------------------------
async def test_pubsub_two_subscribers_in_order(store: Store) -> None:
    await store.publish("events", {"n": -1})  # before anyone subscribed: lost
    s1 = await store.subscribe("events")
    s2 = await store.subscribe("events")
    other = await store.subscribe("other")
    for n in range(20):
        await store.publish("events", {"n": n, "where": "Mèo Vạc"})
    for sub in (s1, s2):
        got = [await sub.get(timeout=2) for _ in range(20)]
        assert [m["n"] for m in got] == list(range(20))
        assert got[0]["where"] == "Mèo Vạc"
        assert await sub.get(timeout=0.1) is None
    assert await other.get(timeout=0.1) is None
    await s1.stop()
    await s1.stop()  # idempotent
    assert await s1.get(timeout=0.1) is None
    await store.publish("events", {"n": 100})
    assert await s2.get(timeout=2) == {"n": 100}


async def test_subscription_iterates_until_stopped(store: Store) -> None:
    sub = await store.subscribe("events")
    received: list[int] = []

    async def consume() -> None:
        async for msg in sub:
            received.append(msg["n"])

    task = asyncio.create_task(consume())
    for n in range(3):
        await store.publish("events", {"n": n})
    for _ in range(100):
        if len(received) == 3:
            break
        await asyncio.sleep(0.02)
    await sub.stop()
    await asyncio.wait_for(task, 2)  # the iteration ends on stop
    assert received == [0, 1, 2]


async def test_store_stop_ends_subscriptions(store: Store) -> None:
    sub = await store.subscribe("events")
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0.05)
    await store.stop()
    assert await asyncio.wait_for(waiter, 2) is None


# lifecycle -----------------------------------------------------------------------------
async def test_calls_after_stop_raise_store_error(store: Store) -> None:
    await store.put("c", "k", {"v": 1})
    await store.stop()
    await store.stop()  # idempotent
    calls = [
        store.get("c", "k"),
        store.put("c", "k", {}),
        store.put_if_absent("c", "k", {}),
        store.compare_and_put("c", "k", None, {}),
        store.delete("c", "k"),
        store.list("c"),
        store.append("l", {}),
        store.read_log("l"),
        store.put_ephemeral("c", "k", {}, 1),
        store.get_ephemeral("c", "k"),
        store.delete_ephemeral("c", "k"),
        store.list_ephemeral("c"),
        store.acquire_lock("l", "o", 1),
        store.release_lock("l", "o"),
        store.publish("ch", {}),
        store.subscribe("ch"),
    ]
    for call in calls:
        with pytest.raises(StoreError, match="stopped"):
            await call


# concurrency ---------------------------------------------------------------------------
async def test_concurrent_put_if_absent_exactly_one_wins(store: Store) -> None:
    results = await asyncio.gather(*(store.put_if_absent("race", "k", {"who": i}) for i in range(50)))
    assert results.count(True) == 1
    assert await store.get("race", "k") == {"who": results.index(True)}


async def test_concurrent_compare_and_put_counter(store: Store) -> None:
    await store.put("ctr", "k", {"n": 0})

    async def bump() -> None:
        while True:
            cur = await store.get("ctr", "k")
            if await store.compare_and_put("ctr", "k", cur, {"n": cur["n"] + 1}):
                return

    await asyncio.gather(*(bump() for _ in range(20)))
    assert await store.get("ctr", "k") == {"n": 20}  # no lost update


async def test_two_instances_share_state(store_pair: tuple[Store, Store]) -> None:
    a, b = store_pair
    results = await asyncio.gather(*(s.put_if_absent("race", "k", {"i": i}) for i, s in enumerate([a, b] * 10)))
    assert results.count(True) == 1
    assert await a.acquire_lock("open:m1", "node-a", 5) is True
    assert await b.acquire_lock("open:m1", "node-b", 5) is False
    await a.append("log", {"from": "a"})
    assert await b.append("log", {"from": "b"}) == 2
    assert await b.read_log("log") == [{"from": "a"}, {"from": "b"}]
