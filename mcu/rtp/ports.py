"""One m-line's UDP sockets for a SIP room system: RTP on an even port, RTCP on the next one.

No ICE, no rtcp-mux (RFC 3550 §11; a datagram that looks like RTCP on the RTP port is taken as
RTCP all the same, as some systems mux without saying). Symmetric RTP (RFC 4961): we send from
the port we receive on, and only to an address that has proved itself: nothing goes out before
the room's first valid packet (an INVITE's SDP may name any address, and a forged INVITE's source
proves little over UDP). Then RTP goes to the source address of that packet (latching, for rooms
behind NAT), per socket (RTP and RTCP latch apart); a line that has not latched yet sends to its
SDP address once that host has sent a valid packet on any line of the leg (``proven``, shared by
the leg's lines: a room whose camera is off gets the composite once its audio came). After
latching, datagrams from any other address are dropped and counted.

Who may be latched to: the host of the SDP address (any port: NATs remap ports), any host when
the SDP address is private, shared, link-local or unspecified (the room is behind a NAT and its
packets come from the NAT's public address), and any host when the session is SRTP (only the
holder of the keys gets a packet through ``accept``). A re-INVITE's new address starts over; one
that repeats the last SDP address (a session refresh, hold, resume) keeps the latch.

``address_problem`` names an SDP address we never send to (multicast, broadcast, reserved,
loopback unless we are, our own address).

``accept(data, rtcp)`` (the line's) decides whether a datagram is valid (a known payload type,
an SRTP packet that authenticates) before it can latch. Garbage (too short, not version 2, too
long) never reaches it and is counted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from functools import partial
from typing import Any, Callable

from mcu.api import OfferRefused
from mcu.peer.udp_guard import size_buffers
from mcu.rtp.offer import RtpOffer

log = logging.getLogger("mcu.rtp.ports")

Address = tuple[str, int]
MAX_DATAGRAM = 1500  # larger than any packet a room sends on a 1500-byte MTU
BIND_TRIES = 64


def may_latch_anywhere(sdp_host: str) -> bool:
    """The SDP address cannot be where the packets come from: a NAT stands between."""
    try:
        ip = ipaddress.ip_address(sdp_host)
    except ValueError:
        return True  # a name: we cannot tell, so we follow the packets
    shared = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT
    return ip.is_private and not ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip in shared


def address_problem(sdp_host: str, ours: set[str]) -> str | None:
    """Why an offer's c= address may not receive our media (None: it may). ``ours``: the addresses
    this leg binds and answers with. The unspecified address (the old hold) is fine: nothing is sent."""
    try:
        ip = ipaddress.ip_address(sdp_host)
    except ValueError:
        return None  # a name: nothing is sent to it before a packet proves an address
    if ip.is_unspecified:
        return None
    if ip.is_multicast:
        return "a multicast address"
    if ip == ipaddress.IPv4Address("255.255.255.255") or ip.is_reserved:
        return "a broadcast or reserved address"
    if ip.is_loopback and not any(_loopback(a) for a in ours):
        return "a loopback address"
    if sdp_host in ours and not ip.is_loopback:
        return "this server's own address"
    return None


def checked_address(sdp: RtpOffer, host: str, own_ports: set[int]) -> str:
    """Our address for an answer to ``sdp`` (``our_address``); OfferRefused (the SIP 488) when one of
    its c= addresses may not receive media (``address_problem``) or is one of ``own_ports``."""
    _check(sdp, {host}, own_ports)  # before the route probe: no connect() to a broadcast address
    address = our_address(host, next((m.address for m in sdp.lines if m.address), sdp.address))
    if address != host:
        _check(sdp, {host, address}, own_ports)
    return address


def _check(sdp: RtpOffer, ours: set[str], own_ports: set[int]) -> None:
    for media in sdp.lines:
        if media.port == 0 or not media.address:
            continue
        problem = address_problem(media.address, ours)
        if problem is None and media.address in ours and media.port in own_ports:
            problem = "this leg's own port"
        if problem is not None:
            raise OfferRefused(f"the SDP's c= {media.address} is {problem}: no media is sent there")


def our_address(host: str, target: str) -> str:
    """Our address in SDP: the host we bound, or the one that routes to ``target`` (the room)."""
    if host not in ("0.0.0.0", "::"):
        return host
    target = target or "127.0.0.1"
    with socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((target, 9))  # no packet is sent: the kernel picks the source address
        return str(probe.getsockname()[0])


def _loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


class _Receiver(asyncio.DatagramProtocol):
    def __init__(self, ports: RtpPorts, rtcp: bool) -> None:
        self.ports = ports
        self.rtcp = rtcp

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.ports.received(data, (addr[0], addr[1]), self.rtcp)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable after a send: ignored
        log.debug("%s: %s", self.ports.name, exc)


class RtpPorts:
    """The RTP/RTCP socket pair of one m-line, with latching and counters."""

    def __init__(self, host: str, name: str, proven: set[str] | None = None) -> None:
        self.host = host
        self.name = name
        # (datagram, is_rtcp) -> valid and consumed: the line's (mcu.rtp.line.LegLine.accept)
        self.accept: Callable[[bytes, bool], bool] = lambda data, rtcp: False
        self.port = 0
        self.rtp_sock: socket.socket | None = None
        self.rtcp_sock: socket.socket | None = None
        self._transports: list[asyncio.BaseTransport] = []
        self.rtp_to: Address | None = None  # where our RTP goes once proven (``rtp_dest``)
        self.rtcp_to: Address | None = None
        self._sdp: tuple[str, int, int] | None = None  # the last SDP address: host, RTP and RTCP ports
        self._sdp_host = ""
        self.proven = proven if proven is not None else set()  # hosts that sent a valid packet (leg-wide)
        self._anywhere = False
        self.latched_rtp = False
        self.latched_rtcp = False
        self.on_latched: Callable[[], None] = lambda: None  # where we may send changed
        self.last_rx = time.monotonic()
        self.foreign = 0  # datagrams from an address we do not take
        self.garbage = 0  # too short, too long, not RTP/RTCP version 2
        self.refused = 0  # refused by accept (unknown payload type, failed SRTP)
        self.errors = 0  # accept raised (a packet its decoder could not take)
        self.closed = False

    async def open(self) -> None:
        """Bind an even RTP port and the RTCP port above it on ``host``."""
        loop = asyncio.get_running_loop()
        for _ in range(BIND_TRIES):
            rtp = _udp(self.host, 0)
            port = rtp.getsockname()[1]
            if port % 2 or port >= 65535:
                rtp.close()
                continue
            try:
                rtcp = _udp(self.host, port + 1)
            except OSError:
                rtp.close()
                continue
            self.port, self.rtp_sock, self.rtcp_sock = port, rtp, rtcp
            for sock, is_rtcp in ((rtp, False), (rtcp, True)):
                transport, _ = await loop.create_datagram_endpoint(partial(_Receiver, self, is_rtcp), sock=sock)
                self._transports.append(transport)
            return
        raise OSError(f"no free even UDP port pair on {self.host}")

    def expect(self, host: str, port: int, rtcp_port: int | None, srtp: bool) -> None:
        """Where the room's SDP says it receives; latching starts over when it changed."""
        sdp = (host, port, rtcp_port or port + 1)
        if sdp == self._sdp or host in ("0.0.0.0", "::"):
            return  # the same (the latch stays), or the old way to hold (c=0.0.0.0): where it was stays
        self._sdp, self._sdp_host = sdp, host
        rtp, rtcp = (host, port), (host, sdp[2])
        self._anywhere = srtp or may_latch_anywhere(host)
        self.rtp_to, self.rtcp_to = rtp, rtcp
        self.latched_rtp = self.latched_rtcp = False
        self.on_latched()

    def received(self, data: bytes, addr: Address, rtcp: bool) -> None:
        if self.closed:
            return
        if len(data) < 8 or len(data) > MAX_DATAGRAM or data[0] >> 6 != 2:
            self.garbage += 1
            return
        if not rtcp and 192 <= data[1] <= 223:  # RTCP packet types 200-207 with the marker bit
            rtcp = True
        latched = self.latched_rtcp if rtcp else self.latched_rtp
        current = self.rtcp_to if rtcp else self.rtp_to
        if latched and addr != current:
            self.foreign += 1
            return
        if not latched and not self._anywhere and addr[0] != self._sdp_host:
            self.foreign += 1
            return
        try:
            ok = self.accept(data, rtcp)
        except Exception:  # one bad packet never ends the socket (a traceback once: it may be a flood)
            self.errors += 1
            if self.errors == 1:
                log.exception("%s: datagram not handled", self.name)
            ok = False
        if not ok:
            self.refused += 1
            return
        self.last_rx = time.monotonic()
        if not latched:
            self._latch(addr, rtcp)

    @property
    def rtp_dest(self) -> Address | None:
        """Where our RTP may go now: the latched address, or the SDP's once its host proved itself."""
        if self.rtp_to is not None and (self.latched_rtp or self.rtp_to[0] in self.proven):
            return self.rtp_to
        return None

    @property
    def rtcp_dest(self) -> Address | None:
        if self.rtcp_to is not None and (self.latched_rtcp or self.rtcp_to[0] in self.proven):
            return self.rtcp_to
        return None

    def _latch(self, addr: Address, rtcp: bool) -> None:
        self.proven.add(addr[0])
        if rtcp:
            self.latched_rtcp, self.rtcp_to = True, addr
        else:
            self.latched_rtp = True
            if addr != self.rtp_to:
                log.info("%s: RTP latched to %s:%d (SDP said %s)", self.name, addr[0], addr[1], self.rtp_to)
                self.rtp_to = addr
                if not self.latched_rtcp and self.rtcp_to is not None and self.rtcp_to[0] != addr[0]:
                    self.rtcp_to = (addr[0], addr[1] + 1)  # behind the same NAT, until its RTCP comes
        self.on_latched()  # the leg's lines may send now

    def send_rtcp(self, packet: bytes) -> None:
        to = self.rtcp_dest
        if self.closed or self.rtcp_sock is None or to is None:
            return
        try:
            self.rtcp_sock.sendto(packet, to)
        except OSError:
            pass  # a full buffer or an unreachable room: like a lost packet

    def stats(self) -> dict[str, Any]:
        return {
            "port": self.port,
            "rtp_to": list(self.rtp_to) if self.rtp_to else None,
            "latched": self.latched_rtp,
            "sending_to": list(self.rtp_dest) if self.rtp_dest else None,
            "foreign": self.foreign,
            "garbage": self.garbage,
            "refused": self.refused,
            "errors": self.errors,
        }

    def close(self) -> None:
        """Free both sockets; idempotent."""
        if self.closed:
            return
        self.closed = True
        for transport in self._transports:
            transport.close()
        self._transports = []


def _udp(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    size_buffers(sock)
    return sock
