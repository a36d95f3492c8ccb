"""Hostile UDP datagrams to a media node's ports must not end anyone's media (#11, item 1).

A real media node, a real aiortc publisher and subscriber. The server's ICE ports come from
the candidates in its answers. A seeded, bounded stream of hostile datagrams (empty, 1 byte,
truncated RTP/RTCP headers, bogus lengths, STUN-like and DTLS-like garbage, random bytes) goes
to every one of them, first from a stranger's socket on 127.0.0.1, then from the clients' own
ICE sockets (what an attacker spoofing the peer's address, or sitting on its path, can send).
Then the subscriber must still decode new frames. Run on both event loops: the default one and
uvloop, which ``giaoban serve`` uses.
"""

from __future__ import annotations

import asyncio
import random
import socket
from types import SimpleNamespace

import aioice.ice
import pytest
import uvloop

from mcu.peer import udp_guard
from mcu.node import LocalMediaNode
from tests.support.datagrams import hostile
from tests.support.media_clients import Client, PatternTrack, wait_for

SEED = 11
PER_PORT = 1500  # datagrams per server port and per source


def server_ports(sdp: str) -> list[tuple[str, int]]:
    ports = []
    for line in sdp.splitlines():
        if line.startswith("a=candidate:") and " udp " in line.lower():
            fields = line.split()
            ports.append((fields[4], int(fields[5])))
    return sorted(set(ports))


def own_ice_transport(client: Client):
    """The transport of the client's nominated ICE pair: datagrams from the peer's address."""
    dtls = client.pc.getTransceivers()[0].receiver.transport
    return dtls.transport._connection._nominated[1].protocol.transport


async def flood(rng: random.Random, sendto, targets: list[tuple[str, int]]) -> int:
    sent = 0
    for target in targets:
        for i in range(PER_PORT):
            try:
                sendto(hostile(rng), target)
                sent += 1
            except (BlockingIOError, OSError):
                pass  # a full send buffer: the rate limit of this machine
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the node read (all run on one loop)
    return sent


async def scenario() -> None:
    node = LocalMediaNode(ice_host="127.0.0.1")
    await node.start()
    pub = Client(node, "hostile", "pub", video=PatternTrack(200), recv_video=False, recv_audio=False)
    sub = Client(node, "hostile", "sub", publish=False)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    stranger.setblocking(False)
    try:
        await pub.join()
        await sub.join()
        assert await wait_for(lambda: len(sub.video_frames()) >= 5, timeout=15)
        targets = {c.spec.endpoint_id: server_ports(c.pc.remoteDescription.sdp) for c in (pub, sub)}
        assert all(targets.values()), targets
        everyone = sorted({t for ts in targets.values() for t in ts})
        rng = random.Random(SEED)
        sent = await flood(rng, stranger.sendto, everyone)
        for client in (pub, sub):  # from the peers' own address and port
            sent += await flood(rng, own_ice_transport(client).sendto, targets[client.spec.endpoint_id])
        assert sent > PER_PORT * len(everyone)
        # aiortc's receive loop dies at once on a bad datagram, the peer's media ~1.5 s later:
        # give that time, then the subscriber must still be getting new pictures
        await asyncio.sleep(2.5)
        before = len(sub.video_frames())
        assert await wait_for(lambda: len(sub.video_frames()) >= before + 10, timeout=10), (
            f"subscriber decoded {len(sub.video_frames()) - before} frames after the attack"
        )
        assert all(abs(shade - 200) < 30 for _, shade in sub.video_frames()[-5:])
        assert node.meetings["hostile"].peers.keys() == {"pub", "sub"}
    finally:
        stranger.close()
        await sub.close()
        await pub.close()
        await node.stop()


@pytest.mark.integration
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_media_survives_hostile_datagrams(loop: str) -> None:
    dropped = udp_guard.dropped
    run = uvloop.run if loop == "uvloop" else asyncio.run
    run(asyncio.wait_for(scenario(), 60))
    assert udp_guard.dropped > dropped  # the guard, not luck, kept the garbage out


@pytest.mark.parametrize("first", [0x00, 0x01, 0x03])
def test_stun_like_garbage_from_anyone_waits_no_more_than_the_queue_limit(first: int) -> None:
    """A datagram that starts like STUN but does not parse (length field that lies, unknown
    method) is handed by aioice to the peer's queue, from any source: it must meet the same
    bound as everything else, or a flood of it grows that queue without limit."""
    udp_guard.install()
    conn = aioice.ice.Connection(ice_controlling=False)
    protocol = SimpleNamespace(receiver=conn, local_candidate=SimpleNamespace(component=1))
    garbage = bytes([first, 0x01, 0x00, 0x00]) + bytes(16) + b"lies about its length"
    for _ in range(udp_guard.QUEUE_LIMIT + 500):
        aioice.ice.StunProtocol.datagram_received(protocol, garbage, ("203.0.113.9", 9))
    assert conn._queue.qsize() <= udp_guard.QUEUE_LIMIT
