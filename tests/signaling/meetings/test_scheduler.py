"""The scheduler driven by an injected clock across a simulated week, on the real SQLite store."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from signaling.meetings.model import VN
from signaling.meetings.scheduler import Scheduler
from signaling.meetings.service import MeetingService
from signaling.store.sqlite_store import SqliteStore
from tests.signaling.meetings.conftest import spec

CHANNEL = "meeting-events"


def local(day: int, h: int, m: int = 0) -> datetime:
    return datetime(2030, 1, day, h, m, tzinfo=VN)


async def briefings(service):
    """The Monday 08:00 provincial briefing and a Monday+Thursday 14:00 Mèo Vạc meeting."""
    weekly = await service.create(
        spec(
            title="Giao ban tuần",
            chair="hg-ubnd",
            invited=["tier:district"],
            start="2030-01-07T08:00",
            duration_minutes=120,
            recurrence="FREQ=WEEKLY;BYDAY=MO",
        )
    )
    twice = await service.create(
        spec(
            title="Họp huyện Mèo Vạc",
            start="2030-01-07T14:00",
            duration_minutes=90,
            recurrence="FREQ=WEEKLY;BYDAY=MO,TH",
        )
    )
    return weekly, twice


async def drain(sub, timeout: float = 0.05) -> list[dict]:
    out = []
    while (msg := await sub.get(timeout)) is not None:
        out.append(msg)
    return out


async def test_a_week_minute_by_minute(service, store, clock, directory):
    weekly, twice = await briefings(service)
    await service.cancel_occurrence(twice.id, f"{twice.id}@20300110T1400")  # Thursday skipped
    sched = Scheduler(store, service, "node-a", clock, publish_channel=CHANNEL)
    sub = await store.subscribe(CHANNEL)
    seen = []
    while clock.now < local(14, 16, 0):  # Sunday 12:00 to the next Monday 16:00
        sent = await sched.tick(clock.now)
        for msg in sent:
            assert await sub.get(1.0) == msg  # what tick reports is what went out on the channel
            seen.append((f"{clock.now:%a %d %H:%M}", msg["type"], msg["occurrence_id"]))
        clock.advance(minutes=1)
    assert await drain(sub) == []
    w, t = weekly.id, twice.id
    assert seen == [
        ("Mon 07 07:50", "meeting_opened", f"{w}@20300107T0800"),
        ("Mon 07 10:00", "meeting_closed", f"{w}@20300107T0800"),
        ("Mon 07 13:50", "meeting_opened", f"{t}@20300107T1400"),
        ("Mon 07 15:30", "meeting_closed", f"{t}@20300107T1400"),
        ("Mon 14 07:50", "meeting_opened", f"{w}@20300114T0800"),
        ("Mon 14 10:00", "meeting_closed", f"{w}@20300114T0800"),
        ("Mon 14 13:50", "meeting_opened", f"{t}@20300114T1400"),
        ("Mon 14 15:30", "meeting_closed", f"{t}@20300114T1400"),
    ]
    states = {o.occurrence_id[-13:]: o.state for o in await service.occurrences(twice.id, local(6, 0), local(15, 0))}
    assert states == {"20300107T1400": "closed", "20300110T1400": "cancelled", "20300114T1400": "closed"}


async def test_message_shapes_and_utc_instants(service, store, clock, directory):
    weekly, _ = await briefings(service)
    sched = Scheduler(store, service, "node-a", clock)
    sub = await store.subscribe(CHANNEL)
    await sched.tick(local(7, 7, 50))
    opened = await sub.get(1.0)
    districts = [ep.id for ep in directory.by_tier("district")]
    assert opened == {
        "type": "meeting_opened",
        "meeting_id": weekly.id,
        "occurrence_id": f"{weekly.id}@20300107T0800",
        "title": "Giao ban tuần",
        "starts_at": "2030-01-07T08:00:00+07:00",
        "ends_at": "2030-01-07T10:00:00+07:00",
        "invited": ["hg-ubnd", *districts],
    }
    assert datetime.fromisoformat(opened["starts_at"]).astimezone(timezone.utc) == datetime(
        2030, 1, 7, 1, 0, tzinfo=timezone.utc
    )
    await sched.tick(local(7, 9, 59))
    assert await drain(sub) == []
    await sched.tick(local(7, 10, 0))
    closed = await sub.get(1.0)
    assert closed == {**opened, "type": "meeting_closed", "reason": "ended"}


async def test_two_schedulers_on_one_store_open_once(service, store, clock):
    weekly, _ = await briefings(service)
    a, b = Scheduler(store, service, "node-a", clock), Scheduler(store, service, "node-b", clock)
    sub = await store.subscribe(CHANNEL)
    for now in (local(7, 7, 50), local(7, 7, 51), local(7, 10, 0), local(7, 10, 1)):
        await asyncio.gather(a.tick(now), b.tick(now), a.tick(now), b.tick(now))
    assert [m["type"] for m in await drain(sub)] == ["meeting_opened", "meeting_closed"]


async def test_two_nodes_with_their_own_store_connections_open_once(service, store, clock, db_path, directory):
    await briefings(service)
    other = SqliteStore(db_path)
    await other.start()
    try:
        other_service = MeetingService(other, directory, clock=clock)
        a, b = Scheduler(store, service, "node-a", clock), Scheduler(other, other_service, "node-b", clock)
        subs = [await store.subscribe(CHANNEL), await other.subscribe(CHANNEL)]
        for now in (local(7, 7, 50), local(7, 10, 0), local(7, 13, 50)):
            await asyncio.gather(a.tick(now), b.tick(now), a.tick(now), b.tick(now))
        got = sorted((m["occurrence_id"][-13:], m["type"]) for m in await drain(subs[0]) + await drain(subs[1]))
        assert got == [
            ("20300107T0800", "meeting_closed"),
            ("20300107T0800", "meeting_opened"),
            ("20300107T1400", "meeting_opened"),
        ]
    finally:
        await other.stop()


async def test_restart_does_not_reopen_and_still_closes(service, store, clock, db_path, directory):
    weekly, _ = await briefings(service)
    await Scheduler(store, service, "node-a", clock).tick(local(7, 7, 50))
    await store.stop()  # the server goes down with the briefing open
    again = SqliteStore(db_path)
    await again.start()
    try:
        sched = Scheduler(again, MeetingService(again, directory, clock=clock), "node-a", clock)
        sub = await again.subscribe(CHANNEL)
        for now in (local(7, 7, 55), local(7, 8, 30), local(7, 9, 59)):
            assert await sched.tick(now) == []
        await sched.tick(local(7, 10, 0))
        [closed] = await drain(sub)
        assert closed["type"] == "meeting_closed" and closed["occurrence_id"] == f"{weekly.id}@20300107T0800"
    finally:
        await again.stop()


async def test_missed_start_opens_at_once_and_ended_while_down_is_closed_silently(service, store, clock):
    weekly, twice = await briefings(service)
    sched = Scheduler(store, service, "node-a", clock)
    sub = await store.subscribe(CHANNEL)
    # down from Sunday until Monday 14:20: the 08:00 briefing ended unseen, the 14:00 meeting is running
    await sched.tick(local(7, 14, 20))
    [opened] = await drain(sub)
    assert opened["occurrence_id"] == f"{twice.id}@20300107T1400" and opened["starts_at"].endswith("14:00:00+07:00")
    missed = await store.get("occurrences", f"{weekly.id}@20300107T0800")
    assert missed["state"] == "closed" and missed["missed"] is True
    await sched.tick(local(7, 14, 21))
    assert await drain(sub) == []
    [occ] = await service.occurrences(weekly, local(7, 0), local(7, 23))
    assert occ.state == "closed"


async def test_cancel_while_open_closes_and_is_never_reopened(service, store, clock):
    weekly, twice = await briefings(service)
    sched = Scheduler(store, service, "node-a", clock)
    sub = await store.subscribe(CHANNEL)
    await sched.tick(local(7, 7, 50))
    await service.cancel_occurrence(weekly.id, f"{weekly.id}@20300107T0800")
    await sched.tick(local(7, 8, 30))
    await sched.tick(local(7, 8, 31))
    await sched.tick(local(7, 13, 50))
    await service.cancel(twice.id)
    await sched.tick(local(7, 13, 51))
    got = [(m["type"], m["occurrence_id"][-13:], m.get("reason")) for m in await drain(sub)]
    assert got == [
        ("meeting_opened", "20300107T0800", None),
        ("meeting_closed", "20300107T0800", "cancelled"),
        ("meeting_opened", "20300107T1400", None),
        ("meeting_closed", "20300107T1400", "cancelled"),
    ]


async def test_rescheduled_while_open(service, store, clock):
    m = await service.create(spec())
    sched = Scheduler(store, service, "node-a", clock)
    sub = await store.subscribe(CHANNEL)
    clock.now = local(7, 8, 50)
    await sched.tick(clock.now)
    await service.update(m.id, {"start": "2030-01-07T08:55"})
    await sched.tick(clock.now)
    got = [(msg["type"], msg["occurrence_id"][-13:], msg.get("reason")) for msg in await drain(sub)]
    assert got == [
        ("meeting_opened", "20300107T0900", None),
        ("meeting_closed", "20300107T0900", "rescheduled"),
        ("meeting_opened", "20300107T0855", None),
    ]


async def test_loop_survives_errors_and_stop_is_idempotent(service, store, clock, caplog):
    await briefings(service)
    clock.now = local(7, 7, 55)
    sched = Scheduler(store, service, "node-a", clock, interval_s=0.01)
    real_list, calls = service.list, []

    async def flaky(active_only: bool = False):
        calls.append(1)
        if len(calls) <= 2:
            raise RuntimeError("store hiccup")
        return await real_list(active_only)

    service.list = flaky
    sub = await store.subscribe(CHANNEL)
    await sched.start()
    await sched.start()  # a second start does not spawn a second loop
    try:
        msg = await sub.get(5.0)
        assert msg is not None and msg["type"] == "meeting_opened"
        assert "scheduler pass failed" in caplog.text
    finally:
        await sched.stop()
        await sched.stop()
    n = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == n  # nothing runs after stop
