"""Bad input of many kinds: each gets a clear error naming what was wrong, and nothing changes."""

from __future__ import annotations

import time

import pytest

from signaling.auth.tokens import Claims
from tests.support.harness import WsClient

pytestmark = pytest.mark.integration


async def meetings_in_store(node) -> int:
    return len(await node.ctx.store.list("meetings"))


@pytest.mark.parametrize(
    "body, words",
    [
        (
            {
                "title": "x",
                "chair": "khong-co",
                "invited": ["all"],
                "start": "2030-01-06T08:00",
                "duration_minutes": 60,
            },
            ["khong-co"],
        ),
        (
            {
                "title": "x",
                "chair": "hg-meo-vac",
                "invited": ["ep:khong-co"],
                "start": "2030-01-06T08:00",
                "duration_minutes": 60,
            },
            ["khong-co"],
        ),
        (
            {
                "title": "x",
                "chair": "hg-meo-vac",
                "invited": ["planet:mars"],
                "start": "2030-01-06T08:00",
                "duration_minutes": 60,
            },
            ["planet"],
        ),
        (
            {
                "title": "x",
                "chair": "hg-meo-vac",
                "invited": ["all"],
                "start": "2030-01-06T08:00",
                "end": "2030-01-06T07:00",
            },
            ["end"],
        ),
        (
            {
                "title": "x",
                "chair": "hg-meo-vac",
                "invited": ["all"],
                "start": "2030-01-06T08:00",
                "duration_minutes": 60,
                "recurrence": "FREQ=HOURLY",
            },
            ["FREQ"],
        ),
        (
            {
                "title": "x",
                "chair": "hg-meo-vac",
                "invited": ["all"],
                "start": "không phải ngày",
                "duration_minutes": 60,
            },
            ["start"],
        ),
        (
            {
                "title": "x",
                "chair": "hg-meo-vac",
                "invited": ["all"],
                "start": "2030-01-06T08:00",
                "duration_minutes": 60,
                "colour": "red",
            },
            ["colour"],
        ),
        (
            {
                "title": 42,
                "chair": "hg-meo-vac",
                "invited": ["all"],
                "start": "2030-01-06T08:00",
                "duration_minutes": 60,
            },
            ["title"],
        ),
    ],
)
async def test_bad_meeting_is_rejected_and_nothing_stored(node, body, words):
    before = await meetings_in_store(node)
    status, resp = await node.call("POST", "/api/v1/meetings", json=body)
    assert status in (400, 404), resp
    message = resp["error"]["message"]
    for w in words:
        assert w in message, message
    assert await meetings_in_store(node) == before


async def test_malformed_json_body(node):
    status, resp = await node.call(
        "POST", "/api/v1/meetings", data=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert status == 400 and "malformed JSON" in resp["error"]["message"]
    assert await meetings_in_store(node) == 0


async def test_oversized_body(node):
    big = {"title": "x" * 300_000}
    status, resp = await node.call("POST", "/api/v1/meetings", json=big)
    assert status == 413 and "exceeds" in resp["error"]["message"]


async def test_wrong_password_and_missing_token(node):
    status, resp = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "admin", "password": "sai"}
    )
    assert status == 401 and "wrong operator username or password" in resp["error"]["message"]
    status, resp = await node.call("GET", "/api/v1/meetings", token=None)
    assert status == 401 and "Authorization" in resp["error"]["message"]


async def test_expired_and_tampered_tokens(node):
    signer = node.ctx.auth.signer
    expired = signer.sign(Claims(kind="operator", sub="admin", exp=time.time() - 5))
    status, resp = await node.call("GET", "/api/v1/meetings", token=expired)
    assert status == 401 and "expired" in resp["error"]["message"]
    head, body, mac = node.operator_token.split(".")
    forged = ".".join([head, body[:-2] + ("AA" if body[-2:] != "AA" else "BB"), mac])
    status, resp = await node.call("GET", "/api/v1/meetings", token=forged)
    assert status == 401 and ("signature" in resp["error"]["message"] or "malformed" in resp["error"]["message"])


async def test_endpoint_cannot_schedule_or_read_other_endpoints_meetings(node):
    token = await node.endpoint_token("hg-meo-vac")
    status, resp = await node.call("POST", "/api/v1/meetings", token=token, json={})
    assert status == 403 and "operator" in resp["error"]["message"]


async def test_unknown_endpoint_credentials(node):
    status, resp = await node.call("POST", "/api/v1/endpoints/khong-co/credentials")
    assert status == 404 and "khong-co" in resp["error"]["message"]
    status, resp = await node.call(
        "POST", "/api/v1/auth/endpoint", token=None, json={"endpoint_id": "khong-co", "secret": "x"}
    )
    assert status == 401 and "khong-co" in resp["error"]["message"]


