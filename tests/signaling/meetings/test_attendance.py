"""Attendance: folding the event log (pure), and the service's log and invitation snapshot."""

from __future__ import annotations

from datetime import datetime, timedelta

from signaling.meetings.attendance import fold, join_event, leave_event
from signaling.meetings.model import VN
from signaling.meetings.scheduler import Scheduler
from tests.signaling.meetings.conftest import spec


def at(h: int, m: int, s: int = 0) -> datetime:
    return datetime(2030, 1, 7, h, m, s, tzinfo=VN)


def test_join_leave_rejoin_never_joined_and_guest():
    events = [
        join_event("xa-a", at(8, 55), "terminal"),
        join_event("xa-b", at(9, 5), "terminal"),
        join_event("link-bi-thu", at(9, 10), "link"),
        leave_event("xa-a", at(9, 30)),
        leave_event("link-bi-thu", at(9, 20)),
        join_event("xa-a", at(9, 40), "terminal"),  # reconnected after a network drop
        leave_event("xa-a", at(10, 0)),
    ]
    rec = fold("m-1@20300107T0900", ["xa-a", "xa-b", "xa-c"], events, until=at(10, 0))
    a, b, c = rec.endpoints
    assert (a.endpoint_id, a.joined, a.joins, a.first_join, a.last_leave) == ("xa-a", True, 2, at(8, 55), at(10, 0))
    assert a.total_seconds == 35 * 60 + 20 * 60 and not a.present
    assert (b.joined, b.present, b.last_leave, b.total_seconds) == (True, True, None, 55 * 60)  # never left
    assert (c.joined, c.joins, c.first_join, c.total_seconds) == (False, 0, None, 0.0)
    [guest] = rec.guests
    assert (guest.endpoint_id, guest.invited, guest.total_seconds, guest.via) == ("link-bi-thu", False, 600.0, ["link"])
    assert (rec.summary.invited, rec.summary.present, rec.summary.absent, rec.summary.guests) == (3, 2, 1, 1)
    body = rec.to_dict()
    assert body["summary"] == {"invited": 3, "present": 2, "absent": 1, "guests": 1}
    assert body["endpoints"][0]["first_join"] == "2030-01-07T08:55:00+07:00"


def test_overlapping_sessions_stray_leaves_and_disorder():
    events = [
        leave_event("xa-a", at(8, 0)),  # stray leave before any join: ignored
        join_event("xa-a", at(9, 0), "terminal"),
        leave_event("xa-a", at(9, 30)),  # appended late: the browser session's leave
        join_event("xa-a", at(9, 10), "browser"),  # second session while the first is in
        leave_event("xa-a", at(9, 20)),
        leave_event("xa-a", at(9, 45)),  # duplicate leave: ignored
        {"event": "join", "endpoint_id": "xa-a"},  # malformed: skipped
    ]
    [a] = fold("o", ["xa-a"], events, until=at(10, 0)).endpoints
    assert a.joins == 2 and a.total_seconds == 30 * 60 and a.last_leave == at(9, 30)
    assert a.via == ["terminal", "browser"] and not a.present


def test_empty_log():
    rec = fold("o", ["xa-a", "xa-b"], [])
    assert rec.summary.present == 0 and rec.summary.absent == 2 and rec.guests == []


async def test_service_log_and_invitation_snapshot(service, store, clock):
    m = await service.create(spec(invited=["hg-mv-meo-vac", "hg-meo-vac"]))
    sched = Scheduler(store, service, "node-a", clock)
    clock.now = at(8, 50)
    assert [msg["type"] for msg in await sched.tick(clock.now)] == ["meeting_opened"]
    occ = f"{m.id}@20300107T0900"
    await service.record_join(occ, "hg-mv-meo-vac", at(8, 52), via="endpoint")
    await service.record_join(occ, "hg-meo-vac", at(8, 58), via="endpoint")
    await service.record_leave(occ, "hg-meo-vac", at(9, 15))
    assert len(await store.read_log(f"attendance:{occ}")) == 3
    # invitations changed after opening: this occurrence keeps its snapshot
    await service.update(m.id, {"invited": ["tree:hg-dong-van"]})
    clock.now = at(9, 30)
    rec = await service.attendance(occ)
    assert rec.invited == ["hg-meo-vac", "hg-mv-meo-vac"]
    chair, commune = rec.endpoints
    assert chair.total_seconds == 17 * 60 and commune.present and commune.total_seconds == 38 * 60
    clock.now = at(11, 0)  # after the end, a session that never left counts up to the end only
    assert (await service.attendance(occ)).of("hg-mv-meo-vac").total_seconds == 68 * 60


async def test_attendance_before_opening_uses_current_invitations(service, clock):
    m = await service.create(spec(start="2030-01-08T09:00"))
    rec = await service.attendance(f"{m.id}@20300108T0900")
    assert rec.summary.invited == 19 and rec.summary.present == 0
    clock.now += timedelta(days=5)
    assert (await service.attendance(f"{m.id}@20300108T0900")).summary.absent == 19
