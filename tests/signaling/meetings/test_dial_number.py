"""Dial numbers and PINs (#14): what a SIP room system keys in to reach a meeting. Assigned or chosen,
unique in both stores (also between two nodes), found by ``by_dial_number``; older meetings get one."""

from __future__ import annotations

import asyncio
import re
from typing import AsyncIterator

import msgspec
import pytest

from signaling.meetings import dialing
from signaling.meetings.errors import ConflictError, MeetingError, NotFoundError
from signaling.meetings.model import MeetingSpec
from signaling.meetings.service import MEETINGS, MeetingService
from signaling.meetings.validation import check_digits
from signaling.store import Store
from tests.signaling.meetings.conftest import spec
from tests.signaling.meetings.test_video_codecs import _old_doc
from tests.signaling.store import conftest as store_fixtures
from tests.signaling.store.conftest import BACKENDS, make_store

DIAL, PIN = r"^[1-9][0-9]{3,8}$", r"^[0-9]{4,8}$"
store_pair = store_fixtures.store_pair  # two stores sharing state: two nodes


@pytest.fixture(params=BACKENDS)
async def any_store(request, tmp_path) -> AsyncIterator[Store]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    s = make_store(request.param, tmp_path, redis_url)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def dial_service(any_store, directory, clock) -> MeetingService:
    return MeetingService(any_store, directory, clock=clock)


@pytest.mark.parametrize("value", ["1234", "123456789", "9000"])
def test_a_dial_number_of_4_to_9_digits_is_taken(value):
    assert check_digits(value, "dial_number", DIAL, "4-9 digits") == value


@pytest.mark.parametrize("value", ["123", "1234567890", "0123", "12a4", "１２３４", "1234\n", 1234, ""])
def test_anything_else_is_refused_naming_the_field(value):
    with pytest.raises(MeetingError) as err:
        check_digits(value, "dial_number", DIAL, "4-9 digits, not starting with 0")
    assert err.value.field == "dial_number" and "4-9 digits, not starting with 0" in err.value.message


@pytest.mark.parametrize("value, ok", [("0000", True), ("12345678", True), ("123", False), ("123456789", False)])
def test_a_pin_is_4_to_8_digits(value, ok):
    if ok:
        assert check_digits(value, "pin", PIN, "4-8 digits") == value
    else:
        with pytest.raises(MeetingError, match="pin must be 4-8 digits"):
            check_digits(value, "pin", PIN, "4-8 digits")


def test_the_schema_publishes_the_digit_rules():
    schema = msgspec.json.schema(MeetingSpec)
    props = schema["$defs"]["MeetingSpec"]["properties"]
    assert props["dial_number"]["anyOf"][0]["pattern"] == DIAL
    assert props["pin"]["anyOf"][0]["pattern"] == PIN


async def test_every_meeting_gets_a_distinct_six_digit_number_the_gateway_finds(dial_service, any_store):
    made = [await dial_service.create(spec(title=f"Họp {i}")) for i in range(30)]
    numbers = [m.dial_number for m in made]
    assert all(re.fullmatch(r"[1-9]\d{5}", n) for n in numbers) and len(set(numbers)) == 30
    for m in made:
        assert (await dial_service.by_dial_number(m.dial_number)).id == m.id
        assert (await any_store.get(MEETINGS, m.id))["dial_number"] == m.dial_number


async def test_a_chosen_number_and_pin_are_kept_and_a_taken_number_is_refused(dial_service, any_store):
    m = await dial_service.create(spec(dial_number="2468", pin="0042"))
    assert (m.dial_number, m.pin) == ("2468", "0042")
    with pytest.raises(ConflictError, match="dial_number 2468 belongs to another meeting"):
        await dial_service.create(spec(title="Trùng số", dial_number="2468"))
    assert [doc["title"] for _, doc in await any_store.list(MEETINGS)] == [m.title]
    found = await dial_service.by_dial_number("2468")
    assert (found.id, found.pin) == (m.id, "0042")


async def test_a_wrong_number_or_pin_stores_nothing(dial_service, any_store):
    for field, value in (("dial_number", "0123"), ("pin", "12"), ("pin", "12345abc")):
        with pytest.raises(MeetingError) as err:
            await dial_service.create(spec(**{field: value}))
        assert err.value.field == field
    assert await any_store.list(MEETINGS) == [] and await any_store.list(dialing.DIAL_NUMBERS) == []


async def test_unknown_numbers_are_not_found(dial_service):
    await dial_service.create(spec(dial_number="5555"))
    for number in ("5556", "", "0555", "x" * 500):
        with pytest.raises(NotFoundError, match="no meeting with dial number"):
            await dial_service.by_dial_number(number)


async def test_a_claim_left_by_a_crash_finds_nothing(dial_service, any_store):
    await dialing.claim(any_store, "7777", "m-neverstored")
    with pytest.raises(NotFoundError):
        await dial_service.by_dial_number("7777")


async def test_a_change_keeps_the_number_and_can_set_or_drop_the_pin(dial_service):
    m = await dial_service.create(spec(dial_number="3141"))
    m = await dial_service.update(m.id, {"title": "Đổi tên", "pin": "9999"})
    assert (m.dial_number, m.pin) == ("3141", "9999")
    m = await dial_service.update(m.id, {"pin": None})
    assert (m.dial_number, m.pin) == ("3141", None)
    with pytest.raises(MeetingError) as err:
        await dial_service.update(m.id, {"dial_number": "4000"})
    assert err.value.field == "dial_number"
    assert (await dial_service.by_dial_number("3141")).id == m.id


async def test_a_meeting_stored_before_14_gets_a_number_on_first_read_and_keeps_it(dial_service, any_store):
    await any_store.put(MEETINGS, "m-0000abcd", _old_doc())
    listed = await dial_service.list()
    number = listed[0].dial_number
    assert re.fullmatch(r"[1-9]\d{5}", number)
    assert (await any_store.get(MEETINGS, "m-0000abcd"))["dial_number"] == number
    assert (await dial_service.get("m-0000abcd")).dial_number == number
    assert (await dial_service.by_dial_number(number)).id == "m-0000abcd"
    assert (await dial_service.get("m-0000abcd")).version == 1  # filled in, not a change by anyone


async def test_two_nodes_racing_for_one_number_give_it_to_one_meeting(store_pair, directory, clock):
    a, b = (MeetingService(s, directory, clock=clock) for s in store_pair)
    results = await asyncio.gather(
        a.create(spec(title="Nút A", dial_number="8080")),
        b.create(spec(title="Nút B", dial_number="8080")),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, ConflictError)]
    assert len(made) == 1 and len(refused) == 1, results
    assert (await b.by_dial_number("8080")).id == made[0].id


async def test_two_nodes_filling_an_old_meeting_agree_on_its_number(store_pair, directory, clock):
    a, b = (MeetingService(s, directory, clock=clock) for s in store_pair)
    await store_pair[0].put(MEETINGS, "m-0000abcd", _old_doc())
    got = await asyncio.gather(a.get("m-0000abcd"), b.get("m-0000abcd"))
    assert got[0].dial_number == got[1].dial_number
    assert (await a.by_dial_number(got[0].dial_number)).id == "m-0000abcd"
