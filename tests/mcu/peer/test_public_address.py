"""A media node behind a 1:1 NAT (#16, the ``public_ip`` setting): each host candidate gets a
server-reflexive twin on the public address and the same port, as a STUN server would have found.

The NAT itself cannot be built here (no nftables in the test machine), so the integration test
checks what the client receives: the answer's candidates name the public address with the host
candidate's port as related address, and media still flows over the host candidate."""

from __future__ import annotations

import re

import aioice.ice
import pytest
from aioice import Candidate

from mcu.node import LocalMediaNode
from mcu.peer.ice import nat_candidates, pinned_addresses
from tests.support.media_clients import Client, PatternTrack, wait_for


def host(address: str, port: int, component: int = 1) -> Candidate:
    return Candidate(
        foundation="1", component=component, transport="udp", priority=100, host=address, port=port, type="host"
    )


def test_each_host_candidate_gets_a_reflexive_twin_of_its_family_on_the_same_port():
    got = nat_candidates([host("10.20.0.5", 40000), host("2001:db8::5", 40002)], ["203.0.113.7"])
    assert [(c.type, c.host, c.port, c.related_address, c.related_port) for c in got] == [
        ("srflx", "203.0.113.7", 40000, "10.20.0.5", 40000)
    ]
    assert nat_candidates([host("10.20.0.5", 40000)], []) == []


@pytest.mark.integration
async def test_the_answer_names_the_public_address_and_media_flows():
    node = LocalMediaNode(ice_host="127.0.0.1", public_ip=["203.0.113.7"])
    await node.start()
    pub = Client(node, "nat", "pub", video=PatternTrack(90), recv_video=False, recv_audio=False)
    sub = Client(node, "nat", "sub", publish=False)
    try:
        await pub.join()
        await sub.join()
        answer = pub.pc.remoteDescription.sdp
        hosts = set(re.findall(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host", answer))
        mapped = re.findall(
            r"a=candidate:\S+ 1 udp \d+ 203\.0\.113\.7 (\d+) typ srflx raddr 127\.0\.0\.1 rport (\d+)", answer
        )
        assert hosts and mapped, answer
        assert all(port == rport and port in hosts for port, rport in mapped), answer
        assert await wait_for(lambda: len(sub.video_frames()) >= 10, timeout=15)
        assert all(abs(shade - 90) < 30 for _, shade in sub.video_frames()[-5:])
    finally:
        await sub.close()
        await pub.close()
        await node.stop()
    assert pinned_addresses() == ()  # the pin and the mapping are gone with the node
    assert aioice.ice.Connection.get_component_candidates.__name__ == "get_component_candidates"
