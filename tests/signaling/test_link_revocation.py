"""Join links can be revoked (#11 item 2), against a real server with real aiortc peers.

A link names the operator who made it (claim ``by``). Deleting that operator ends the link's
sessions and its logins, as for the operator's own; rotating the secret of the endpoint a link
speaks for ends the link's too (its WHIP publisher loses the floor); and an operator can revoke
every link of one meeting issued so far (``DELETE /api/v1/meetings/{id}/links``), which ends the
links' WebSocket, WHIP and WHEP sessions within 1 s and leaves the room terminals' own alone.
Before, all three left the links working until they expired (up to 7 days).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.support.harness import Node, WsClient
from tests.support.media_clients import wait_for
from tests.signaling import test_removal
from tests.signaling.test_removal import (
    CHAIR,
    TARGET,
    HttpPeer,
    act,
    delete_status,
    joined,
    media_floor,
    media_peers_of,
)

pytestmark = pytest.mark.integration

two_media_nodes = test_removal.two_media_nodes  # the fixture: two nodes sharing Redis, media on a
WITHIN = 1.0  # s: a revoked link's sessions end and its floor clears within this
WATCHER = "hg-tp-ha-giang"  # a room terminal watching the meeting with its own token (WHEP)


async def make_link(node: Node, mid: str, role: str, token: str = "operator", **extra) -> str:
    status, body = await node.call(
        "POST", f"/api/v1/meetings/{mid}/links", token=token, json={"name": f"Laptop {role}", "role": role, **extra}
    )
    assert status == 201, body
    return body["token"]


async def logs_in(node: Node, token: str) -> int:
    status, _ = await node.call("GET", "/api/v1/me", token=token)
    return status


async def second_operator(node: Node, username: str = "ops.huyen") -> str:
    status, body = await node.call(
        "POST", "/api/v1/operators", json={"username": username, "password": "mat-khau-huyen-1"}
    )
    assert status == 201, body
    status, login = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": username, "password": "mat-khau-huyen-1"}
    )
    assert status == 200, login
    return login["token"]


async def test_deleting_an_operator_ends_the_chair_links_it_made(node):
    meeting = await node.schedule(chair=CHAIR, invited=["tier:district"])
    mid = meeting["id"]
    maker = await second_operator(node)
    chair_link = await make_link(node, mid, "chair", token=maker)
    kept = await make_link(node, mid, "participant")  # made by 'admin', who stays
    ws = await joined(node, chair_link, mid)
    try:
        status, _ = await node.call("DELETE", "/api/v1/operators/ops.huyen")
        assert status == 200
        t0 = time.monotonic()
        code, _ = await asyncio.wait_for(ws.closed(), 5)
        ended_s = time.monotonic() - t0
        assert code == 4401, f"the chair link's WebSocket closed with {code}"
        assert ended_s < WITHIN, f"the chair link's WebSocket ended {ended_s:.2f} s after its maker was deleted"
        assert await logs_in(node, chair_link) == 401  # and it no longer logs in
        refused = await WsClient.connect(node, chair_link)
        assert (await asyncio.wait_for(refused.closed(), 5))[0] == 4401
        await refused.close()
        assert await logs_in(node, kept) == 200  # another operator's link is untouched
        print(f"maker deleted: the chair link's WebSocket closed after {ended_s * 1000:.0f} ms")
    finally:
        await ws.close()


async def test_rotating_an_endpoint_secret_ends_the_links_made_for_it(media_node):
    node = media_node
    meeting = await node.schedule(chair=CHAIR, invited=["tier:district"])
    mid = meeting["id"]
    laptop = await make_link(node, mid, "participant", endpoint_id=TARGET)
    watcher_token = await node.endpoint_token(WATCHER)
    chair = await joined(node, await node.endpoint_token(CHAIR), mid)
    pub, watcher = HttpPeer(), HttpPeer()
    try:
        await pub.open(node, "whip", mid, laptop)
        await watcher.open(node, "whep", mid, watcher_token)
        await chair.send("grant_floor", endpoint_id=TARGET)
        assert await wait_for(lambda: media_floor(node, mid) == TARGET, timeout=5)
        assert await wait_for(lambda: len([f for f in watcher.frames if f[1] > 150]) >= 10, timeout=20), (
            "the watcher never decoded the laptop's picture"
        )
        status, _ = await node.call("POST", f"/api/v1/endpoints/{TARGET}/credentials")
        assert status == 201
        t0 = time.monotonic()
        cleared = await wait_for(lambda: media_floor(node, mid) is None, timeout=WITHIN, step=0.01)
        floor_s = time.monotonic() - t0
        await asyncio.sleep(max(0.0, t0 + WITHIN + 1.0 - time.monotonic()))  # to see frames that should not come
        late = watcher.frames_after(t0 + WITHIN)
        assert cleared, f"the link for {TARGET} still holds the floor {WITHIN:g} s after the rotation"
        assert late == 0, f"the watcher decoded {late} frames of the link more than {WITHIN:g} s after the rotation"
        status, live = await node.call("GET", f"/api/v1/meetings/{mid}/live")
        assert live["floor"] is None
        assert media_peers_of(node, TARGET) == 0
        assert await delete_status(node, pub.location, node.operator_token) == 404
        assert await logs_in(node, laptop) == 401
        assert await delete_status(node, watcher.location, watcher_token) == 200  # the watcher's own session lived
        print(f"endpoint rotated: the link's floor cleared after {floor_s * 1000:.0f} ms")
    finally:
        await pub.close()
        await watcher.close()
        await chair.close()


async def test_a_rotation_by_the_command_line_ends_a_link_for_that_endpoint_on_a_sqlite_node(node):
    """Another process's revocation reaches a SQLite node only by its reload of the revocations
    (SessionRegistry.end_revoked), which must match links by the same predicate."""
    meeting = await node.schedule(chair=CHAIR, invited=["tier:district"])
    laptop = await make_link(node, meeting["id"], "participant", endpoint_id=TARGET)
    ws = await joined(node, laptop, meeting["id"])
    try:
        await act(node, "cli", ws, TARGET)
        t0 = time.monotonic()  # the command has exited: its revocation is in the store
        code, _ = await asyncio.wait_for(ws.closed(), 5)
        ended_s = time.monotonic() - t0
        assert code == 4401 and ended_s < WITHIN, f"closed with {code} after {ended_s:.2f} s"
        assert await logs_in(node, laptop) == 401
    finally:
        await ws.close()


async def test_revoking_a_meetings_links_ends_their_sessions_only(media_node):
    node = media_node
    meeting = await node.schedule(chair=CHAIR, invited=["tier:district"])
    mid = meeting["id"]
    guest_ws_token = await make_link(node, mid, "chair")
    laptop = await make_link(node, mid, "participant", endpoint_id=TARGET)
    viewer_link = await make_link(node, mid, "viewer")
    watcher_token = await node.endpoint_token(WATCHER)
    chair = await joined(node, await node.endpoint_token(CHAIR), mid)
    guest = await joined(node, guest_ws_token, mid)
    pub, link_view, watcher = HttpPeer(), HttpPeer(), HttpPeer()
    try:
        await pub.open(node, "whip", mid, laptop)
        await link_view.open(node, "whep", mid, viewer_link)
        await watcher.open(node, "whep", mid, watcher_token)
        await chair.send("grant_floor", endpoint_id=TARGET)
        assert await wait_for(lambda: media_floor(node, mid) == TARGET, timeout=5)
        assert await wait_for(lambda: len([f for f in watcher.frames if f[1] > 150]) >= 10, timeout=20)
        status, body = await node.call("DELETE", f"/api/v1/meetings/{mid}/links")
        assert status == 200, body
        t0 = time.monotonic()
        code, _ = await asyncio.wait_for(guest.closed(), 5)
        ws_s = time.monotonic() - t0
        cleared = await wait_for(lambda: media_floor(node, mid) is None, timeout=WITHIN, step=0.01)
        assert code == 4401 and ws_s < WITHIN, f"the guest link's WebSocket closed with {code} after {ws_s:.2f} s"
        assert cleared, f"the link for {TARGET} still holds the floor {WITHIN:g} s after the links were revoked"
        for session in (pub, link_view):
            assert await delete_status(node, session.location, node.operator_token) == 404
        for token in (guest_ws_token, laptop, viewer_link):
            assert await logs_in(node, token) == 401
        # the room terminals' own sessions stay: the chair's WebSocket answers, the watcher is listed
        await chair.send("ping")
        await chair.expect("pong")
        status, live = await node.call("GET", f"/api/v1/meetings/{mid}/live")
        listed = {p["endpoint_id"] for p in live["participants"]}
        assert {CHAIR, WATCHER} <= listed and TARGET not in listed, listed
        assert await logs_in(node, await make_link(node, mid, "viewer")) == 200  # a link made after works
        status, body = await node.call("DELETE", f"/api/v1/meetings/{mid}/links", token=watcher_token)
        assert status == 403, body  # operators only
        status, audit = await node.call("GET", "/api/v1/audit")
        assert any(e["action"] == "DELETE /api/v1/meetings/{meeting_id}/links" for e in audit["entries"]), audit
        assert await delete_status(node, watcher.location, watcher_token) == 200
        print(f"meeting links revoked: the guest's WebSocket closed after {ws_s * 1000:.0f} ms")
    finally:
        for peer in (pub, link_view, watcher):
            await peer.close()
        await chair.close()
        await guest.close()


async def test_revoking_links_of_an_unknown_meeting_is_404_and_stores_nothing(node):
    status, body = await node.call("DELETE", "/api/v1/meetings/no-such-meeting/links")
    assert status == 404, body
    assert await node.ctx.store.get("revoked", "links:no-such-meeting") is None


async def test_links_issued_before_the_by_claim_keep_working_until_their_meeting_links_are_revoked(node):
    """Tokens from before this change carry no maker: a deletion or rotation leaves them as it did;
    revoking the meeting's links still ends them ("every link issued so far")."""
    meeting = await node.schedule(chair=CHAIR, invited=["tier:district"])
    old, _ = node.ctx.auth.join_link(meeting["id"], "Laptop cũ", "participant", TARGET, 3600)  # no made_by
    await second_operator(node)
    status, _ = await node.call("DELETE", "/api/v1/operators/ops.huyen")
    assert status == 200
    status, _ = await node.call("POST", f"/api/v1/endpoints/{TARGET}/credentials")
    assert status == 201
    assert await logs_in(node, old) == 200
    status, _ = await node.call("DELETE", f"/api/v1/meetings/{meeting['id']}/links")
    assert status == 200
    assert await logs_in(node, old) == 401


async def test_revoking_a_meetings_links_ends_their_sessions_on_another_node(two_media_nodes):
    """The revocation is published on the events channel: node b ends the link's session at once."""
    a, b = two_media_nodes
    meeting = await a.schedule(chair=CHAIR, invited=["tier:district"])
    guest = await joined(b, await make_link(a, meeting["id"], "participant"), meeting["id"])
    try:
        status, _ = await a.call("DELETE", f"/api/v1/meetings/{meeting['id']}/links")
        assert status == 200
        t0 = time.monotonic()
        code, _ = await asyncio.wait_for(guest.closed(), 5)
        ended_s = time.monotonic() - t0
        assert code == 4401 and ended_s < WITHIN, f"closed with {code} after {ended_s:.2f} s"
    finally:
        await guest.close()
