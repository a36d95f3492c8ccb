"""The directory over REST shows an endpoint's ``sip`` block (#14) to operators only: it names the
province's room-system addresses and networks, which a room terminal's token need not read."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

SAMPLE_SIP = {
    "uri": "sip:hg-ubnd@127.0.0.1:5070",
    "auth_user": "hg-ubnd",
    "allowed_sources": ["127.0.0.1/32"],
    "codecs": ["H264", "G722", "PCMU"],
}


async def test_operators_see_the_sip_block_and_endpoints_do_not(node):
    status, body = await node.call("GET", "/api/v1/directory")
    by_id = {e["id"]: e for e in body["endpoints"]}
    assert status == 200 and by_id["hg-ubnd"]["sip"] == SAMPLE_SIP
    assert [e for e in by_id if "sip" in by_id[e]] == ["hg-ubnd"]  # the others have none
    status, one = await node.call("GET", "/api/v1/directory/endpoints/hg-ubnd")
    assert status == 200 and one["sip"] == SAMPLE_SIP and "hg-meo-vac" in one["children"]

    token = await node.endpoint_token("hg-ubnd")  # the room itself: its subtree, no SIP details
    status, body = await node.call("GET", "/api/v1/directory", token=token)
    assert status == 200 and "hg-ubnd" in {e["id"] for e in body["endpoints"]}
    assert not any("sip" in e for e in body["endpoints"]), body["endpoints"][0]
    status, one = await node.call("GET", "/api/v1/directory/endpoints/hg-ubnd", token=token)
    assert status == 200 and "sip" not in one and one["credential"] == "hagiang/hg-ubnd"
