"""Fuzz the WebSocket protocol (signaling/protocol.py): every client message type, drawn from the
msgspec types the server decodes with (mostly fitting, sometimes a wrong value, a missing or an
unknown field), plus non-JSON text, deep or odd JSON and binary frames.

* before hello: each input is the first frame of a fresh connection; the server answers with an
  error and closes with a policy code (or welcomes a real token), never ``internal`` or 1011;
* after hello and join, as the operator, the chair and a commune: each input is followed by a ping,
  and everything up to its pong is read, so each error is tied to its input; a refused input
  changes nothing stored. A closed connection is reopened and rejoined.
Invariants: see tests/fuzz/support.py."""

from __future__ import annotations

import json

import aiohttp
import pytest
from hypothesis import strategies as st

from signaling.protocol import ClientMessage
from tests.fuzz.strategies import json_values, nasty_text, struct_dicts
from tests.fuzz.support import SCALE, Checker, Failures, draw, record, serves_a_meeting

pytestmark = pytest.mark.timeout(120 * max(1, SCALE))  # SCALE: a longer run by hand
TYPES = ClientMessage.__args__
POLICY_CLOSES = {1000, 1001, 1008, 1009, 4400, 4401, 4403, 4409, 4429}  # never 1011 (server error)
CANDIDATES = [
    "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
    "candidate:garbage",
    "",
    "candidate:1 1 UDP 1 x.local 9 typ host",
    "candidate:1 1 udp 1 127.0.0.1 70000 typ host",
]


def messages(known: list[str], per_type: int, extra: dict | None = None) -> list[object]:
    """Client messages of every type (``per_type`` each), then wild frames."""
    out: list[object] = []
    for model in TYPES:
        tag = {"type": model.__struct_config__.tag, "v": 1}
        out += draw(struct_dicts(model, known, tag | (extra or {})), per_type)
    out += draw(
        st.one_of(
            json_values(),
            nasty_text(200),
            st.binary(max_size=64),
            st.integers(1, 60).map(lambda n: "[" * n + "]" * n),
            st.integers(30, 40).map(lambda n: '{"v":1,"type":"ping","id":' + "[" * n + "]" * n + "}"),
        ),
        per_type * 3,
    )
    return out


def frame(msg: object) -> str | bytes:
    """The frame for ``msg``; a lone surrogate cannot travel in a text frame, it arrives as U+FFFD."""
    if isinstance(msg, bytes):
        return msg
    text = msg if isinstance(msg, str) else json.dumps(msg, ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


async def send(ws: aiohttp.ClientWebSocketResponse, msg: object) -> None:
    data = frame(msg)
    await (ws.send_bytes(data) if isinstance(data, bytes) else ws.send_str(data))


async def test_every_message_type_before_hello(fuzz_node, checker: Checker):
    node = fuzz_node
    known = [node.operator_token, await node.endpoint_token("hg-mv-lung-pu"), "hg-meo-vac"]
    with Failures() as failures:
        for msg in messages(known, 8):
            record("ws_first", msg)
            with failures.on(msg):
                before = checker.durable()
                async with node.http.ws_connect(node.ws_url()) as ws:
                    await send(ws, msg)
                    welcomed = await _first_answer(ws, checker, msg)
                if not welcomed:
                    checker.unchanged(before, msg, "refused hello")
                checker.log_clean(msg)
    await serves_a_meeting(node)


async def _first_answer(ws, checker: Checker, msg: object) -> bool:
    """Read until the close: True when the server welcomed the client."""
    welcomed = False
    while True:
        raw = await ws.receive(timeout=10)
        if raw.type == aiohttp.WSMsgType.TEXT:
            answer = json.loads(raw.data)
            welcomed |= answer["type"] == "welcome"
            if answer["type"] == "error":
                checker.ws_error(msg, answer)
            if welcomed:
                return True
            continue
        assert raw.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), (raw.type, raw.data)
        assert ws.close_code in POLICY_CLOSES, (ws.close_code, raw.extra)
        return welcomed


class Conversation:
    """One identity's connection, joined to the meeting; reopened when the server closes it."""

    def __init__(self, node, token: str, meeting_id: str, checker: Checker) -> None:
        self.node, self.token, self.meeting_id, self.checker = node, token, meeting_id, checker
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.seq = 0

    async def open(self) -> None:
        self.ws = await self.node.http.ws_connect(self.node.ws_url())
        await self.ws.send_json({"v": 1, "type": "hello", "token": self.token})
        await self.ws.send_json({"v": 1, "type": "join", "meeting_id": self.meeting_id})
        await self.roundtrip(None)

    async def roundtrip(self, msg: object) -> list[dict]:
        """Send ``msg`` then a ping; the errors that came back before the pong."""
        self.seq += 1
        ping = f"p{self.seq}"
        if msg is not None:
            await send(self.ws, msg)
        await self.ws.send_json({"v": 1, "type": "ping", "id": ping})
        errors = []
        while True:
            raw = await self.ws.receive(timeout=15)
            if raw.type != aiohttp.WSMsgType.TEXT:
                assert self.ws.close_code in POLICY_CLOSES, (self.ws.close_code, raw.extra)
                self.ws = None
                return errors
            answer = json.loads(raw.data)
            if answer["type"] == "pong" and answer.get("ref") == ping:
                return errors
            if answer["type"] == "error":
                self.checker.ws_error(msg, answer)
                errors.append(answer)

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def test_every_message_type_after_hello_and_join(fuzz_node, checker: Checker):
    node = fuzz_node
    meeting = await node.schedule("hg-meo-vac", ["tier:commune@hg-meo-vac"], minutes_from_now=1)
    known = [meeting["id"], "hg-meo-vac", "hg-mv-lung-pu", "hg-mv-meo-vac", "hg-ubnd", *CANDIDATES]
    people = {
        "operator": node.operator_token,
        "chair": await node.endpoint_token("hg-meo-vac"),
        "commune": await node.endpoint_token("hg-mv-lung-pu"),
    }
    with Failures() as failures:
        for who, token in people.items():
            talk = Conversation(node, token, meeting["id"], checker)
            await talk.open()
            for msg in messages(known, 10, {"id": "m"}):
                record("ws_after_hello", (who, msg))
                with failures.on((who, msg)):
                    if talk.ws is None:
                        await talk.open()
                    before = checker.durable()
                    errors = await talk.roundtrip(msg)
                    if errors and talk.ws is not None:
                        checker.unchanged(
                            before, (who, msg), f"error {errors[0]['code']}: {errors[0]['message'][:120]}"
                        )
                    checker.log_clean((who, msg))
            await talk.close()
    await serves_a_meeting(node)
    checker.log_clean("the final join")