async def test_ws_bad_messages_get_errors_and_connection_survives(node):
    client = await WsClient.connect(node, node.operator_token)
    try:
        await client.expect("welcome")
        await client.ws.send_str("{not json")
        assert "malformed JSON" in (await client.expect("error"))["message"]
        await client.ws.send_json({"v": 1, "type": "dance"})
        err = await client.expect("error")
        assert "dance" in err["message"] or "type" in err["message"]
        assert "join" in err["message"]  # lists the known types
        await client.ws.send_json({"v": 1, "type": "join", "id": "j1"})
        err = await client.expect("error", ref="j1")
        assert "meeting_id" in err["message"]
        await client.ws.send_json({"v": 2, "type": "ping"})
        assert "$.v" in (await client.expect("error"))["message"]
        await client.ws.send_json({"v": 1, "type": "join", "meeting_id": "m-khong-co", "id": "j2"})
        err = await client.expect("error", ref="j2")
        assert err["code"] == "not_found" and "m-khong-co" in err["message"]
        await client.ws.send_json({"v": 1, "type": "raise_hand", "id": "h1"})
        assert "join a meeting" in (await client.expect("error", ref="h1"))["message"]
        limit = node.ctx.settings.limits.ws_max_message_bytes
        await client.ws.send_json({"v": 1, "type": "offer", "sdp": "a" * (limit + 10)})
        err = await client.expect("error")
        assert err["code"] == "too_large" and str(limit) in err["message"]
        await client.ws.send_bytes(b"\x00\x01")
        assert "binary" in (await client.expect("error"))["message"]
        await client.send("ping")
        await client.expect("pong")  # still alive after all that
    finally:
        await client.close()


async def test_ws_rate_limit(node):
    client = await WsClient.connect(node, node.operator_token)
    try:
        await client.expect("welcome")
        burst = node.ctx.settings.limits.ws_burst
        for _ in range(burst + 20):
            await client.ws.send_json({"v": 1, "type": "ping"})
        err = await client.expect("error", code="rate_limited")
        assert "slow down" in err["message"]
    finally:
        await client.close()


async def test_ws_hello_required_and_bad_token(node):
    client = await WsClient.connect(node, None, hello=False)
    await client.send("ping")
    err = await client.expect("error")
    assert "first message must be hello" in err["message"]
    assert (await client.closed())[0] == 4401
    await client.close()
    client = await WsClient.connect(node, "gb1.bm9wZQ.bm9wZQ")
    err = await client.expect("error")
    assert err["code"] == "unauthorized" and "signature" in err["message"]
    assert (await client.closed())[0] == 4401
    await client.close()


async def test_uninvited_endpoint_cannot_join(node):
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tier:commune@hg-meo-vac"])
    outsider = node.ctx.directory.select(["tier:commune@hg-dong-van"])[0].id
    client = await WsClient.connect(node, await node.endpoint_token(outsider))
    try:
        await client.expect("welcome")
        ref = await client.send("join", meeting_id=meeting["id"])
        err = await client.expect("error", ref=ref)
        assert err["code"] == "forbidden" and "not invited" in err["message"] and outsider in err["message"]
        status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        assert live["participants"] == []
    finally:
        await client.close()


async def test_link_for_other_meeting_refused(node):
    m1 = await node.schedule(chair="hg-meo-vac", invited=["tier:district"])
    m2 = await node.schedule(chair="hg-dong-van", invited=["tier:district"])
    status, link = await node.call(
        "POST", f"/api/v1/meetings/{m1['id']}/links", json={"name": "Đ/c Bí thư", "role": "participant"}
    )
    assert status == 201 and link["url"].endswith(link["token"])
    client = await WsClient.connect(node, link["token"])
    try:
        await client.expect("welcome")
        ref = await client.send("join", meeting_id=m2["id"])
        err = await client.expect("error", ref=ref)
        assert err["code"] == "forbidden" and "another meeting" in err["message"]
        await client.send("join", meeting_id=m1["id"])
        assert (await client.expect("joined"))["role"] == "participant"
    finally:
        await client.close()


async def test_unknown_route_and_method(node):
    status, resp = await node.call("GET", "/api/v1/khong-co")
    assert status == 404 and resp["error"]["code"] == "not_found"
    status, resp = await node.call("PUT", "/api/v1/meetings")
    assert status == 405


async def test_password_guessing_is_throttled(node):
    for _ in range(10):
        status, resp = await node.call(
            "POST", "/api/v1/auth/login", token=None, json={"username": "admin", "password": "doan"}
        )
        assert status == 401
    status, resp = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "admin", "password": "test-admin-password"}
    )
    assert status == 429 and "too many failed logins" in resp["error"]["message"]
    # other accounts are unaffected
    token = await node.endpoint_token("hg-meo-vac")
    assert token.startswith("gb1.")
