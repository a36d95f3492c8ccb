"""A hand-driven SIP peer for the stack tests (#14): writes the exact bytes a test wants over UDP,
TCP or TLS on 127.0.0.1 and reads what the stack sends back, parsed by aiosipua."""

from __future__ import annotations

import asyncio
import os
import ssl

from aiosipua.message import SipMessage, SipRequest, SipResponse


class RawPeer:
    """One socket of a test: ``send`` text as is, ``receive`` the next message (or raise after timeout)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SipMessage] = asyncio.Queue()
        self.raw: list[bytes] = []
        self.transport: asyncio.BaseTransport | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.port = 0
        self.name = "udp"

    @classmethod
    async def udp(cls, target: tuple[str, int]) -> RawPeer:
        peer = cls()
        loop = asyncio.get_running_loop()

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr) -> None:
                peer._take(data)

        peer.transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0), remote_addr=target)
        peer.port = peer.transport.get_extra_info("sockname")[1]
        return peer

    @classmethod
    async def stream(cls, target: tuple[str, int], tls: ssl.SSLContext | None = None) -> RawPeer:
        peer = cls()
        peer.name = "tls" if tls else "tcp"
        reader, peer.writer = await asyncio.open_connection(*target, ssl=tls)
        peer.port = peer.writer.get_extra_info("sockname")[1]
        peer._reader_task = asyncio.ensure_future(peer._read(reader))
        return peer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            self._take(head + (await reader.readexactly(length) if length else b""))

    def _take(self, data: bytes) -> None:
        self.raw.append(data)
        if data.strip():
            self.queue.put_nowait(SipMessage.parse(data))

    def send(self, data: bytes | str) -> None:
        raw = data.encode() if isinstance(data, str) else data
        if self.writer is not None:
            self.writer.write(raw)
        else:
            self.transport.sendto(raw)  # type: ignore[union-attr]

    async def receive(self, timeout: float = 5.0) -> SipMessage:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def response(self, timeout: float = 5.0, skip_provisional: bool = True) -> SipResponse:
        while True:
            msg = await self.receive(timeout)
            if isinstance(msg, SipResponse) and (msg.status_code >= 200 or not skip_provisional):
                return msg

    async def request(self, method: str, timeout: float = 5.0) -> SipRequest:
        while True:
            msg = await self.receive(timeout)
            if isinstance(msg, SipRequest) and msg.method == method:
                return msg

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        elif self.transport is not None:
            self.transport.close()


def request(
    method: str,
    target: tuple[str, int],
    peer: RawPeer,
    *,
    user: str = "7001",
    call_id: str | None = None,
    cseq: int = 1,
    branch: str | None = None,
    to_tag: str = "",
    headers: dict[str, str] | None = None,
    body: str = "",
) -> str:
    """The text of a request from ``peer`` to the stack at ``target`` (From tag ``room``)."""
    host, port = target
    lines = [
        f"{method} sip:{user}@{host}:{port} SIP/2.0",
        f"Via: SIP/2.0/{peer.name.upper()} 127.0.0.1:{peer.port};branch={branch or 'z9hG4bK' + os.urandom(6).hex()};rport",
        "Max-Forwards: 70",
        f"From: <sip:room@127.0.0.1:{peer.port}>;tag=room",
        f"To: <sip:{user}@{host}:{port}>" + (f";tag={to_tag}" if to_tag else ""),
        f"Call-ID: {call_id or os.urandom(8).hex()}@test",
        f"CSeq: {cseq} {method}",
        f"Contact: <sip:room@127.0.0.1:{peer.port}" + (f";transport={peer.name}>" if peer.name != "udp" else ">"),
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body
