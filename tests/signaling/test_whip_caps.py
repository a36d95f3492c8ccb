"""WHIP/WHEP session caps and offers without usable media (#11 item 10), against a real server.

Before: one viewer link opened 60 WHEP sessions in 0.4 s, and an offer of just ``v=0`` (or 60 KB
of junk after it) got 201 and left a phantom participant. Now: an offer with no usable media is
refused with 400 naming what is missing (on /ws too); sessions are capped per token and per
meeting (limits.whip/whep_sessions_per_token, ..._per_meeting), over the cap 429 names the cap;
a refused request leaves nothing behind: no participant, no media peer, no held place.
"""

from __future__ import annotations

import asyncio
import hashlib
import re

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from signaling.store.base import StoreError
from tests.support.cluster import flush
from tests.support.harness import Node, WsClient, start_node
from tests.support.media_clients import PatternTrack, ToneTrack, wait_for

pytestmark = pytest.mark.integration

CAPS = {
    "whip_sessions_per_token": 2,
    "whep_sessions_per_token": 4,
    "whip_sessions_per_meeting": 3,
    "whep_sessions_per_meeting": 6,
}


@pytest.fixture
async def media_node(tmp_path):
    n = await start_node(tmp_path / "data", media="local", limits=CAPS)
    yield n
    await n.stop()


