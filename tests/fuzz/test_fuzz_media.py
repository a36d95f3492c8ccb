"""Fuzz the SDP the server takes: offers on /ws (after join), and WHIP/WHEP bodies. Each input is a
real aiortc offer with a few lines broken (see strategies.sdp_mutations), a bare 'v=0', or junk.
The server answers or refuses with a 4xx/error naming the problem; a session it opened is ended
again. Invariants: see tests/fuzz/support.py."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from tests.fuzz.strategies import sdp_bodies, sdpfrag_bodies
from tests.fuzz.support import SCALE, Checker, Failures, draw, record, serves_a_meeting
from tests.fuzz.test_fuzz_ws import Conversation
from signaling.api.trickle import TRICKLE
from tests.support.media_clients import offer_sdp

pytestmark = pytest.mark.timeout(120 * max(1, SCALE))  # SCALE: a longer run by hand
OFFERS = 120
CONTENT_TYPES = ["application/sdp", "application/sdp", "application/sdp", "application/json", "text/plain", ""]


async def base_offer() -> str:
    pc, sdp = await offer_sdp()
    await pc.close()
    return sdp


async def test_sdp_offers_on_ws(fuzz_node, checker: Checker):
    node = fuzz_node
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=1)
    talk = Conversation(node, await node.endpoint_token("hg-meo-vac"), meeting["id"], checker)
    await talk.open()
    refused, offers = 0, draw(sdp_bodies(await base_offer()), OFFERS)
    with Failures() as failures:
        for sdp in offers:
            record("ws_offer", sdp)
            with failures.on(sdp):
                if talk.ws is None:
                    await talk.open()
                before = checker.durable()
                errors = await talk.roundtrip({"v": 1, "type": "offer", "id": "o", "sdp": sdp or "x"})
                refused += bool(errors)
                if errors:
                    checker.unchanged(before, sdp[:200], errors[0]["message"][:200])
                checker.log_clean(sdp[:200])
    await talk.close()
    assert 0 < refused < len(offers), "the generator reaches both answers and refusals"
    await serves_a_meeting(node)
    checker.log_clean("the final join")


async def test_whip_and_whep_bodies(fuzz_node, checker: Checker):
    node = fuzz_node
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=1)
    tokens = {}
    for kind, role in (("whip", "chair"), ("whep", "viewer")):
        status, link = await node.call(
            "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": f"{kind} fuzz", "role": role}
        )
        assert status == 201, link
        tokens[kind] = link["token"]
    inputs = st.tuples(
        st.sampled_from(["whip", "whep"]),
        st.sampled_from(CONTENT_TYPES),
        sdp_bodies(await base_offer()) | st.binary(max_size=300),
    )
    statuses: list[int] = []
    with Failures() as failures:
        for kind, ctype, body in draw(inputs, OFFERS):
            what = (kind, ctype, body[:200])
            record("whip_whep", (kind, ctype, body))
            with failures.on(what):
                statuses.append(await _post(node, checker, kind, ctype, body, tokens[kind], meeting["id"], what))
    assert 201 in statuses and 400 in statuses, "the generator reaches both sessions and refusals"
    await serves_a_meeting(node)
    checker.log_clean("the final join")


async def _post(node, checker: Checker, kind: str, ctype: str, body, token: str, meeting_id: str, what) -> int:
    data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    headers = {"Authorization": f"Bearer {token}", **({"Content-Type": ctype} if ctype else {})}
    before = checker.durable()
    async with node.http.post(f"{node.url}/{kind}/{meeting_id}", data=data, headers=headers) as resp:
        answer = await resp.json() if resp.content_type == "application/json" else await resp.text()
        location = resp.headers.get("Location")
    checker.http(what, resp.status, answer, before)
    if resp.status == 201:  # end the session it opened, as a client would
        assert location and answer.startswith("v=0"), (location, answer)
        async with node.http.delete(node.url + location, headers={"Authorization": f"Bearer {token}"}) as gone:
            assert gone.status == 200, await gone.text()
    return resp.status


async def test_trickle_patch_bodies(fuzz_node, checker: Checker):
    """PATCH bodies of a live WHIP session (#13): fragments with lines broken, restarts, junk, in
    several content types and If-Match values. Answers: 204, or 4xx in words with nothing stored."""
    node = fuzz_node
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=1)
    status, link = await node.call(
        "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": "trickle fuzz", "role": "chair"}
    )
    assert status == 201, link
    auth = {"Authorization": f"Bearer {link['token']}"}
    offer = await base_offer()
    async with node.http.post(
        f"{node.url}/whip/{meeting['id']}", data=offer.encode(), headers={**auth, "Content-Type": "application/sdp"}
    ) as resp:
        assert resp.status == 201, await resp.text()
        location, etag = resp.headers["Location"], resp.headers["ETag"]
    ice = [line for line in offer.splitlines() if line.startswith(("a=ice-ufrag:", "a=ice-pwd:"))][:2]
    candidates = [line for line in offer.split("m=")[1].splitlines() if line.startswith("a=candidate:")]
    valid = "\r\n".join([*ice, "m=audio 9 UDP/TLS/RTP/SAVPF 0", "a=mid:0", *candidates, "a=end-of-candidates"])
    inputs = st.tuples(
        st.sampled_from([TRICKLE, TRICKLE, TRICKLE, "application/sdp", "text/plain", ""]),
        st.sampled_from([None, None, etag, "*", '"0"', "", "W/" + etag]),
        sdpfrag_bodies(valid + "\r\n") | st.binary(max_size=300),
    )
    statuses: list[int] = []
    with Failures() as failures:
        for ctype, if_match, body in draw(inputs, OFFERS):
            what = (ctype, if_match, body[:200])
            record("whip_patch", what)
            with failures.on(what):
                data = body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
                headers = {**auth, **({"Content-Type": ctype} if ctype else {})}
                if if_match is not None:
                    headers["If-Match"] = if_match
                before = checker.durable()
                async with node.http.patch(node.url + location, data=data, headers=headers) as resp:
                    answer = await resp.json() if resp.content_type == "application/json" else await resp.text()
                checker.http(what, resp.status, answer, before)
                assert resp.status in (204, 400, 412, 415, 422), (resp.status, answer)
                statuses.append(resp.status)
    assert {204, 400, 422} <= set(statuses), "the generator reaches candidates, refusals and restarts"
    async with node.http.delete(node.url + location, headers=auth) as gone:
        assert gone.status == 200, await gone.text()
    await serves_a_meeting(node)
    checker.log_clean("the final join")
