"""Fuzz the SDP the server takes: offers on /ws (after join), and WHIP/WHEP bodies. Each input is a
real aiortc offer with a few lines broken (see strategies.sdp_mutations), a bare 'v=0', or junk.
The server answers or refuses with a 4xx/error naming the problem; a session it opened is ended
again. Invariants: see tests/fuzz/support.py."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from tests.fuzz.strategies import sdp_bodies
from tests.fuzz.support import SCALE, Checker, Failures, draw, record, serves_a_meeting
from tests.fuzz.test_fuzz_ws import Conversation
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
