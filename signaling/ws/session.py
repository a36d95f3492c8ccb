"""One WebSocket client: an actor with a reader, one owner task that handles messages in order
(so SDP, ICE and floor actions for this client never interleave) and a writer fed by a bounded
queue (a client that stops reading is disconnected rather than growing memory).

The WebSocket layer (session, actions, registry) sits above ``signaling.context`` and beside the
REST routes; it imports neither ``signaling.api`` nor ``signaling.app`` (the layers: ``signaling.context``)."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any

from aiohttp import WSMsgType, web

from signaling import metrics
from mcu.api import PeerExtra
from signaling.auth.authenticator import REVOKED, Identity
from signaling.context import Context
from signaling.errors import WS_CLOSE, ApiError, classify, rate_limited, too_large
from signaling.ws.actions import MeetingActions
from signaling.protocol import Hello, Ping, PolicyViolation, ProtocolError, decode, encode, error_msg, server_msg
from signaling.store.base import StoreError

log = logging.getLogger("giaoban.session")
OUTBOX_SIZE = 256
INBOX_SIZE = 64
HEARTBEAT_S = 10.0
MAX_VIOLATIONS = 50  # rate/size/protocol errors before the connection is closed


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst, self.tokens, self.t = rate, burst, float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Session(MeetingActions):
    def __init__(self, ctx: Context, ws: web.WebSocketResponse, remote: str | None) -> None:
        self.ctx, self.ws, self.remote = ctx, ws, remote
        self.session_id = secrets.token_hex(8)
        self.identity: Identity | None = None
        self.connected_at = time.time()
        self.meeting_id: str | None = None
        self.occurrence_id: str | None = None
        self.role: str | None = None
        self.link = "fibre"
        self.media_extra: PeerExtra = {}
        self.peer = None
        self._peer_gen = 0  # counts this session's media peers: news from an older one is ignored
        self._held: list | None = None
        self._out: asyncio.Queue = asyncio.Queue(OUTBOX_SIZE)
        self._inbox: asyncio.Queue = asyncio.Queue(INBOX_SIZE)
        limits = ctx.settings.limits
        self._bucket = TokenBucket(limits.ws_rate_per_s, limits.ws_burst)
        self._violations = 0
        self._tasks: list[asyncio.Task] = []
        self._leaving: asyncio.Future | None = None  # a meeting release in progress
        self._closer: asyncio.Task | None = None
        self._closed = False

    @property
    def endpoint_id(self) -> str:
        return self.identity.endpoint_id if self.identity else "?"

    def log_extra(self) -> dict[str, Any]:
        return {"session": self.session_id, "endpoint": self.endpoint_id, "meeting": self.meeting_id}

    # --- outgoing ------------------------------------------------------------------------------
    async def deliver(self, msg: dict[str, Any], text: str | None = None) -> None:
        """Queue ``msg`` for the client; ``text`` is its JSON when already encoded (room events)."""
        if self._closed:
            return
        try:
            self._out.put_nowait((msg["type"], text or encode(msg)))
        except asyncio.QueueFull:
            log.warning("client is not reading; disconnecting", extra=self.log_extra())
            self._closed = True
            self._closer = asyncio.create_task(self.ws.close(code=1008, message=b"not reading"))

    async def _writer(self) -> None:
        while True:
            kind, text = await self._out.get()
            if self.ws.closed:
                return
            await self.ws.send_str(text)
            metrics.WS_OUT.labels(kind).inc()

    async def on_room_event(self, msg: dict[str, Any], text: str) -> None:
        if "to" not in msg:
            return await self.deliver(msg, text)
        msg = {k: v for k, v in msg.items() if k != "to"}
        if msg["type"] == "mute_request":
            self.enqueue(lambda: self.apply_mute(msg))
        elif msg["type"] == "removed":
            self.enqueue(lambda: self.leave_meeting(reason=f"removed by {msg['by']}"))
        await self.deliver(msg)

    def enqueue(self, action) -> None:
        """Run ``action`` (an async callable) on the owner task, in order with client messages."""
        try:
            self._inbox.put_nowait(action)
        except asyncio.QueueFull:
            log.warning("inbox full; internal action dropped", extra=self.log_extra())

    async def error(self, exc: ApiError | ProtocolError, ref: str | None = None) -> None:
        if isinstance(exc, ProtocolError):
            code, message, ref = "bad_message", str(exc), exc.ref
        else:
            code, message = exc.code, exc.message
        metrics.WS_ERRORS.labels(code).inc()
        extra: dict[str, Any] = {"field": exc.field} if isinstance(exc, ApiError) and exc.field else {}
        if isinstance(exc, ApiError) and exc.retry_after is not None:
            extra["retry_after"] = exc.retry_after
        await self.deliver(error_msg(code, message, ref, **extra))

    # --- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        self._tasks.append(asyncio.create_task(self._writer(), name=f"ws-writer:{self.session_id}"))
        try:
            if not await self._hello():
                return
            self._tasks.append(asyncio.create_task(self._owner(), name=f"ws-owner:{self.session_id}"))
            self._tasks.append(asyncio.create_task(self._heartbeat(), name=f"ws-heartbeat:{self.session_id}"))
            await self._read_loop()
        finally:
            await self.stop()

    async def _hello(self) -> bool:
        timeout = self.ctx.settings.limits.hello_timeout_s
        try:
            raw = await self.ws.receive(timeout=timeout)
        except asyncio.TimeoutError:
            await self.close(WS_CLOSE["unauthorized"], f"no hello within {timeout:g} s")
            return False
        if raw.type != WSMsgType.TEXT:
            await self.close(WS_CLOSE["protocol"], "expected a text hello message")
            return False
        try:
            msg = decode(raw.data, self.ctx.settings.limits.ws_max_json_depth)
            if not isinstance(msg, Hello):
                raise ProtocolError(f"the first message must be hello, got {msg.__struct_config__.tag}", msg.id)
            self.identity = self.ctx.auth.identify(msg.token)
        except PolicyViolation as exc:
            await self._refuse(exc)
            return False
        except (ProtocolError, ApiError) as exc:
            await self.error(exc)
            await self._drain_outbox()
            metrics.AUTH_FAILURES.labels("ws").inc()
            await self.close(WS_CLOSE["unauthorized"], str(exc)[:120])
            return False
        older = await self.ctx.sessions.add(self)
        if self.ctx.auth.revoked(self.identity):  # revoked while it registered: as whip.py checks
            await self.close(WS_CLOSE["unauthorized"], REVOKED)  # and it replaces no valid session
            return False
        for old in older:
            await old.close(WS_CLOSE["replaced"], "replaced by a newer connection of this endpoint")
        metrics.WS_SESSIONS.inc()
        log.info("session opened", extra=self.log_extra() | {"kind": self.identity.kind, "remote": self.remote})
        await self.deliver(
            server_msg(
                "welcome",
                msg.id,
                session_id=self.session_id,
                protocol=1,
                identity=self.identity.to_dict(),
                node=self.ctx.settings.node_id,
            )
        )
        for event in await self.open_meetings_for_me():
            await self.deliver(event)
        return True

    async def _read_loop(self) -> None:
        limit = self.ctx.settings.limits.ws_max_message_bytes
        async for raw in self.ws:
            if raw.type != WSMsgType.TEXT:
                if raw.type == WSMsgType.BINARY:
                    await self._violation(ProtocolError("binary frames are not part of the protocol; send JSON text"))
                continue
            if len(raw.data.encode()) > limit:
                await self._violation(
                    too_large(f"message of {len(raw.data.encode())} bytes exceeds the limit of {limit} bytes")
                )
                continue
            if not self._bucket.take():
                await self._violation(rate_limited("too many messages; slow down"))
                continue
            try:
                msg = decode(raw.data, self.ctx.settings.limits.ws_max_json_depth)
            except PolicyViolation as exc:
                await self._refuse(exc)
                return
            except ProtocolError as exc:
                await self._violation(exc)
                continue
            metrics.WS_IN.labels(msg.__struct_config__.tag).inc()
            try:
                self._inbox.put_nowait(msg)
            except asyncio.QueueFull:
                await self._violation(rate_limited("too many requests in flight"), msg.id)

    async def _refuse(self, exc: PolicyViolation) -> None:
        """A message no client sends by mistake: say why, log one line, close with 1008."""
        log.warning("websocket refused: %s", exc, extra=self.log_extra() | {"remote": self.remote})
        await self.error(exc)
        await self.close(WS_CLOSE["policy"], str(exc))

    async def _violation(self, exc, ref: str | None = None) -> None:
        self._violations += 1
        await self.error(exc, ref)
        if self._violations >= MAX_VIOLATIONS:
            await self.close(WS_CLOSE["rate_limited"], "too many bad messages")

    async def _owner(self) -> None:
        while True:
            msg = await self._inbox.get()
            try:
                if callable(msg):
                    await msg()
                elif isinstance(msg, Ping):
                    await self.deliver(server_msg("pong", msg.id))
                else:
                    await self.handle(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                api = classify(exc)
                if api is None:
                    log.exception("handler failed", extra=self.log_extra())
                    api = ApiError("internal", "internal error; the operator has been told", 500)
                await self.error(api, getattr(msg, "id", None))

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            await self.ctx.sessions.refresh_presence(self)
            if self.occurrence_id:
                await self.ctx.rooms.heartbeat(self.occurrence_id, self.session_id, self.member_info())

    async def _drain_outbox(self) -> None:
        for _ in range(50):
            if self._out.empty():
                return
            await asyncio.sleep(0.01)

    async def close(self, code: int, reason: str) -> None:
        if not self.ws.closed:
            await self._drain_outbox()
            await self.ws.close(code=code, message=reason.encode()[:120])

    async def stop(self) -> None:
        """Leave the meeting, release media, deregister; idempotent."""
        if self._closed and not self._tasks:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.identity is not None and self in self.ctx.sessions.all():
            metrics.WS_SESSIONS.dec()
            log.info("session closed", extra=self.log_extra())
        try:
            await self.finish_leaving()
            await self.leave_meeting(reason="disconnected")
            await self.ctx.sessions.remove(self)
        except StoreError as exc:  # shutting down, or the store is gone: presence expires by TTL
            log.warning("session cleanup incomplete: %s", exc, extra=self.log_extra())
        if not self.ws.closed:
            await self.ws.close()
