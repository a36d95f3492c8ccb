"""PATCH /api/v1/meetings/{id} against a real node (issue #11, item 8): a partial update changes only
the fields it names, and create and PATCH accept and refuse exactly the same values."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

START = "2030-01-07T08:00"
MODES = {"fibre": "both", "thin": "sfu", "mobile": "mcu"}
BODY = {
    "title": "Giao ban tuần",
    "chair": "hg-meo-vac",
    "invited": ["tier:commune@hg-meo-vac"],
    "start": START,
    "duration_minutes": 90,
    "recurrence": "FREQ=WEEKLY;BYDAY=MO",
    "description": "Họp sáng thứ hai",
    "media_modes": MODES,
}
# what a change may legitimately touch besides the fields it names
BOOKKEEPING = {"version", "updated_at"}


async def create(node) -> dict:
    status, meeting = await node.call("POST", "/api/v1/meetings", json=BODY)
    assert status == 201, meeting
    return meeting


async def stored(node, meeting_id: str) -> dict:
    return await node.ctx.store.get("meetings", meeting_id)


@pytest.mark.parametrize(
    "change",
    [
        {"title": "Giao ban tuần (đổi tên)"},
        {"description": "Chương trình mới"},
        {"description": None},
        {"invited": ["tier:commune@hg-meo-vac", "hg-ubnd"]},
        {"chair": "hg-ubnd"},
        {"recurrence": "FREQ=WEEKLY;BYDAY=MO,TH"},
        {"recurrence": None},
        {"media_modes": {"fibre": "sfu"}},
        {"media_modes": None},
        {"video_codecs": ["H264"]},
        {"video_codecs": ["H264", "VP8"]},
    ],
)
async def test_a_partial_update_changes_only_what_it_names(node, change):
    meeting = await create(node)
    before = await stored(node, meeting["id"])
    status, resp = await node.call("PATCH", f"/api/v1/meetings/{meeting['id']}", json=change)
    assert status == 200, resp
    after = await stored(node, meeting["id"])
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed - BOOKKEEPING == set(change), (before, after)
    for name, value in change.items():
        assert after[name] == value and resp[name] == value
    assert after["version"] == before["version"] + 1


async def test_patch_with_only_a_title_keeps_media_modes(node):
    meeting = await create(node)
    status, resp = await node.call("PATCH", f"/api/v1/meetings/{meeting['id']}", json={"title": "Tên mới"})
    assert status == 200, resp
    status, got = await node.call("GET", f"/api/v1/meetings/{meeting['id']}")
    assert got["title"] == "Tên mới" and got["media_modes"] == MODES, got
    assert (await stored(node, meeting["id"]))["media_modes"] == MODES


async def test_moving_the_start_keeps_the_length(node):
    meeting = await create(node)
    status, resp = await node.call("PATCH", f"/api/v1/meetings/{meeting['id']}", json={"start": "2030-01-14T09:00"})
    assert status == 200, resp
    assert (
        resp["duration_minutes"] == 90 and resp["end"] == "2030-01-14T10:30:00+07:00" and resp["media_modes"] == MODES
    )


MANY = [f"ep:hg-x-{i}" for i in range(5000)]


@pytest.mark.parametrize(
    "field, value",
    [
        ("invited", MANY),
        ("invited", []),
        ("invited", ["x" * 201]),
        ("title", ""),
        ("title", "x" * 201),
        ("title", "Giao\u0000ban"),
        ("description", "x" * 4001),
        ("duration_minutes", 0),
        ("duration_minutes", 721),
        ("recurrence", "FREQ=DAILY;" + "BYDAY=MO;" * 25),
        ("recurrence", "FREQ=DAILY;INTERVAL=²"),
        ("media_modes", {"satellite": "sfu"}),
        ("media_modes", {"thin": "p2p"}),
        ("video_codecs", []),
        ("video_codecs", ["AV1"]),
        ("video_codecs", ["VP8", "vp8"]),
        ("video_codecs", "VP8"),
        ("start", "9999-12-31T23:00"),
        ("chair", "x" * 65),
    ],
)
async def test_create_and_patch_refuse_the_same_values_alike(node, field, value):
    meeting = await create(node)
    before = await node.ctx.store.list("meetings")
    body = {**BODY, field: value}
    if field == "duration_minutes":
        body.pop("end", None)
    status_c, created = await node.call("POST", "/api/v1/meetings", json=body)
    status_p, patched = await node.call("PATCH", f"/api/v1/meetings/{meeting['id']}", json={field: value})
    assert status_c == status_p == 400, (created, patched)
    assert created["error"]["message"] == patched["error"]["message"], (created, patched)
    assert created["error"].get("field", field) == patched["error"].get("field", field) == field, (created, patched)
    assert await node.ctx.store.list("meetings") == before  # neither stored anything


async def test_patch_with_5000_selectors_is_refused_like_create(node):
    meeting = await create(node)
    before = await stored(node, meeting["id"])
    status, resp = await node.call("PATCH", f"/api/v1/meetings/{meeting['id']}", json={"invited": MANY})
    assert status == 400 and "500" in resp["error"]["message"], resp
    assert await stored(node, meeting["id"]) == before
