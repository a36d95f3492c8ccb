"""Operator accounts over REST."""

from __future__ import annotations

import asyncio

import pytest

pytestmark = pytest.mark.integration


async def test_add_login_list_delete_operator(node):
    status, body = await node.call(
        "POST",
        "/api/v1/operators",
        json={"username": "ninh.nv", "password": "mat-khau-dai-1", "name": "Nguyễn Văn Ninh"},
    )
    assert status == 201 and body["name"] == "Nguyễn Văn Ninh"
    status, login = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "ninh.nv", "password": "mat-khau-dai-1"}
    )
    assert status == 200
    status, listed = await node.call("GET", "/api/v1/operators", token=login["token"])
    assert {o["username"] for o in listed["operators"]} == {"admin", "ninh.nv"}
    status, again = await node.call("POST", "/api/v1/operators", json={"username": "ninh.nv", "password": "x" * 12})
    assert status == 409 and "exists" in again["error"]["message"]
    status, bad = await node.call("POST", "/api/v1/operators", json={"username": "Bad Name", "password": "x" * 12})
    assert status == 400 and "username" in bad["error"]["message"]
    status, short = await node.call("POST", "/api/v1/operators", json={"username": "ok-name", "password": "ngan"})
    assert status == 400 and "password" in short["error"]["message"]
    status, resp = await node.call("DELETE", "/api/v1/operators/admin", token=login["token"])
    assert status == 400 and "cannot be deleted" in resp["error"]["message"]
    status, resp = await node.call("DELETE", "/api/v1/operators/ninh.nv")
    assert status == 200
    status, resp = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "ninh.nv", "password": "mat-khau-dai-1"}
    )
    assert status == 401
    token = await node.endpoint_token("hg-meo-vac")
    status, resp = await node.call("GET", "/api/v1/operators", token=token)
    assert status == 403


async def test_rotating_a_secret_ends_the_terminals_sessions_and_tokens(node):
    from tests.support.harness import WsClient

    old_token = await node.endpoint_token("hg-mv-pai-lung")
    client = await WsClient.connect(node, old_token)
    await client.expect("welcome")
    status, _ = await node.call("POST", "/api/v1/endpoints/hg-mv-pai-lung/credentials")  # stolen terminal
    assert status == 201
    code, _ = await client.closed()
    assert code == 4401
    await client.close()
    status, resp = await node.call("GET", "/api/v1/me", token=old_token)
    assert status == 401 and "revoked" in resp["error"]["message"]
    node.secrets.pop("hg-mv-pai-lung")


async def test_deleted_operator_token_stops_working(node):
    await node.call("POST", "/api/v1/operators", json={"username": "tam", "password": "mat-khau-dai-2"})
    status, login = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "tam", "password": "mat-khau-dai-2"}
    )
    status, _ = await node.call("GET", "/api/v1/meetings", token=login["token"])
    assert status == 200
    await node.call("DELETE", "/api/v1/operators/tam")
    status, resp = await node.call("GET", "/api/v1/meetings", token=login["token"])
    assert status == 401 and "revoked" in resp["error"]["message"]


async def test_audit_trail_records_rest_and_chair_actions(node):
    from tests.support.harness import WsClient

    meeting = await node.schedule(chair="hg-meo-vac", invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(node, await node.endpoint_token("hg-meo-vac"))
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await chair.send("lock", locked=True)
        await chair.expect("locked")
    finally:
        await chair.close()
    for _ in range(40):  # the chair is told first; the trace is written right after (a few ms)
        status, body = await node.call("GET", "/api/v1/audit")
        assert status == 200
        actions = [(e["who"], e["action"], e["target"]) for e in body["entries"]]
        if ("endpoint:hg-meo-vac", "lock", meeting["id"]) in actions:
            break
        await asyncio.sleep(0.05)
    assert ("operator:admin", "POST /api/v1/meetings", "/api/v1/meetings") in actions
    assert ("endpoint:hg-meo-vac", "lock", meeting["id"]) in actions
    lock = next(e for e in body["entries"] if e["action"] == "lock")
    assert lock["locked"] is True and lock["name"] == "Huyện Mèo Vạc"
    status, bad = await node.call("GET", "/api/v1/audit?date=hom-nay")
    assert status == 400 and "YYYY-MM-DD" in bad["error"]["message"]
