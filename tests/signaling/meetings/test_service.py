"""MeetingService on the real SQLite store and the real Hà Giang directory."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from signaling.meetings.errors import ConflictError, MeetingError, NotFoundError
from signaling.meetings.model import VN, Meeting, MeetingSpec
from tests.signaling.meetings.conftest import spec

MON = datetime(2030, 1, 7, tzinfo=VN)


async def stored(store) -> list[tuple[str, dict]]:
    return await store.list("meetings")


async def test_create_get_and_round_trip(service, store, clock):
    m = await service.create(spec(description="  Nội dung: triển khai kế hoạch  "))
    assert m.id.startswith("m-") and m.version == 1 and m.status == "scheduled"
    assert m.start == datetime(2030, 1, 7, 9, 0, tzinfo=VN) and m.end == datetime(2030, 1, 7, 10, 0, tzinfo=VN)
    assert m.start.astimezone(timezone.utc).hour == 2
    assert m.created_at == m.updated_at == clock.now and m.description == "Nội dung: triển khai kế hoạch"
    assert await service.get(m.id) == m
    assert [key for key, _ in await stored(store)] == [m.id]
    body = m.to_dict()
    assert body["start"] == "2030-01-07T09:00:00+07:00" and body["duration_minutes"] == 60
    assert Meeting.from_dict(msgspec.json.decode(msgspec.json.encode(body))) == m


async def test_offsets_are_converted_to_local_time(service):
    m = await service.create(spec(start="2030-01-07T02:00:00Z", end="2030-01-07T10:30:00+08:00", duration_minutes=None))
    assert (m.start.hour, m.end.hour, m.end.minute) == (9, 9, 30)
    assert str(m.start.tzinfo) == "Asia/Ho_Chi_Minh"


async def test_start_a_few_minutes_ago_is_accepted(service, clock):
    m = await service.create(spec(start=(clock.now - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M")))
    assert m.start == clock.now - timedelta(minutes=3)


@pytest.mark.parametrize(
    "over, field, words",
    [
        ({"title": ""}, "title", "title is empty"),
        ({"title": "   "}, "title", "title is empty"),
        ({"title": "x" * 201}, "title", "title has 201 characters; at most 200"),
        ({"chair": "khong-co"}, "chair", "chair 'khong-co' is not an endpoint in the directory"),
        ({"chair": "hg-mv-meo-vac"}, "chair", "a commune cannot chair a meeting"),
        ({"invited": []}, "invited", "invited is empty"),
        ({"invited": ["ep:khong-co"]}, "invited", "khong-co"),
        ({"invited": ["planet:mars"]}, "invited", "planet"),
        ({"invited": ["tree:hg-meo-vac", "-tree:hg-meo-vac"]}, "invited", "selects no endpoint"),
        ({"start": "không phải ngày"}, "start", "is not an ISO-8601 date-time"),
        ({"start": "2030-01-06T11:00"}, "start", "is in the past"),
        ({"end": "2030-01-07T08:00", "duration_minutes": None}, "end", "is not after start"),
        ({"end": "2030-01-07T09:00", "duration_minutes": None}, "end", "is not after start"),
        ({"end": "2030-01-07T21:01", "duration_minutes": None}, "end", "more than 720 minutes"),
        ({"end": "2030-01-07T10:00"}, "end", "either end or duration_minutes, not both"),
        ({"duration_minutes": None}, "duration_minutes", "give end or duration_minutes"),
        ({"duration_minutes": 0}, "duration_minutes", "must be 1-720, got 0"),
        ({"duration_minutes": 721}, "duration_minutes", "must be 1-720, got 721"),
        ({"recurrence": "FREQ=HOURLY"}, "recurrence", "FREQ=HOURLY is not supported"),
        ({"recurrence": "FREQ=WEEKLY;BYMONTH=1"}, "recurrence", "part BYMONTH is not supported"),
        ({"recurrence": "FREQ=WEEKLY;UNTIL=20300101"}, "recurrence", "yields no occurrence"),
        ({"description": "x" * 5000}, "description", "at most 4000 characters"),
    ],
)
async def test_invalid_spec_names_the_field_and_stores_nothing(service, store, over, field, words):
    with pytest.raises(MeetingError) as err:
        await service.create(spec(**over))
    assert err.value.field == field
    assert words in str(err.value) and field in str(err.value), str(err.value)
    assert await stored(store) == []


async def test_list_and_active_only(service, clock):
    later = await service.create(spec(start="2030-01-08T09:00"))
    first = await service.create(spec())
    weekly = await service.create(spec(start="2030-01-07T08:00", recurrence="FREQ=WEEKLY;BYDAY=MO"))
    gone = await service.create(spec(start="2030-01-09T09:00"))
    await service.cancel(gone.id)
    assert [m.id for m in await service.list()] == [weekly.id, first.id, later.id, gone.id]
    assert [m.id for m in await service.list(active_only=True)] == [weekly.id, first.id, later.id]
    clock.now = datetime(2030, 1, 8, 10, 0, tzinfo=VN)  # both one-off meetings have ended
    assert [m.id for m in await service.list(active_only=True)] == [weekly.id]


async def test_update_bumps_version_and_keeps_length(service, store, clock):
    m = await service.create(spec())
    clock.advance(minutes=5)
    u = await service.update(m.id, {"title": "Giao ban tháng 1", "start": "2030-01-07T13:30"}, expected_version=1)
    assert (u.version, u.title, u.updated_at, u.created_at) == (2, "Giao ban tháng 1", clock.now, m.created_at)
    assert u.start.hour == 13 and u.end - u.start == timedelta(minutes=60)
    assert await service.get(m.id) == u
    u3 = await service.update(
        m.id,
        {
            "duration_minutes": 90,
            "invited": ["tree:hg-dong-van"],
            "chair": "hg-ubnd",
            "recurrence": "FREQ=WEEKLY;BYDAY=MO,TH",
            "description": "Họp",
        },
    )
    assert u3.version == 3 and u3.end - u3.start == timedelta(minutes=90)
    assert u3.recurrence == "FREQ=WEEKLY;BYDAY=MO,TH" and u3.chair == "hg-ubnd"
    assert (await service.update(m.id, {"end": "2030-01-07T14:00"})).end.hour == 14


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"invited": ["ep:khong-co"]}, "invited"),
        ({"chair": "hg-mv-meo-vac"}, "chair"),
        ({"start": "2029-12-31T08:00"}, "start"),
        ({"recurrence": "FREQ=YEARLY"}, "recurrence"),
        ({"end": "2030-01-07T08:00"}, "end"),
        ({"status": "cancelled"}, "status"),
        ({"title": ""}, "title"),
    ],
)
async def test_invalid_update_changes_nothing(service, store, changes, field):
    m = await service.create(spec())
    before = await stored(store)
    with pytest.raises(MeetingError) as err:
        await service.update(m.id, changes)
    assert err.value.field == field and field in str(err.value)
    assert await stored(store) == before


async def test_version_conflicts(service, store):
    m = await service.create(spec())
    await service.update(m.id, {"title": "Lần 2"}, expected_version=1)
    before = await stored(store)
    with pytest.raises(ConflictError, match="version 2, not 1"):
        await service.update(m.id, {"title": "Lần 3"}, expected_version=1)
    assert await stored(store) == before
    # two operators racing on the same version: exactly one wins
    results = await asyncio.gather(
        service.update(m.id, {"title": "A"}, expected_version=2),
        service.update(m.id, {"title": "B"}, expected_version=2),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "Meeting"]
    assert (await service.get(m.id)).version == 3


async def test_unknown_ids(service):
    with pytest.raises(NotFoundError, match="m-khongco"):
        await service.get("m-khongco")
    with pytest.raises(NotFoundError):
        await service.update("m-khongco", {"title": "x"})
    with pytest.raises(NotFoundError):
        await service.cancel("m-khongco")
    m = await service.create(spec())
    for bad in ("m-x@20300107T0900", f"{m.id}@20300108T0900", f"{m.id}@garbage", "garbage"):
        with pytest.raises(NotFoundError):
            await service.cancel_occurrence(m.id, bad)


async def test_cancel_series(service, store):
    m = await service.create(spec())
    c = await service.cancel(m.id)
    assert (c.status, c.version) == ("cancelled", 2)
    assert (await service.cancel(m.id)).version == 2  # idempotent
    with pytest.raises(ConflictError, match="cancelled"):
        await service.update(m.id, {"title": "x"})
    occ = await service.occurrences(m.id, MON, MON + timedelta(days=1))
    assert [o.state for o in occ] == ["cancelled"]
    assert await service.current_occurrence(m.id, datetime(2030, 1, 7, 9, 30, tzinfo=VN)) is None


async def test_occurrences_and_cancel_one(service, clock):
    m = await service.create(spec(start="2030-01-07T14:00", duration_minutes=90, recurrence="FREQ=WEEKLY;BYDAY=MO,TH"))
    occ = await service.occurrences(m, MON, MON + timedelta(days=14))
    assert [o.occurrence_id.split("@")[1] for o in occ] == [
        "20300107T1400",
        "20300110T1400",
        "20300114T1400",
        "20300117T1400",
    ]
    assert occ[1].starts_at.astimezone(timezone.utc) == datetime(2030, 1, 10, 7, 0, tzinfo=timezone.utc)
    assert occ[1].ends_at == datetime(2030, 1, 10, 15, 30, tzinfo=VN)
    assert {o.state for o in occ} == {"scheduled"}
    c = await service.cancel_occurrence(m.id, occ[1].occurrence_id)
    assert c.version == 2 and c.exdates == [occ[1].starts_at]
    assert (await service.cancel_occurrence(m.id, occ[1].occurrence_id)).version == 2  # idempotent
    states = [o.state for o in await service.occurrences(m.id, MON, MON + timedelta(days=14))]
    assert states == ["scheduled", "cancelled", "scheduled", "scheduled"]
    assert (await service.get(m.id)).to_dict()["exdates"] == ["2030-01-10T14:00:00+07:00"]
    clock.now = datetime(2030, 1, 7, 16, 0, tzinfo=VN)
    with pytest.raises(ConflictError, match="already ended"):
        await service.cancel_occurrence(m.id, occ[0].occurrence_id)


async def test_current_occurrence_with_early_join(service):
    m = await service.create(spec(recurrence="FREQ=DAILY;COUNT=2"))
    at = lambda h, mi: datetime(2030, 1, 7, h, mi, tzinfo=VN)  # noqa: E731
    assert await service.current_occurrence(m.id, at(8, 49)) is None
    occ = await service.current_occurrence(m.id, at(8, 50))
    assert occ is not None and occ.occurrence_id == f"{m.id}@20300107T0900" and occ.state == "open"
    assert (await service.current_occurrence(m.id, at(9, 59))).occurrence_id == occ.occurrence_id
    assert await service.current_occurrence(m.id, at(10, 0)) is None
    await service.cancel_occurrence(m.id, f"{m.id}@20300108T0900")
    assert await service.current_occurrence(m.id, at(9, 30) + timedelta(days=1)) is None


async def test_invited_endpoints_resolve_selectors(service, directory):
    m = await service.create(spec(invited=["tier:commune@hg-meo-vac", "-hg-mv-meo-vac"]))
    eps = service.invited_endpoints(m)
    assert eps[0].id == "hg-meo-vac"  # the chair counts as invited, first
    assert len(eps) == 1 + 17 and all(e.parent == "hg-meo-vac" for e in eps[1:])
    assert service.is_invited(m, "hg-meo-vac") and service.is_invited(m, eps[-1].id)
    assert not service.is_invited(m, "hg-mv-meo-vac")
    other = directory.select(["tier:commune@hg-dong-van"])[0].id
    assert not service.is_invited(m, other)
    # asked again after the invitation list changed: the answer follows the new list
    m = await service.update(m.id, {"invited": ["tier:commune@hg-dong-van"]})
    assert service.is_invited(m, other) and not service.is_invited(m, eps[-1].id)
    m = await service.update(m.id, {"chair": "hg-dong-van"})
    assert service.is_invited(m, "hg-dong-van") and not service.is_invited(m, "hg-meo-vac")


async def test_meeting_spec_decodes_strictly():
    body = b'{"title":"x","chair":"hg-meo-vac","invited":["all"],"start":"2030-01-07T08:00","colour":"red"}'
    with pytest.raises(msgspec.ValidationError, match="colour"):
        msgspec.json.decode(body, type=MeetingSpec)
