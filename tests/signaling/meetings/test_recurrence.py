"""RRULE subset: parsing (with clear errors) and expansion in local wall-clock time."""

from __future__ import annotations

from datetime import datetime, timezone
from itertools import islice

import pytest

from signaling.meetings.errors import MeetingError
from signaling.meetings.model import VN, occurrence_id, split_occurrence_id
from signaling.meetings.recurrence import Rule, parse_rule, starts

MON_8 = datetime(2030, 1, 7, 8, 0, tzinfo=VN)  # a Monday


def take(rule: str | None, first: datetime, n: int = 50) -> list[str]:
    parsed = parse_rule(rule) if rule else None
    return [f"{d:%a %Y-%m-%d %H:%M}" for d in islice(starts(parsed, first), n)]


def test_weekly_monday_briefing():
    got = take("FREQ=WEEKLY;BYDAY=MO", MON_8, 3)
    assert got == ["Mon 2030-01-07 08:00", "Mon 2030-01-14 08:00", "Mon 2030-01-21 08:00"]
    first = next(starts(parse_rule("FREQ=WEEKLY;BYDAY=MO"), MON_8))
    assert first.astimezone(timezone.utc) == datetime(2030, 1, 7, 1, 0, tzinfo=timezone.utc)


def test_weekly_two_days_and_start_on_a_non_listed_day():
    # start on a Tuesday: only Mondays and Thursdays occur, the first being Thursday
    tue = datetime(2030, 1, 8, 14, 0, tzinfo=VN)
    assert take("FREQ=WEEKLY;BYDAY=MO,TH", tue, 4) == [
        "Thu 2030-01-10 14:00",
        "Mon 2030-01-14 14:00",
        "Thu 2030-01-17 14:00",
        "Mon 2030-01-21 14:00",
    ]


def test_interval_count_until_and_daily_byday():
    assert take("FREQ=WEEKLY;INTERVAL=2;COUNT=3", MON_8) == [
        "Mon 2030-01-07 08:00",
        "Mon 2030-01-21 08:00",
        "Mon 2030-02-04 08:00",
    ]
    assert take("FREQ=DAILY;UNTIL=20300109", MON_8) == [
        "Mon 2030-01-07 08:00",
        "Tue 2030-01-08 08:00",
        "Wed 2030-01-09 08:00",
    ]
    # UNTIL in UTC: 2030-01-09T01:00Z is 08:00 local, inclusive
    assert len(take("FREQ=DAILY;UNTIL=20300109T010000Z", MON_8)) == 3
    assert len(take("FREQ=DAILY;UNTIL=20300109T005959Z", MON_8)) == 2
    work_days = take("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR;COUNT=6", MON_8)
    assert work_days[-2:] == ["Fri 2030-01-11 08:00", "Mon 2030-01-14 08:00"]
    assert take(None, MON_8) == ["Mon 2030-01-07 08:00"]


def test_skip_ahead_matches_walking_from_the_start():
    rule = parse_rule("FREQ=WEEKLY;INTERVAL=3;BYDAY=TU,SA")
    walked = [d for d in islice(starts(rule, MON_8), 400) if d >= datetime(2035, 6, 1, tzinfo=VN)][:10]
    jumped = [
        d
        for d in islice(starts(rule, MON_8, datetime(2035, 6, 1, tzinfo=VN)), 30)
        if d >= datetime(2035, 6, 1, tzinfo=VN)
    ][:10]
    assert walked == jumped and len(walked) == 10


def test_canonical_text_and_case_and_prefix():
    assert parse_rule("rrule:freq=weekly;byday=th,mo").text() == "FREQ=WEEKLY;BYDAY=MO,TH"
    assert parse_rule("FREQ=DAILY;INTERVAL=1").text() == "FREQ=DAILY"
    assert parse_rule("FREQ=WEEKLY;UNTIL=20300131").until == datetime(2030, 1, 31, 23, 59, 59, tzinfo=VN)
    assert parse_rule("FREQ=WEEKLY;COUNT=4") == Rule("WEEKLY", count=4)


@pytest.mark.parametrize(
    "text, words",
    [
        ("FREQ=HOURLY", "FREQ=HOURLY is not supported"),
        ("FREQ=MONTHLY;BYMONTHDAY=1", "FREQ=MONTHLY is not supported"),
        ("FREQ=WEEKLY;BYMONTH=1", "part BYMONTH is not supported"),
        ("FREQ=WEEKLY;WKST=SU", "part WKST is not supported"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY value 'XX' is not a weekday"),
        ("FREQ=WEEKLY;BYDAY=1MO", "ordinals like 1MO are not supported"),
        ("FREQ=WEEKLY;COUNT=0", "COUNT=0 must be a whole number from 1"),
        ("FREQ=WEEKLY;INTERVAL=x", "INTERVAL=X must be a whole number"),
        ("FREQ=WEEKLY;COUNT=2;UNTIL=20300301", "COUNT or UNTIL, not both"),
        ("BYDAY=MO", "FREQ is missing"),
        ("FREQ=WEEKLY;FREQ=DAILY", "FREQ is given twice"),
        ("FREQ=WEEKLY;UNTIL=2030", "UNTIL=2030 must be YYYYMMDD"),
        ("FREQ=WEEKLY;BYDAY", "is not NAME=VALUE"),
        ("  ", "is empty"),
    ],
)
def test_bad_rules_name_the_part(text, words):
    with pytest.raises(MeetingError) as err:
        parse_rule(text)
    assert err.value.field == "recurrence"
    assert words in str(err.value) and str(err.value).startswith("recurrence:")


def test_occurrence_ids_are_local_minutes():
    occ = occurrence_id("m-1234abcd", datetime(2030, 1, 7, 1, 0, tzinfo=timezone.utc))
    assert occ == "m-1234abcd@20300107T0800"
    assert split_occurrence_id(occ) == ("m-1234abcd", MON_8)
    assert split_occurrence_id("m-1234abcd@bad") is None and split_occurrence_id("nothing") is None