async def offer(kind: str) -> str:
    """A real aiortc offer: sendonly camera + microphone (WHIP) or recvonly audio + video (WHEP)."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if kind == "whip":
        pc.addTransceiver(ToneTrack(), direction="sendonly")
        pc.addTransceiver(PatternTrack(200), direction="sendonly")
    else:
        pc.addTransceiver("audio", direction="recvonly")
        pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def post(node: Node, kind: str, meeting_id: str, token: str, sdp: str) -> tuple[int, str, str]:
    async with node.http.post(
        f"{node.url}/{kind}/{meeting_id}",
        data=sdp.encode(),
        headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
    ) as r:
        return r.status, await r.text(), r.headers.get("Location", "")


async def link(node: Node, meeting_id: str, name: str, role: str = "viewer") -> str:
    status, body = await node.call("POST", f"/api/v1/meetings/{meeting_id}/links", json={"name": name, "role": role})
    assert status == 201, body
    return body["token"]


async def leftovers(node: Node, meeting_id: str) -> dict:
    """What the server holds for the meeting: /live entries, media peers, WHIP/WHEP sessions."""
    status, live = await node.call("GET", f"/api/v1/meetings/{meeting_id}/live")
    assert status == 200, live
    from signaling.api.whip import RESOURCES

    return {
        "participants": len(live["participants"]),
        "peers": len(node.ctx.media.peers),
        "sessions": len(node.runner.app[RESOURCES]),
    }


NO_MEDIA = [
    ("v=0\r\n", "no media"),
    ("v=0\r\n" + "x" * 59_000, "no media"),  # 60 KB of junk after v=0
    (
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
        "not audio or video",
    ),
]


@pytest.mark.parametrize("kind", ["whip", "whep"])
async def test_offers_without_usable_media_are_refused_and_leave_nothing(media_node, kind):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(node, meeting["id"], "OBS", "participant")
    good = await offer(kind)
    cases = NO_MEDIA + [
        (good.replace("a=sendonly", "a=inactive").replace("a=recvonly", "a=inactive"), "inactive"),
        (
            good.replace("opus/", "foo/").replace("VP8/", "bar/").replace("H264/", "baz/"),
            "no codec the server forwards",
        ),
        (good.replace("a=ice-ufrag", "a=x-ufrag"), "ICE credentials"),
        (good.replace("a=fingerprint", "a=x-fingerprint"), "DTLS fingerprint"),
        (await offer("whep" if kind == "whip" else "whip"), "recvonly" if kind == "whip" else "sendonly"),
    ]  # an offer without candidates is served (#13): its client trickles them by PATCH
    for sdp, reason in cases:
        status, body, _ = await post(node, kind, meeting["id"], token, sdp)
        assert status == 400 and reason in body, (status, body[:300])
    assert await leftovers(node, meeting["id"]) == {"participants": 0, "peers": 0, "sessions": 0}
    status, body, _ = await post(node, kind, meeting["id"], token, good)  # a real offer still works
    assert status == 201, body


async def test_ws_offer_without_media_is_refused_without_a_media_peer(media_node):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    ws = await WsClient.connect(node, await node.endpoint_token("hg-meo-vac"))
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        await ws.expect("joined")
        for sdp, reason in NO_MEDIA:
            ref = await ws.send("offer", sdp=sdp)
            error = await ws.expect("error", ref=ref)
            assert error["code"] == "offer_refused" and reason in error["message"], error
        assert not [m for m in ws.received if m["type"] == "answer"]
        assert len(node.ctx.media.peers) == 0
    finally:
        await ws.close()


@pytest.mark.parametrize("kind", ["whip", "whep"])
async def test_sessions_per_token_are_capped(media_node, kind):
    node = media_node
    cap = CAPS[f"{kind}_sessions_per_token"]
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(node, meeting["id"], "Một đường dẫn", "participant")
    sdp = await offer(kind)
    locations = []
    for _ in range(cap):
        status, body, location = await post(node, kind, meeting["id"], token, sdp)
        assert status == 201, body
        locations.append(location)
    before = await leftovers(node, meeting["id"])
    status, body, _ = await post(node, kind, meeting["id"], token, sdp)
    assert status == 429 and f"{kind}_sessions_per_token = {cap}" in body, body
    assert await leftovers(node, meeting["id"]) == before  # the refused one left nothing
    async with node.http.delete(node.url + locations[0], headers={"Authorization": f"Bearer {token}"}) as r:
        assert r.status == 200
    status, body, _ = await post(node, kind, meeting["id"], token, sdp)  # a freed place can be taken again
    assert status == 201, body


async def test_a_burst_from_one_viewer_link_gets_at_most_the_cap(media_node):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(node, meeting["id"], "Xem")
    sdp = await offer("whep")
    results = await asyncio.gather(*(post(node, "whep", meeting["id"], token, sdp) for _ in range(60)))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {201, 429}, statuses
    admitted = statuses.count(201)
    assert 1 <= admitted <= CAPS["whep_sessions_per_token"], statuses
    held = await leftovers(node, meeting["id"])
    assert held["sessions"] <= admitted and held["participants"] <= admitted and held["peers"] <= admitted, held
    print(f"60 WHEP offers at once from one link: {admitted} admitted, {statuses.count(429)} refused with 429")


@pytest.mark.parametrize("kind", ["whip", "whep"])
async def test_sessions_per_meeting_are_capped(media_node, kind):
    node = media_node
    cap = CAPS[f"{kind}_sessions_per_meeting"]
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    sdp = await offer(kind)
    for i in range(cap):
        status, body, _ = await post(
            node, kind, meeting["id"], await link(node, meeting["id"], f"Phòng {i}", "participant"), sdp
        )
        assert status == 201, body
    before = await leftovers(node, meeting["id"])
    status, body, _ = await post(node, kind, meeting["id"], await link(node, meeting["id"], "Thêm", "participant"), sdp)
    assert status == 429 and f"{kind}_sessions_per_meeting = {cap}" in body, body
    assert await leftovers(node, meeting["id"]) == before


@pytest.fixture
async def two_nodes(tmp_path, redis_url):
    await flush(redis_url)  # the Redis server is shared by the test session
    a = await start_node(tmp_path / "a", store=redis_url, node_id="node-a", media="local", limits=CAPS)
    b = await start_node(tmp_path / "b", store=redis_url, node_id="node-b", media="none", limits=CAPS)
    yield a, b
    await b.stop()
    await a.stop()


async def test_the_cap_holds_across_nodes(two_nodes):
    a, b = two_nodes
    meeting = await a.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(a, meeting["id"], "Xem hai nút")
    sdp = await offer("whep")
    for node in (a, a, b, b):
        status, body, _ = await post(node, "whep", meeting["id"], token, sdp)
        assert status == 201, body
    for node in (a, b):
        status, body, _ = await post(node, "whep", meeting["id"], token, sdp)
        assert status == 429 and "whep_sessions_per_token = 4" in body, body


async def test_a_session_refused_while_a_cap_is_busy_holds_no_place_under_the_others(media_node):
    """The per-meeting cap's lock is held elsewhere (another node mid-count, or one that died
    holding it): the request is refused with 503, and the place it took under the per-token cap
    first is given back, not held until it expires (PRESENCE_TTL_S)."""
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(node, meeting["id"], "Xem")
    assert await node.ctx.store.acquire_lock(f"cap:whep-sessions:meeting:{meeting['id']}", "another-node", 30)
    status, body, _ = await post(node, "whep", meeting["id"], token, await offer("whep"))
    assert status == 503 and "retry" in body, body
    fingerprint = hashlib.sha256(token.encode()).hexdigest()[:32]
    assert await node.ctx.store.list_ephemeral(f"whep-sessions:token:{fingerprint}") == []


async def test_a_session_whose_last_checks_fail_leaves_nothing(media_node, monkeypatch):
    """The store fails after the peer, the room entry and the places were made (here: opening the
    occurrence): the client gets a 500, and none of it stays behind, as no task will release it."""
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(node, meeting["id"], "Xem")
    before = await leftovers(node, meeting["id"])

    async def store_down(*_args):
        raise StoreError("the store is unreachable")

    monkeypatch.setattr(node.ctx.scheduler, "ensure_open", store_down)
    status, body, _ = await post(node, "whep", meeting["id"], token, await offer("whep"))
    assert status >= 500, body
    assert await leftovers(node, meeting["id"]) == before
    fingerprint = hashlib.sha256(token.encode()).hexdigest()[:32]
    assert await node.ctx.store.list_ephemeral(f"whep-sessions:token:{fingerprint}") == []
    assert not node.ctx.sessions._media  # revocations would still look for it


@pytest.mark.parametrize("kind", ["whip", "whep"])
async def test_a_session_that_never_connects_ends_and_frees_its_place(media_node, monkeypatch, kind):
    """Candidates nobody answers at (a client that vanished before ICE): before, such a session
    held its place under the caps, its participant entry and its media peer for good."""
    monkeypatch.setattr("mcu.peer.peer.CONNECT_TIMEOUT_S", 1.5)
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    token = await link(node, meeting["id"], "OBS", "participant")
    dead = re.sub(r"(a=candidate:\S+ \d+ udp \d+ 127\.0\.0\.1) \d+", r"\1 9", await offer(kind))  # discard port
    assert " 9 typ host" in dead
    cap = CAPS[f"{kind}_sessions_per_token"]
    locations = []
    for _ in range(cap):
        status, body, location = await post(node, kind, meeting["id"], token, dead)
        assert status == 201, body
        locations.append(location)
    assert (await post(node, kind, meeting["id"], token, dead))[0] == 429
    assert await wait_for(lambda: not node.ctx.media.peers, timeout=10), "the peers never closed"
    assert await wait_for_async(lambda: leftovers(node, meeting["id"]), {"participants": 0, "peers": 0, "sessions": 0})
    for location in locations:
        async with node.http.delete(node.url + location, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 404
    status, body, _ = await post(node, kind, meeting["id"], token, await offer(kind))  # its places are free
    assert status == 201, body


async def wait_for_async(read, want, timeout: float = 10.0) -> bool:
    deadline = asyncio.get_running_loop().time() + timeout
    while (got := await read()) != want:
        assert asyncio.get_running_loop().time() < deadline, got
        await asyncio.sleep(0.1)
    return True
