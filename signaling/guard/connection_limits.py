"""Slow and greedy clients: bounded body reads, open connections per address, the guarded site.

- ``read_bounded``: a request body read whole (every TCP segment), at most ``limit`` bytes
  (413), within ``timeout`` seconds (408). Every handler that reads a body uses it.
- Slow headers: aiohttp closes a connection whose request headers are not complete when its
  keep-alive timer fires; that timer runs from the moment the connection opens (and from the end
  of each response). ``make_app`` sets it to ``limits.http_header_timeout_s`` through
  ``handler_args`` (public aiohttp API), so idle keep-alive connections close after it too.
  That timer's start at connection time is aiohttp behaviour, not API: test_transport_limits.py
  (trickled headers) catches an aiohttp upgrade that changes it.
- ``AddressLimiter``: open connections per client address. ``GuardedSite`` counts TCP connections
  per peer address and refuses one over ``limits.connections_per_address`` with a 429 before
  aiohttp sees it. A peer that is one of ``trusted_proxies`` carries many clients, so its
  connections are not counted; ``proxy_client_limit`` counts its requests in flight (a WebSocket is one
  long request) per X-Forwarded-For client instead. A connection that shows a node token (another
  node of the cluster) stops counting: ``exempt_cluster_node``.

The only aiohttp internal used is ``BaseSite._server`` (the listening server that ``stop()``
closes), which every aiohttp site sets; ``check_aiohttp`` verifies it when a site is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Callable

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from signaling.guard.client_address import client_address, is_trusted, parse_networks
from signaling.errors import rate_limited, timed_out, too_large, unreadable_body

log = logging.getLogger("giaoban.limits")
LOG_EVERY_S = 10.0


# --- bodies --------------------------------------------------------------------------------------
async def read_bounded(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body: 413 when it is (or says it is) over ``limit`` bytes, 408 when it has not
    all arrived within ``timeout`` seconds of the first read."""
    if request.content_length is not None and request.content_length > limit:
        raise too_large(f"request body of {request.content_length} bytes exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            # content.read(n) answers with what has arrived so far, which is one TCP segment on a
            # slow link: read until the end of the body
            while chunk := await request.content.read(limit + 1 - size):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise too_large(f"request body exceeds {limit} bytes")
    except TimeoutError:
        raise timed_out(f"the request body did not arrive within {timeout:g} s ({size} bytes received)") from None
    except (web.RequestPayloadError, HttpProcessingError) as exc:  # e.g. Content-Encoding: gzip, not gzip
        # the rest of the body cannot be parsed either: close after the answer, and let aiohttp
        # not read on (its lingering read would raise again and log a traceback)
        request.content.feed_eof()
        encoding = request.headers.get("Content-Encoding")
        how = f" as Content-Encoding {encoding!r}" if encoding else ""
        raise unreadable_body(f"the request body cannot be read{how}: {exc}") from None
    return b"".join(chunks)


# --- open connections per address ---------------------------------------------------------------
class AddressLimiter:
    """Counts what is open per client address; refuses the one over ``per_address``."""

    def __init__(self, per_address: int, trusted_proxies: list[str]) -> None:
        self.per_address = per_address
        self.trusted = tuple(trusted_proxies)
        self._networks = parse_networks(self.trusted)
        self._open: dict[str, int] = {}
        self._counted: dict[asyncio.BaseTransport, str] = {}  # admitted connections -> their address
        self.refused = 0
        self._logged_at, self._logged_count = -LOG_EVERY_S, 0

    def is_proxy(self, address: str) -> bool:
        return is_trusted(address, self._networks)

    def acquire(self, address: str) -> bool:
        count = self._open.get(address, 0)
        if count >= self.per_address:
            self._note_refused(address)
            return False
        self._open[address] = count + 1
        return True

    def _note_refused(self, address: str) -> None:
        """One log line per LOG_EVERY_S at most: a flood of refusals must not flood the log."""
        self.refused += 1
        now = time.monotonic()
        if now - self._logged_at >= LOG_EVERY_S:
            log.warning(
                "refused %d connection(s) over connections_per_address=%d; the latest from %s",
                self.refused - self._logged_count,
                self.per_address,
                address,
            )
            self._logged_at, self._logged_count = now, self.refused

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def admit(self, transport: asyncio.BaseTransport, address: str) -> bool:
        if not self.acquire(address):
            return False
        self._counted[transport] = address
        return True

    def forget(self, transport: asyncio.BaseTransport) -> None:
        """The connection closed, or proved it comes from a cluster node: it no longer counts."""
        address = self._counted.pop(transport, None)
        if address is not None:
            self.release(address)

    def open_from(self, address: str) -> int:
        return self._open.get(address, 0)


LIMITER = web.AppKey("address_limiter", AddressLimiter)
REFUSED_LINGER_S = 1.0  # a refused connection is closed at the latest after this


def _refusal(per_address: int) -> bytes:
    body = msgspec.json.encode(
        {
            "error": {
                "code": "rate_limited",
                "message": f"too many open connections from this address (limit {per_address})",
            }
        }
    )
    head = (
        f"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


class _Guard(asyncio.Protocol):
    """Stands in front of aiohttp's protocol for one TCP connection: counts it against its peer
    address, and hands every event to aiohttp's protocol once the connection is admitted."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], limiter: AddressLimiter) -> None:
        self._factory, self._limiter = factory, limiter
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self._limiter.is_proxy(address):
            if not self._limiter.admit(transport, address):
                self._refuse(transport)  # type: ignore[arg-type]
                return
            self._transport = transport
        self._inner = self._factory()
        self._inner.connection_made(transport)

    def _refuse(self, transport: asyncio.Transport) -> None:
        """Answer 429 and send FIN, but read (and drop) the client's request for a moment before
        closing: closing with its request unread would send a reset that can overtake the 429."""
        transport.write(_refusal(self._limiter.per_address))
        if transport.can_write_eof():
            transport.write_eof()
        asyncio.get_running_loop().call_later(REFUSED_LINGER_S, transport.close)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is not None:
            self._limiter.forget(self._transport)
            self._transport = None
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def check_aiohttp() -> None:
    """The one aiohttp internal this module relies on; fail at start-up, not at shutdown."""
    if "_server" not in getattr(web.BaseSite, "__slots__", ()):
        import aiohttp

        raise RuntimeError(
            f"aiohttp {aiohttp.__version__}: web.BaseSite no longer has _server; "
            "signaling/guard/connection_limits.py GuardedSite needs updating"
        )


class GuardedSite(web.BaseSite):
    """A TCP site whose connections pass through ``_Guard`` (per-address connection limit)."""

    def __init__(self, runner: web.AppRunner, host: str | None, port: int, *, backlog: int = 128) -> None:
        check_aiohttp()
        super().__init__(runner, backlog=backlog)
        # kept here rather than read back from BaseSite's private _runner and _backlog
        self._host, self._port, self._listen_backlog = host, port, backlog
        self._handler = runner.server  # set by runner.setup(), which BaseSite checked
        self.limiter: AddressLimiter = runner.app[LIMITER]

    @property
    def name(self) -> str:
        return f"http://{self._host or '0.0.0.0'}:{self._port}"

    async def start(self) -> None:
        await super().start()
        handler = self._handler
        assert handler is not None, "runner.setup() first"
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Guard(handler, self.limiter),
            self._host,
            self._port,
            backlog=self._listen_backlog,
            reuse_address=True,
        )


@web.middleware
async def proxy_client_limit(request: web.Request, handler) -> web.StreamResponse:
    """Behind a trusted proxy: the connection cap per X-Forwarded-For client, counted per request."""
    limiter = request.app[LIMITER]
    if not limiter.is_proxy(request.remote or ""):
        return await handler(request)
    address = client_address(request, limiter.trusted)
    if address == request.remote:  # the proxy itself (or a malformed hop): its own traffic
        return await handler(request)
    if not limiter.acquire(address):
        raise rate_limited(f"too many open connections from this address (limit {limiter.per_address})")
    try:
        return await handler(request)
    finally:
        limiter.release(address)


def exempt_cluster_node(request: web.Request) -> None:
    """Call once the request has proved it comes from a cluster node (a valid node token): its
    connection stops counting against its address, since a signaling node holds one WebSocket
    per media peer it relays and may well hold more than connections_per_address."""
    if request.transport is not None and LIMITER in request.app:
        request.app[LIMITER].forget(request.transport)


# --- running the server (giaoban serve) ----------------------------------------------------------
async def _serve(app: web.Application, host: str | None, port: int, shutdown_timeout: float) -> None:
    runner = web.AppRunner(app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await GuardedSite(runner, host, port).start()
        await asyncio.Event().wait()  # until SIGINT/SIGTERM (GracefulExit) cancels us
    finally:
        await runner.cleanup()


def run_app(
    app: web.Application, host: str | None, port: int, loop: asyncio.AbstractEventLoop, shutdown_timeout: float = 10.0
) -> None:
    """``web.run_app`` with the guarded site: serve until a signal, then shut down gracefully."""
    main = loop.create_task(_serve(app, host, port, shutdown_timeout))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
