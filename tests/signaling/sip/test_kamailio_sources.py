"""Room systems behind Kamailio are judged by their own addresses (#14, ``sip.trusted_proxies``).

deploy/kamailio/kamailio.cfg run by a real Kamailio in front of one giaoban server that trusts it.
The rooms need addresses of their own, so the test runs in a network namespace it makes
(``unshare -rn``: only its own loopback, 127.0.0.1 for Kamailio and the server, 127.0.0.2.. for the
rooms; nothing leaves it). The outer test re-runs this file's ``test_in_netns_*`` tests in there.

* room-a, whose ``allowed_sources`` is its own address 127.0.0.2, is admitted through Kamailio
  (the packets come from Kamailio's 127.0.0.1, which is not in that list); the Via below
  Kamailio's carries received/rport as kamailio.cfg's force_rport() promises;
* 25 rooms (5 per address) held at once through Kamailio are all answered: the per-address cap (20)
  counts each room's address, not Kamailio's; a 6th call from one address with the cap set to 5
  is refused by that cap (the limit follows the caller's address, it is not switched off).
Rooms: our SIP stack as the UA with an audio-only SDP (no media needed to be answered).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest

from signaling.sip.calls import DialFailed
from signaling.sip.stack import IncomingCall, SipStack
from signaling.sip_settings import SipSettings
from tests.signaling.sip.conftest import audio_sdp
from tests.signaling.sip.test_gateway import CHAIR, _sip_in, until, write_directory
from tests.support.harness import start_node
from tests.support.kamailio import Kamailio, require_kamailio
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration
IN_NETNS = "GIAOBAN_TEST_NETNS"
in_netns_only = pytest.mark.skipif(not os.environ.get(IN_NETNS), reason="run by test_rooms_behind_kamailio")
ROOM_HOSTS = [f"127.0.0.{k}" for k in range(3, 8)]  # 5 addresses x 5 rooms


@pytest.mark.timeout(300)
def test_rooms_behind_kamailio_in_a_network_namespace():
    require_kamailio()
    if os.environ.get(IN_NETNS):
        pytest.skip("already inside")
    if subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode != 0:
        pytest.skip("cannot make a network namespace here (unshare -rn)")
    inner = f"ip link set lo up && exec {sys.executable} -m pytest -q -p no:cacheprovider -o faulthandler_timeout=100 -k in_netns {__file__}"
    done = subprocess.run(
        ["unshare", "-rn", "sh", "-c", inner],
        env={**os.environ, IN_NETNS: "1"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0 and "2 passed" in done.stdout, done.stdout[-4000:] + done.stderr[-2000:]


async def _node(tmp_path, rooms: dict[str, tuple[str, int]], **sip):
    """A server trusting Kamailio (127.0.0.1), each room's uri and allowed_sources at its own address
    (the port of its stack: the server's dial-out to it gets its 486 at once)."""
    blocks = {room: {"uri": f"sip:{room}@{h}:{p}", "allowed_sources": [h]} for room, (h, p) in rooms.items()}
    directory = write_directory(tmp_path / "directory.yaml", blocks)
    port = free_port()
    settings = SipSettings(enabled=True, port=port, transports=["udp", "tcp"], trusted_proxies=["127.0.0.1"], **sip)
    node = await start_node(
        tmp_path / "data", media="local", ice_host="127.0.0.1", directory=str(directory), sip=settings
    )
    return node, port


async def _room_stack(host: str) -> SipStack:
    async def busy(call) -> None:  # the server's dial-out to these rooms: they only dial in
        call.reject(486, "Busy Here")

    stack = SipStack(SipSettings(enabled=True, host=host, port=0, transports=["udp"]), busy, session_expires=None)
    await stack.start()
    return stack


@in_netns_only
async def test_in_netns_a_room_is_admitted_by_its_own_address_through_kamailio(tmp_path):
    room = await _room_stack("127.0.0.2")
    node, port = await _node(tmp_path, {"room-a": ("127.0.0.2", room.addresses["udp"][1]), "room-far": ("10.9.9.9", 1)})
    kam = Kamailio(tmp_path / "kam", {"node-a": port, "node-b": port}).start()
    try:
        meeting = await node.schedule(CHAIR, ["room-a", "room-far"])
        kam.pin(meeting["dial_number"], port)
        call = await room.dial(f"sip:{meeting['dial_number']}@127.0.0.1:{kam.port}", "room-a", sdp=audio_sdp())
        assert await call.wait_answered(timeout=15)
        assert await until(lambda: _sip_in(node, meeting["id"], "room-a"), 10)
        (incoming,) = [c for c in node.ctx.sip.stack.calls.values() if isinstance(c, IncomingCall)]
        recorded = incoming.invite.via[1]  # below Kamailio's own: force_rport() wrote what it saw
        assert (recorded.received, recorded.rport) == ("127.0.0.2", str(room.addresses["udp"][1])), recorded
        assert incoming.source == ("127.0.0.2", room.addresses["udp"][1])
        with pytest.raises(DialFailed) as refused:  # room-far's list is 10.9.9.9: its From is not enough
            far = await room.dial(f"sip:{meeting['dial_number']}@127.0.0.1:{kam.port}", "room-far", sdp=audio_sdp())
            await far.wait_answered(timeout=15)
        assert refused.value.code == 403
        assert node.ctx.sip.stack.calls_per_ip == {"127.0.0.2": 1}  # not Kamailio's 127.0.0.1
        await call.hangup()
    finally:
        await asyncio.wait_for(node.stop(), 20)
        await room.stop()
        kam.stop()


@in_netns_only
async def test_in_netns_more_than_20_rooms_through_kamailio_are_not_capped_as_one_address(tmp_path):
    rooms = {f"room-{i:02d}": ROOM_HOSTS[i // 5] for i in range(25)}
    stacks = {host: await _room_stack(host) for host in ROOM_HOSTS}
    node, port = await _node(tmp_path, {room: (h, stacks[h].addresses["udp"][1]) for room, h in rooms.items()})
    kam = Kamailio(tmp_path / "kam", {"node-a": port, "node-b": port}).start()
    calls = []
    try:
        meeting = await node.schedule(CHAIR, list(rooms))
        number = meeting["dial_number"]
        kam.pin(number, port)
        uri = f"sip:{number}@127.0.0.1:{kam.port}"

        async def dial(room: str, host: str):
            call = await stacks[host].dial(uri, room, sdp=audio_sdp())
            calls.append(call)
            assert await call.wait_answered(timeout=30), room

        for host in ROOM_HOSTS:  # 5 rooms an address at once; Kamailio's pike allows 30 requests in 2 s
            await asyncio.gather(*(dial(room, h) for room, h in rooms.items() if h == host))
        gateway = node.ctx.sip.stack
        assert dict(gateway.calls_per_ip) == {host: 5 for host in ROOM_HOSTS}
        assert await until(lambda: _sip_in(node, meeting["id"], "room-24"), 10)

        gateway.limits = type(gateway.limits)(calls_per_address=5)  # the cap still holds per room address
        with pytest.raises(DialFailed) as refused:
            extra = await stacks[ROOM_HOSTS[0]].dial(uri, "room-00", sdp=audio_sdp())
            calls.append(extra)
            await extra.wait_answered(timeout=15)
        assert refused.value.code in (500, 503)  # Kamailio turns a 503 into 500 (RFC 3261 16.7)
        assert gateway.counts["refused:Too Many Calls From Your Address"] >= 1  # (Kamailio tries the next node too)
    finally:
        await asyncio.gather(*(asyncio.wait_for(c.hangup(), 3) for c in calls), return_exceptions=True)
        await asyncio.wait_for(node.stop(), 20)  # first: its dial-outs to the rooms still get their 486
        for stack in stacks.values():
            await asyncio.wait_for(stack.stop(), 10)
        kam.stop()
