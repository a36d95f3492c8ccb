"""The WebSocket session actor on its own: a real context (SQLite store on tmp_path, the Hà Giang
directory, no media) and a fake socket in place of aiohttp's, so nothing goes over the network.
Each test checks what the client sees: the messages sent to it, in order, and how it is closed."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any, AsyncIterator

import pytest
from aiohttp import WSMessage, WSMsgType

from signaling.app import build_context
from signaling.context import Context
from signaling.errors import WS_CLOSE
from signaling.meetings.model import VN, MeetingSpec
from signaling.settings import load_settings
from signaling.ws.session import OUTBOX_SIZE, Session
from tests.support.harness import HAGIANG

WAIT_S = 2.0  # an upper bound for an answer that comes at once; no test waits this long when it passes
_END = object()


class FakeSocket:
    """What the session uses of aiohttp's WebSocketResponse, with the client's side exposed:
    ``send`` feeds the session, ``expect`` reads what it sent, ``closed_with`` how it closed."""

    def __init__(self) -> None:
        self._incoming: asyncio.Queue[Any] = asyncio.Queue()
        self._outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._closed: asyncio.Future[tuple[int, str]] = asyncio.get_running_loop().create_future()
        self.stalled = asyncio.Event()  # set: the client stops reading (send_str never returns)
        self.closes = 0
        self._seq = 0

    # the server's side (aiohttp's API) -------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed.done()

    async def receive(self, timeout: float | None = None) -> WSMessage:
        item = await asyncio.wait_for(self._incoming.get(), timeout)
        return WSMessage(WSMsgType.CLOSED, None, None) if item is _END else item

    def __aiter__(self) -> FakeSocket:
        return self

    async def __anext__(self) -> WSMessage:
        item = await self._incoming.get()
        if item is _END:
            raise StopAsyncIteration
        return item

    async def send_str(self, text: str) -> None:
        if self.stalled.is_set():
            await asyncio.Future()  # a client that does not read: the send never completes
        self._outgoing.put_nowait(json.loads(text))

    async def close(self, code: int = 1000, message: bytes = b"") -> bool:
        self.closes += 1
        if self.closed:
            return False
        self._closed.set_result((code, message.decode()))
        self._incoming.put_nowait(_END)  # the reader sees the end of the stream, as with aiohttp
        return True

    # the client's side ------------------------------------------------------------------------
    def send(self, type_: str, **fields: Any) -> str:
        self._seq += 1
        ref = f"r{self._seq}"
        self.send_raw(json.dumps({"v": 1, "type": type_, "id": ref, **fields}))
        return ref

    def send_raw(self, data: str | bytes) -> None:
        kind = WSMsgType.BINARY if isinstance(data, bytes) else WSMsgType.TEXT
        self._incoming.put_nowait(WSMessage(kind, data, None))

    async def expect(self) -> dict[str, Any]:
        return await asyncio.wait_for(self._outgoing.get(), WAIT_S)

    async def closed_with(self) -> tuple[int, str]:
        return await asyncio.wait_for(asyncio.shield(self._closed), WAIT_S)

    def unread(self) -> list[str]:
        """Types of the messages sent and not yet read by ``expect``."""
        out = []
        while not self._outgoing.empty():
            out.append(self._outgoing.get_nowait()["type"])
        return out


@pytest.fixture
async def ctx(tmp_path) -> AsyncIterator[Context]:
    settings = load_settings(
        None, {"data_dir": str(tmp_path), "directory": str(HAGIANG), "media": "none", "log_format": "text"}
    )
    ctx = await build_context(settings)
    yield ctx
    await ctx.rooms.stop()
    await ctx.store.stop()


def token(ctx: Context, kind: str = "operator", sub: str = "admin") -> str:
    return ctx.auth.signer.issue(kind, sub, 600, name=sub)[0]


async def connect(ctx: Context, hello_token: str | None = None) -> tuple[FakeSocket, Session, asyncio.Task[None]]:
    """A session running on a fake socket; with ``hello_token`` it is signed in and welcomed."""
    sock = FakeSocket()
    session = Session(ctx, sock, "127.0.0.1")  # type: ignore[arg-type]  # a duck-typed socket
    task = asyncio.create_task(session.run())
    if hello_token is not None:
        ref = sock.send("hello", token=hello_token)
        welcome = await sock.expect()
        assert (welcome["type"], welcome["ref"]) == ("welcome", ref)
    return sock, session, task


async def hang_up(sock: FakeSocket, task: asyncio.Task[None]) -> None:
    await sock.close()
    await asyncio.wait_for(task, WAIT_S)


async def test_welcome_names_the_client_and_the_node(ctx):
    sock, session, task = await connect(ctx)
    ref = sock.send("hello", token=token(ctx))
    welcome = await sock.expect()
    assert welcome["type"] == "welcome" and welcome["ref"] == ref and welcome["protocol"] == 1
    assert welcome["session_id"] == session.session_id and welcome["node"] == ctx.settings.node_id
    assert welcome["identity"] == {"kind": "operator", "id": "admin", "name": "admin"}
    ping = sock.send("ping")
    pong = await sock.expect()
    assert (pong["type"], pong["ref"]) == ("pong", ping)
    await hang_up(sock, task)


async def test_the_first_message_must_be_hello(ctx):
    sock, _, task = await connect(ctx)
    ref = sock.send("ping")
    error = await sock.expect()
    assert (error["type"], error["code"], error["ref"]) == ("error", "bad_message", ref)
    assert "the first message must be hello, got ping" in error["message"]
    code, _ = await sock.closed_with()
    assert code == WS_CLOSE["unauthorized"]
    await asyncio.wait_for(task, WAIT_S)


async def test_a_forged_token_is_refused_and_closed(ctx):
    sock, _, task = await connect(ctx)
    sock.send("hello", token=token(ctx)[:-4] + "AAAA")
    error = await sock.expect()
    assert (error["type"], error["code"]) == ("error", "unauthorized")
    assert (await sock.closed_with())[0] == WS_CLOSE["unauthorized"]
    await asyncio.wait_for(task, WAIT_S)


async def test_no_hello_in_time_closes(ctx):
    ctx.settings.limits.hello_timeout_s = 0.05
    sock, _, task = await connect(ctx)
    code, reason = await sock.closed_with()
    assert code == WS_CLOSE["unauthorized"] and reason == "no hello within 0.05 s"
    await asyncio.wait_for(task, WAIT_S)
    assert sock.unread() == []


async def test_a_second_hello_is_refused_and_the_session_goes_on(ctx):
    sock, _, task = await connect(ctx, token(ctx))
    ref = sock.send("hello", token=token(ctx))
    error = await sock.expect()
    assert (error["type"], error["code"], error["ref"]) == ("error", "bad_request", ref)
    assert error["message"] == "hello is only the first message; this connection is already signed in"
    ping = sock.send("ping")
    assert (await sock.expect())["ref"] == ping  # still open and answering
    assert not sock.closed
    await hang_up(sock, task)


async def test_room_actions_before_join_are_refused(ctx):
    sock, _, task = await connect(ctx, token(ctx))
    ref = sock.send("raise_hand")
    error = await sock.expect()
    assert (error["code"], error["ref"]) == ("bad_request", ref)
    assert error["message"] == "join a meeting before sending raise_hand"
    await hang_up(sock, task)


async def test_an_open_meeting_is_announced_after_welcome_then_joined(ctx):
    start = (datetime.now(VN) + timedelta(minutes=1)).replace(microsecond=0)
    meeting = await ctx.meetings.create(
        MeetingSpec(
            title="Giao ban thử", chair="hg-ubnd", invited=["hg-meo-vac"], start=start.isoformat(), duration_minutes=60
        )
    )
    sock, _, task = await connect(ctx, token(ctx, "endpoint", "hg-meo-vac"))  # welcome first ...
    opened = await sock.expect()  # ... then the meetings open now that it may join
    assert (opened["type"], opened["meeting_id"]) == ("meeting_opened", meeting.id)
    ref = sock.send("join", meeting_id=meeting.id)
    joined = await sock.expect()
    assert (joined["type"], joined["ref"], joined["meeting_id"]) == ("joined", ref, meeting.id)
    assert joined["role"] == "participant" and joined["media"] is False
    assert [p["endpoint_id"] for p in joined["participants"]] == ["hg-meo-vac"]
    sock.send("leave")
    left = await sock.expect()
    assert (left["type"], left["meeting_id"], left["reason"]) == ("left", meeting.id, "left")
    await hang_up(sock, task)


async def test_binary_frames_and_oversized_messages_get_errors(ctx):
    ctx.settings.limits.ws_max_message_bytes = 100
    sock, _, task = await connect(ctx, token(ctx))
    sock.send_raw(b"\x00\x01")
    assert (await sock.expect())["code"] == "bad_message"
    sock.send("ping", pad="x" * 200)
    too_large = await sock.expect()
    assert too_large["code"] == "too_large" and "exceeds the limit of 100 bytes" in too_large["message"]
    await hang_up(sock, task)


async def test_a_burst_past_the_rate_limit_is_answered_with_rate_limited(ctx):
    ctx.settings.limits.ws_burst, ctx.settings.limits.ws_rate_per_s = 3, 0.001
    sock, _, task = await connect(ctx, token(ctx))
    for _ in range(4):
        sock.send("ping")
    answers = [await sock.expect() for _ in range(4)]
    assert sorted(m["type"] for m in answers) == ["error", "pong", "pong", "pong"]
    assert next(m for m in answers if m["type"] == "error")["code"] == "rate_limited"
    await hang_up(sock, task)


async def test_too_many_bad_messages_close_the_connection(ctx):
    sock, _, task = await connect(ctx, token(ctx))
    for _ in range(50):  # signaling.ws.session.MAX_VIOLATIONS
        sock.send_raw("{not json")
    code, reason = await sock.closed_with()
    assert (code, reason) == (WS_CLOSE["rate_limited"], "too many bad messages")
    errors = [await sock.expect() for _ in range(50)]  # each was answered before the close
    assert {e["code"] for e in errors} == {"bad_message"}
    await asyncio.wait_for(task, WAIT_S)


async def test_json_nested_past_the_limit_closes_with_1008(ctx):
    sock, _, task = await connect(ctx, token(ctx))
    depth = ctx.settings.limits.ws_max_json_depth + 1
    sock.send_raw('{"v": 1, "type": "ping", "x": ' + "[" * depth + "]" * depth + "}")
    error = await sock.expect()
    assert error["code"] == "bad_message" and "nested deeper than" in error["message"]
    assert (await sock.closed_with())[0] == WS_CLOSE["policy"]
    await asyncio.wait_for(task, WAIT_S)


async def test_a_client_that_stops_reading_is_disconnected_not_buffered(ctx):
    sock, session, task = await connect(ctx, token(ctx))
    sock.stalled.set()
    for i in range(OUTBOX_SIZE + 2):  # one in the stalled send, OUTBOX_SIZE queued, one too many
        await session.deliver({"type": "presence", "n": i})
    assert await sock.closed_with() == (1008, "not reading")
    await asyncio.wait_for(task, WAIT_S)


async def test_a_reconnecting_terminal_replaces_its_older_session(ctx):
    terminal = token(ctx, "endpoint", "hg-meo-vac")
    old, _, old_task = await connect(ctx, terminal)
    new, _, new_task = await connect(ctx, terminal)
    code, reason = await old.closed_with()
    assert code == WS_CLOSE["replaced"] and reason == "replaced by a newer connection of this endpoint"
    await asyncio.wait_for(old_task, WAIT_S)
    assert not new.closed and len(ctx.sessions) == 1
    await hang_up(new, new_task)


async def test_stop_is_idempotent_and_deregisters(ctx):
    sock, session, task = await connect(ctx, token(ctx, "endpoint", "hg-meo-vac"))
    assert len(ctx.sessions) == 1 and await ctx.store.get_ephemeral("presence", "hg-meo-vac")
    await session.stop()
    await session.stop()
    await asyncio.wait_for(task, WAIT_S)
    assert sock.closed and sock.closes == 1
    assert len(ctx.sessions) == 0 and await ctx.store.get_ephemeral("presence", "hg-meo-vac") is None
