"""Every media socket of the node gets the buffers we ask for, on both event loops (#11, item 14).

``giaoban serve`` runs uvloop, whose datagram transport has no ``_sock``: the node used to fall
back to the transport's ``sendto`` and never size the socket, leaving aioice's 256 KiB receive
buffer, which a 4 Mbit/s publisher's key frames overflow. Linux reads back twice the size set.
The subscriber must also decode what the node sends on the fast path (a plain ``sendto``).
"""

from __future__ import annotations

import asyncio
import socket

import pytest
import uvloop

from mcu.node import LocalMediaNode
from mcu.peer.udp_guard import SOCKET_RCVBUF, SOCKET_SNDBUF
from tests.support.media_clients import Client, PatternTrack, wait_for

pytestmark = pytest.mark.integration


def buffers(sock) -> tuple[int, int]:
    return (sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF), sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF))


async def scenario() -> None:
    node = LocalMediaNode(ice_host="127.0.0.1")
    await node.start()
    pub = Client(node, "sized", "pub", video=PatternTrack(90), recv_video=False, recv_audio=False)
    sub = Client(node, "sized", "sub", publish=False)
    try:
        await pub.join()
        await sub.join()
        assert await wait_for(lambda: len(sub.video_frames()) >= 10, timeout=15)
        assert all(abs(shade - 90) < 30 for _, shade in sub.video_frames()[-5:])
        for name, peer in node.meetings["sized"].peers.items():
            connection = peer.pc.getTransceivers()[0].receiver.transport.transport._connection
            for protocol in connection._protocols:  # every socket the peer opened
                rcvbuf, _ = buffers(protocol.transport.get_extra_info("socket"))
                assert rcvbuf == 2 * SOCKET_RCVBUF, (name, rcvbuf)
            session, sock, _ = peer.transport.binding
            assert isinstance(sock, socket.socket), (name, type(sock))  # the plain sendto path
            assert buffers(sock) == (2 * SOCKET_RCVBUF, 2 * SOCKET_SNDBUF), name
    finally:
        await sub.close()
        await pub.close()
        await node.stop()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_peer_sockets_sized_and_sending(loop: str) -> None:
    run = uvloop.run if loop == "uvloop" else asyncio.run
    run(asyncio.wait_for(scenario(), 60))
