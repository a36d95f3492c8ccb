"""Inputs that answered 500 (issue #11, item 5), against a real node: NUL in ids and names, dates near
year 1 or 9999, RRULEs that never meet their start or use non-ASCII digits, garbage ICE candidates.
Each now gets a 4xx naming what is wrong, nothing stored changes and no traceback is logged."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.support.harness import VN, WsClient, tracebacks
from tests.support.media_clients import offer_sdp

pytestmark = pytest.mark.integration

BASE = {"title": "Giao ban", "chair": "hg-meo-vac", "invited": ["tier:commune@hg-meo-vac"], "duration_minutes": 60}
START = "2030-01-07T08:00"  # a Monday


async def snapshot(node) -> dict:
    store = node.ctx.store
    return {c: await store.list(c) for c in ("meetings", "operators", "occurrences")}


@pytest.fixture
async def meeting(node) -> dict:
    return await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=1)


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("GET", "/api/v1/meetings/a%00b", None, "meeting_id"),
        ("PATCH", "/api/v1/meetings/a%00b", {"title": "x"}, "meeting_id"),
        ("DELETE", "/api/v1/meetings/a%00b", None, "meeting_id"),
        ("GET", "/api/v1/meetings/a%00b/occurrences", None, "meeting_id"),
        ("GET", "/api/v1/meetings/a%00b/live", None, "meeting_id"),
        ("DELETE", "/api/v1/meetings/a%00b/occurrences/a%00b@20300107T0800", None, "meeting_id"),
        ("DELETE", "/api/v1/operators/a%00b", None, "username"),
        (
            "POST",
            "/api/v1/operators",
            {"username": "to-tinh", "password": "mat-khau-dai-du", "name": "A\u0000B"},
            "name",
        ),
        ("POST", "/api/v1/meetings", {**BASE, "title": "Giao\u0000ban", "start": START}, "title"),
        ("POST", "/api/v1/meetings", {**BASE, "description": "a\u0000b", "start": START}, "description"),
    ],
)
async def test_nul_in_ids_and_names_is_a_400(node, meeting, caplog, method, path, body, field):
    before = await snapshot(node)
    status, resp = await node.call(method, path, **({"json": body} if body is not None else {}))
    assert status == 400, resp
    message = resp["error"]["message"]
    assert resp["error"]["field"] == field and ("\\x00" in message or "control" in message), resp
    assert await snapshot(node) == before
    assert not tracebacks(caplog)


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({**BASE, "start": "9999-12-31T23:00"}, "start", ["2000-2199"]),
        ({**BASE, "start": "0001-01-01T00:00+14:00"}, "start", ["2000-2199"]),
        ({**BASE, "start": "9999-12-30T08:00", "recurrence": "FREQ=DAILY"}, "start", ["2000-2199"]),
        ({**BASE, "start": START, "end": "9999-12-31T23:59:59-12:00", "duration_minutes": None}, "end", ["2000-2199"]),
        (
            {**BASE, "start": START, "recurrence": "FREQ=DAILY;UNTIL=99991231T235959Z"},
            "recurrence",
            ["UNTIL", "2000-2199"],
        ),
        ({**BASE, "start": START, "recurrence": "FREQ=DAILY;UNTIL=00010101"}, "recurrence", ["UNTIL", "2000-2199"]),
        # never meets its start weekday: walked day after day to year 9999 and overflowed
        (
            {**BASE, "start": START, "recurrence": "FREQ=DAILY;INTERVAL=7;BYDAY=TU"},
            "recurrence",
            ["no occurrence", "10 years"],
        ),
        (
            {**BASE, "start": START, "recurrence": "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO;COUNT=1000"},
            "recurrence",
            ["COUNT", "10 years"],
        ),
        ({**BASE, "start": START, "recurrence": "FREQ=DAILY;UNTIL=20450101"}, "recurrence", ["UNTIL", "10 years"]),
        ({**BASE, "start": START, "recurrence": "FREQ=DAILY;INTERVAL=²"}, "recurrence", ["INTERVAL"]),
        ({**BASE, "start": START, "recurrence": "FREQ=DAILY;COUNT=١٠"}, "recurrence", ["COUNT"]),
        ({**BASE, "start": START, "recurrence": "FREQ=DAILY;UNTIL=２０３００１０１"}, "recurrence", ["UNTIL"]),
    ],
)
async def test_dates_out_of_range_and_bad_rules_are_400(node, caplog, body, field, words):
    body = {k: v for k, v in body.items() if v is not None}
    status, resp = await node.call("POST", "/api/v1/meetings", json=body)
    assert status == 400, resp
    assert resp["error"]["field"] == field
    for word in words:
        assert word in resp["error"]["message"], resp
    assert await node.ctx.store.list("meetings") == []
    assert not tracebacks(caplog)


@pytest.mark.parametrize(
    "method, suffix, status_, words",
    [
        ("GET", "/occurrences?from=0001-01-01T00:00&to=0001-02-01", 400, ["from", "2000-2199"]),
        ("GET", "/occurrences?from=0001-01-01T00:00%2B14:00&to=2030-01-01", 400, ["from", "2000-2199"]),
        ("GET", "/occurrences?from=2030-01-01&to=9999-12-31T23:59-12:00", 400, ["to", "2000-2199"]),
        ("PATCH", "", 400, ["start", "2000-2199"]),
        ("DELETE", "/occurrences/{id}@99991231T2359", 404, ["99991231T2359"]),
        ("DELETE", "/occurrences/{id}@00010101T0000", 404, ["00010101T0000"]),
        ("GET", "/occurrences/{id}@00010101T0000/attendance", 404, ["00010101T0000"]),
    ],
)
async def test_times_near_year_1_or_9999_on_an_existing_meeting(node, meeting, caplog, method, suffix, status_, words):
    before = await snapshot(node)
    path = f"/api/v1/meetings/{meeting['id']}" + suffix.replace("{id}", meeting["id"])
    body = {"json": {"start": "9999-12-31T23:30"}} if method == "PATCH" else {}
    status, resp = await node.call(method, path, **body)
    assert status == status_, resp
    for word in words:
        assert word in resp["error"]["message"], resp
    assert await snapshot(node) == before
    assert not tracebacks(caplog)


async def test_an_open_ended_series_is_expanded_ten_years_only(node, caplog):
    start = (datetime.now(VN) + timedelta(days=1)).replace(hour=8, minute=0, second=0, microsecond=0)
    status, m = await node.call(
        "POST", "/api/v1/meetings", json={**BASE, "start": start.isoformat(), "recurrence": "FREQ=DAILY"}
    )
    assert status == 201, m
    last = start + timedelta(days=3653)  # 10 years and 3 leap days at most: the last one lies before this
    frm, to = (last - timedelta(days=30)).isoformat(), (last + timedelta(days=30)).isoformat()
    status, body = await node.call("GET", f"/api/v1/meetings/{m['id']}/occurrences", params={"from": frm, "to": to})
    assert status == 200, body
    days = [o["starts_at"] for o in body["occurrences"]]
    assert 0 < len(days) < 60 and max(days) <= (start + timedelta(days=366 * 10)).isoformat()
    status, body = await node.call(
        "GET",
        f"/api/v1/meetings/{m['id']}/occurrences",
        params={"from": (last + timedelta(days=400)).isoformat(), "to": (last + timedelta(days=700)).isoformat()},
    )
    assert status == 200 and body["occurrences"] == []
    assert not tracebacks(caplog)


async def test_ws_join_with_nul_is_an_error_and_the_connection_lives_on(node, meeting, caplog):
    ws = await WsClient.connect(node, node.operator_token)
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id="a\u0000b")
        err = await ws.expect("error")
        assert err["code"] == "bad_request" and err["field"] == "meeting_id", err
        await ws.send("join", meeting_id=meeting["id"])
        assert (await ws.expect("joined"))["meeting_id"] == meeting["id"]
    finally:
        await ws.close()
    assert not tracebacks(caplog)


@pytest.mark.parametrize(
    "candidate, mid, words",
    [
        ("candidate:garbage", "0", ["candidate:garbage"]),
        ("candidate:1 1 udp 2122260223 127.0.0.1 99999 typ host", "0", ["port"]),
        ("candidate:1 x udp 1 127.0.0.1 5000 typ host", "0", ["component"]),
        ("candidate:1 1 udp 1 127.0.0.1 5000 typ host", None, ["sdp_mid"]),
    ],
)
async def test_ws_ice_garbage_is_bad_request_not_internal(media_node, caplog, candidate, mid, words):
    node = media_node
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=1)
    ws = await WsClient.connect(node, await node.endpoint_token("hg-meo-vac"))
    pc, sdp = await offer_sdp()
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        await ws.expect("joined")
        await ws.send("offer", sdp=sdp)
        await ws.expect("answer", timeout=10)
        await ws.send("ice", candidate=candidate, sdp_mid=mid)
        err = await ws.expect("error")
        assert err["code"] == "bad_request", err
        for word in words:
            assert word in err["message"], err
        await ws.send("ping")
        await ws.expect("pong")  # the session and its peer are still there
    finally:
        await pc.close()
        await ws.close()
    assert not tracebacks(caplog)


@pytest.mark.parametrize("kind", ["whip", "whep"])
async def test_whip_whep_path_with_nul_is_a_400(media_node, caplog, kind):
    node = media_node
    pc, sdp = await offer_sdp()
    try:
        async with node.http.post(
            f"{node.url}/{kind}/a%00b",
            data=sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {node.operator_token}"},
        ) as resp:
            status, body = resp.status, await resp.json()
    finally:
        await pc.close()
    assert status == 400 and body["error"]["field"] == "meeting_id", body
    assert not tracebacks(caplog)
