"""The guard on aioice's UDP receive path, and the media sockets' sizes.

Every media socket of this process is an aioice ``StunProtocol`` (host candidates, and relayed
ones through a TURN client). aioice passes each datagram that does not parse as STUN, whatever
its source and size, to the peer's queue, and aiortc's DTLS transport reads ``data[0]`` of it:
one empty datagram from anywhere ends the peer's media (issue #11, item 1).

``install()`` (idempotent, called by ``LocalMediaNode.start``) replaces
``StunProtocol.datagram_received`` for the whole process with a filter that demultiplexes like
RFC 7983 and keeps only what a peer can really send:

* first byte 0-3 (STUN): at least a STUN header; aioice parses it, and a parse error that is
  not a ``ValueError`` (aioice lets ``struct.error`` out of short attributes) is dropped (one
  that is, aioice queues for the peer, which aiortc discards: the queue bound below holds it);
* first byte 20-63 (DTLS) or 128-191 (RTP/RTCP): at least a DTLS record / RTP header; handed
  to the peer's queue without a STUN parse. Not filtered by source address: a browser's DTLS
  can come from an address aioice has no candidate pair for yet (mDNS candidates resolving,
  a peer-reflexive pair not listed), and dropping it failed 3 of 8 browser test runs here;
  libsrtp and OpenSSL discard what a stranger sends (the fuzz test sends it);
* anything else (empty, ZRTP, TURN channel data on a host socket, garbage): dropped;
* and, whatever it is, a datagram that finds ``QUEUE_LIMIT`` datagrams already waiting in the
  peer's queue (aioice's is unbounded): dropped, like a full socket buffer drops it, so that a
  flood or a loop that cannot keep up costs bounded memory.

aioice's mDNS socket (opened when a browser signals ``.local`` candidates) parses DNS with
dnspython, which raises more than the ``FormError`` aioice catches: its handler is wrapped so
that such a datagram is dropped without a traceback in the log.

aioice's internals are reached through ``mcu.fence`` (replace_datagram_handlers, ice_backlog,
deliver_to_ice, set_socket_receive_buffer), which ``fence.check()`` verifies at start.

What passes still reaches libsrtp (which authenticates it) or OpenSSL (which discards records
it cannot use); the fuzz test in tests/mcu/peer/test_hostile_datagrams.py holds both to that.

The module also owns the socket details that depend on the event loop: ``install()`` makes
aioice size every socket's receive buffer to ``SOCKET_RCVBUF`` (aioice sets it through
``transport.get_extra_info("socket")``, which works in asyncio and uvloop alike), and
``send_socket()`` gives the router a plain socket to ``sendto`` on: asyncio's own, or under
uvloop (whose transport socket refuses ``sendto``) a duplicate of its descriptor, so that a full
send buffer drops the packet instead of queueing it in the transport without bound.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Callable

from mcu.fence import deliver_to_ice, ice_backlog, replace_datagram_handlers, set_socket_receive_buffer

log = logging.getLogger("mcu.peer.udp_guard")

# Kernel buffers of a peer's UDP socket. Receive: a 720p key frame at 4 Mbit/s arrives as a
# burst of ~220 packets, and each costs 2.3 KiB of buffer on loopback (the kernel counts its
# whole allocation; more on some NICs), while fanning one packet out to 100 subscribers takes
# the loop ~1 ms: 2 MiB holds ~1800 such packets (fewer with a NIC's larger buffers), several
# key frames or four seconds of stream (loadtests/README.md, "Ingress"). Send: this is the per-subscriber queue; when full, packets
# are dropped (see subscriber.Output).
SOCKET_RCVBUF = 2 << 20
SOCKET_SNDBUF = 512 << 10

STUN_HEADER = 20
DTLS_RECORD_HEADER = 13
RTP_HEADER = 12  # an RTCP packet is shorter, but SRTCP adds a 4-byte index and a 10-byte tag
QUEUE_LIMIT = 2000  # datagrams waiting per peer in user space, on top of the socket's buffer

_original: Callable[[Any, bytes, tuple], None] | None = None  # aioice's own handlers
_original_mdns: Callable[[Any, bytes, tuple], None] | None = None
_capped_warned = False
dropped = 0  # datagrams refused since start (all sockets); read by tests and metrics


def install() -> None:
    """Filter every aioice socket of the process and size new ones; idempotent. Run
    ``mcu.fence.check()`` first (``LocalMediaNode.start`` and ``Agent.start`` do)."""
    global _original, _original_mdns
    if _original is not None:
        return
    set_socket_receive_buffer(SOCKET_RCVBUF)
    _original, _original_mdns = replace_datagram_handlers(_guarded, _guarded_mdns)


def _guarded(self: Any, data: bytes, addr: tuple) -> None:
    global dropped
    n = len(data)
    first = data[0] if n else 256
    if first < 4:
        # what aioice cannot parse as STUN (ValueError) it queues for the peer, from any source:
        # bounded by QUEUE_LIMIT like everything else
        if n < STUN_HEADER or ice_backlog(self) >= QUEUE_LIMIT:
            dropped += 1
            return
        try:
            _original(self, data, addr)  # type: ignore[misc]
        except Exception:  # a STUN-like datagram aioice cannot parse
            dropped += 1
        return
    if (
        n < RTP_HEADER
        or not (127 < first < 192 or (19 < first < 64 and n >= DTLS_RECORD_HEADER))
        or ice_backlog(self) >= QUEUE_LIMIT
    ):
        dropped += 1
        return
    deliver_to_ice(self, data)


def _guarded_mdns(self: Any, data: bytes, addr: tuple) -> None:
    global dropped
    try:
        _original_mdns(self, data, addr)  # type: ignore[misc]
    except Exception:  # a DNS message dnspython cannot parse
        dropped += 1


# -- sending ---------------------------------------------------------------------------------


def send_socket(transport: Any) -> tuple[Any, socket.socket | None]:
    """A socket the router can ``sendto`` on without the transport's queue, sized.

    Returns ``(sock, owned)``: ``owned`` is a duplicate descriptor the caller must close
    (uvloop), or None (asyncio's own socket, closed by the transport)."""
    raw = getattr(transport, "_sock", None)  # asyncio's selector transport
    owned = None
    if raw is None:
        pseudo = transport.get_extra_info("socket")  # uvloop: a PseudoSocket without sendto
        if pseudo is None:
            return _TransportSender(transport), None
        owned = raw = socket.socket(pseudo.family, pseudo.type, pseudo.proto, fileno=os.dup(pseudo.fileno()))
    size_buffers(raw)
    return raw, owned


class _TransportSender:
    """Last resort when a transport has no socket at all: the transport's own sendto."""

    def __init__(self, transport: Any) -> None:
        self.sendto = transport.sendto


def size_buffers(sock: Any) -> None:
    global _capped_warned
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_RCVBUF)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_SNDBUF)
        got = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2  # Linux doubles it
    except OSError as exc:  # pragma: no cover - restricted environments
        log.debug("cannot size socket buffers: %s", exc)
        return
    # the kernel silently caps the size at net.core.rmem_max (212992 on a stock system):
    # say it once, as the operator must raise it (see loadtests/README.md, ingress)
    if got < SOCKET_RCVBUF and not _capped_warned:
        _capped_warned = True
        log.warning(
            "UDP receive buffers capped at %d bytes: set net.core.rmem_max to at least "
            "%d, or key-frame bursts are dropped at ingress",
            got,
            SOCKET_RCVBUF,
        )
