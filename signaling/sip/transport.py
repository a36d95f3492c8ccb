"""SIP transports of the stack (#14): UDP, TCP and TLS listeners that hand whole messages up.

aiosipua's own transports drop oversized TCP messages silently, have no read deadline and no TLS,
so the stack keeps its own small ones. Each message goes up as ``(bytes, Link)``: the Link says how
to answer its sender (the same UDP socket, or the same TCP/TLS connection), so every response goes
back where the request came from, never to an address a Via names (no reflection through us).

Stream framing (RFC 3261 §18.3): headers up to ``\\r\\n\\r\\n`` then Content-Length body bytes. A
message must arrive whole within ``MESSAGE_DEADLINE_S`` of its first byte (slowloris), a header
section over ``MAX_HEADER_BYTES`` or a body over ``MAX_BODY_BYTES`` closes the connection (after a
513 when the message can still be answered), and connections are capped per address and overall.
CRLF keepalives (RFC 5626 §4.4.1) are answered with a single CRLF.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 16 * 1024
MAX_DATAGRAM = MAX_HEADER_BYTES + MAX_BODY_BYTES
MESSAGE_DEADLINE_S = 10.0  # a message's bytes after its first one
IDLE_S = 300.0  # a connection with no message at all for this long is closed
TLS_HANDSHAKE_S = 10.0
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\S*)[ \t]*\r?$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class Link:
    """Where a message came from and how to send to that place: one UDP peer or one stream connection."""

    transport: str  # "udp" | "tcp" | "tls"
    peer: tuple[str, int]
    send: Callable[[bytes], None]

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"


Deliver = Callable[[bytes, Link], None]
Refuse = Callable[[bytes, int, str, Link], None]  # header section, status, reason, link


class FramingError(Exception):
    """A stream message that cannot be framed; ``reason`` is the 400/513 phrase."""

    def __init__(self, code: int, reason: str, head: bytes = b"") -> None:
        super().__init__(reason)
        self.code, self.reason, self.head = code, reason, head


def content_length(head: bytes) -> int:
    """The Content-Length of a header section; streams must carry one (RFC 3261 §20.14)."""
    match = _CONTENT_LENGTH.search(head)
    if match is None:
        raise FramingError(400, "Missing Content-Length", head)
    value = match.group(1)
    if not value.isdigit():
        raise FramingError(400, "Bad Content-Length", head)
    length = int(value)
    if length > MAX_BODY_BYTES:
        raise FramingError(513, "Message Too Large", head)
    return length


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, deliver: Deliver) -> None:
        self.deliver = deliver
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip(b"\r\n\x00 "):
            return  # keepalive
        peer = (str(addr[0]), int(addr[1]))
        transport = self.transport
        assert transport is not None

        def send(raw: bytes) -> None:
            transport.sendto(raw, peer)

        self.deliver(data, Link("udp", peer, send))

    def error_received(self, exc: Exception) -> None:
        log.debug("sip udp: %s", exc)  # ICMP port unreachable from a gone peer: nothing to do


class Transports:
    """The stack's sockets: one UDP endpoint, TCP and TLS servers, and the stream connections."""

    def __init__(self, deliver: Deliver, refuse: Refuse, *, max_conns: int = 1024, max_conns_per_ip: int = 32) -> None:
        self.deliver, self.refuse = deliver, refuse
        self.max_conns, self.max_conns_per_ip = max_conns, max_conns_per_ip
        self.udp: _Udp | None = None
        self.servers: dict[str, asyncio.Server] = {}
        self.bound: dict[str, tuple[str, int]] = {}  # transport -> (host, port) actually bound
        self.conns: dict[tuple[str, tuple[str, int]], asyncio.StreamWriter] = {}
        self.per_ip: Counter[str] = Counter()
        self.tasks: set[asyncio.Task[None]] = set()

    async def listen_udp(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, proto = await loop.create_datagram_endpoint(lambda: _Udp(self.deliver), local_addr=(host, port))
        self.udp = proto
        self.bound["udp"] = transport.get_extra_info("sockname")[:2]

    async def listen_stream(self, name: str, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(name, reader, writer)

        server = await asyncio.start_server(
            accepted, host, port, ssl=tls, ssl_handshake_timeout=TLS_HANDSHAKE_S if tls else None,
            limit=MAX_HEADER_BYTES + 4,
        )  # fmt: skip
        self.servers[name] = server
        self.bound[name] = server.sockets[0].getsockname()[:2]

    def udp_link(self, peer: tuple[str, int]) -> Link:
        if self.udp is None or self.udp.transport is None:
            raise ConnectionError("sip: udp is not listening")
        transport = self.udp.transport
        return Link("udp", peer, lambda raw: transport.sendto(raw, peer))

    async def stream_link(self, name: str, peer: tuple[str, int], tls: ssl.SSLContext | None = None) -> Link:
        """A link over the open connection to ``peer``, or a new one (read like an accepted one)."""
        open_writer = self.conns.get((name, peer))
        if open_writer is not None and not open_writer.is_closing():
            return self._link(name, peer, open_writer)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(peer[0], peer[1], ssl=tls, limit=MAX_HEADER_BYTES + 4), TLS_HANDSHAKE_S
        )
        task = asyncio.get_running_loop().create_task(self._serve(name, reader, writer, outbound=True))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return self._link(name, peer, writer)

    def _link(self, name: str, peer: tuple[str, int], writer: asyncio.StreamWriter) -> Link:
        def send(raw: bytes) -> None:
            if not writer.is_closing():
                writer.write(raw)

        return Link(name, peer, send)

    async def _serve(
        self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbound: bool = False
    ) -> None:
        addr = writer.get_extra_info("peername")
        peer = (str(addr[0]), int(addr[1]))
        ip = peer[0]
        if not outbound and (len(self.conns) >= self.max_conns or self.per_ip[ip] >= self.max_conns_per_ip):
            log.warning("sip %s: connection from %s refused: too many connections", name, ip)
            writer.close()
            return
        self.conns[(name, peer)] = writer
        self.per_ip[ip] += 1
        link = self._link(name, peer, writer)
        try:
            while True:
                message = await self._read_message(reader, writer)
                if message is None:
                    break
                self.deliver(message, link)
        except FramingError as e:
            log.info("sip %s: %s from %s: connection closed", name, e.reason, ip)
            if e.head:
                self.refuse(e.head, e.code, e.reason, link)
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ssl.SSLError):
            log.info("sip %s: connection from %s closed (timeout, reset or oversized headers)", name, ip)
        finally:
            self.per_ip[ip] -= 1
            if self.per_ip[ip] <= 0:
                del self.per_ip[ip]
            if self.conns.get((name, peer)) is writer:
                del self.conns[(name, peer)]
            writer.close()

    async def _read_message(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes | None:
        """One framed message, or None at EOF; CRLF keepalives are answered and skipped."""
        while True:
            async with asyncio.timeout(IDLE_S):
                first = await reader.read(1)
            if not first:
                return None
            if first not in b"\r\n":
                break
            if first == b"\n":
                writer.write(b"\r\n")  # pong to a CRLF ping
        async with asyncio.timeout(MESSAGE_DEADLINE_S):
            try:
                head = first + await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                raise FramingError(513, "Message Too Large") from None
            length = content_length(head)
            body = await reader.readexactly(length) if length else b""
        return head + body

    async def close(self) -> None:
        if self.udp is not None and self.udp.transport is not None:
            self.udp.transport.close()
        for server in self.servers.values():
            server.close()
        for writer in list(self.conns.values()):
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for server in self.servers.values():
            try:
                async with asyncio.timeout(2):
                    await server.wait_closed()
            except TimeoutError:
                pass
        self.servers.clear()
        self.conns.clear()
        self.udp = None
        self.bound.clear()
