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
import struct
from types import SimpleNamespace

import aioice.ice
import pytest
import uvloop

from mcu.peer import udp_guard
from mcu.node import LocalMediaNode
from tests.support.media_clients import Client, PatternTrack, wait_for

SEED = 11
PER_PORT = 1500  # datagrams per server port and per source
STUN_COOKIE = 0x2112A442


def stun_like(rng: random.Random) -> bytes:
    """A STUN header with a (mostly) matching length and attributes of bogus lengths."""
    attrs = b""
    for _ in range(rng.randrange(4)):
        # PRIORITY (4 bytes), USERNAME, XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT...
        kind = rng.choice((0x0024, 0x0006, 0x0020, 0x0008, 0x8028, 0x0009, 0x8029, 0x0001))
        value = rng.randbytes(rng.randrange(9))
        attrs += struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)
    length = len(attrs) if rng.random() < 0.8 else rng.randrange(65536)
    method = rng.choice((0x0001, 0x0101, 0x0111, 0x0003, rng.randrange(0x4000)))
    return struct.pack("!HHI", method, length, STUN_COOKIE) + rng.randbytes(12) + attrs


def dtls_like(rng: random.Random) -> bytes:
    """A DTLS record header (content type 20-25) with a bogus length and garbage body."""
    head = struct.pack("!BHH6sH", rng.choice((20, 21, 22, 23, 25, rng.randrange(20, 64))),
                       rng.choice((0xFEFD, 0xFEFF, rng.randrange(65536))), rng.randrange(3),
                       rng.randbytes(6), rng.randrange(65536))
    return (head + rng.randbytes(rng.randrange(200)))[: rng.choice((1, 5, 12, 13, 40, 300))]


def rtp_like(rng: random.Random) -> bytes:
    """An RTP/RTCP header: truncated, CSRC count and extension length past the end, or an
    RTCP packet type with a length field that lies."""
    b0 = 0x80 | rng.randrange(64)
    b1 = rng.choice((rng.randrange(256), rng.randrange(192, 209), 96, 111))
    body = struct.pack("!BBH", b0, b1, rng.randrange(65536)) + rng.randbytes(rng.randrange(40))
    if rng.random() < 0.3:  # extension header claiming 65535 words
        body = body[:12].ljust(12, b"\0") + b"\xbe\xde\xff\xff" + rng.randbytes(rng.randrange(8))
    return body[: rng.choice((2, 4, 8, 11, 12, 13, len(body)))]


def hostile(rng: random.Random) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:
        return b""
    if kind == 1:
        return rng.randbytes(1)
    if kind == 2:
        return stun_like(rng)
    if kind == 3:
        return dtls_like(rng)
    if kind in (4, 5):
        return rtp_like(rng)
    return rng.randbytes(rng.choice((2, 7, 19, 20, 64, 1200, 1500)))


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
    pub = Client(node, "hostile", "pub", video=PatternTrack(200), recv_video=False,
                 recv_audio=False)
    sub = Client(node, "hostile", "sub", publish=False)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    stranger.setblocking(False)
    try:
        await pub.join()
        await sub.join()
        assert await wait_for(lambda: len(sub.video_frames()) >= 5, timeout=15)
        targets = {c.spec.endpoint_id: server_ports(c.pc.remoteDescription.sdp)
                   for c in (pub, sub)}
        assert all(targets.values()), targets
        everyone = sorted({t for ts in targets.values() for t in ts})
        rng = random.Random(SEED)
        sent = await flood(rng, stranger.sendto, everyone)
        for client in (pub, sub):  # from the peers' own address and port
            sent += await flood(rng, own_ice_transport(client).sendto,
                                targets[client.spec.endpoint_id])
        assert sent > PER_PORT * len(everyone)
        # aiortc's receive loop dies at once on a bad datagram, the peer's media ~1.5 s later:
        # give that time, then the subscriber must still be getting new pictures
        await asyncio.sleep(2.5)
        before = len(sub.video_frames())
        assert await wait_for(lambda: len(sub.video_frames()) >= before + 10, timeout=10), (
            f"subscriber decoded {len(sub.video_frames()) - before} frames after the attack")
        assert all(abs(shade - 200) < 30 for _, shade in sub.video_frames()[-5:])
        assert node.meetings["hostile"].peers.keys() == {"pub", "sub"}
    finally:
        stranger.close()
        await sub.close()
        await pub.close()
        await node.stop()


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
