"""The SIP gateway end to end on 127.0.0.1 (#14): a real server (media node local) with SIP on, and
room systems made of our own stack (signaling.sip.stack as the UA) + tests/support/rtp_room.py.

HOW TO START A SERVER WITH SIP ON (for baresip and other end-to-end tests)::

    node, sip_port = await sip_node(tmp_path, {"room-a": {"allowed_sources": ["127.0.0.1"]}})
    # a whole server: media local (ICE/RTP on 127.0.0.1), SIP udp+tcp on 127.0.0.1:sip_port, and a
    # directory with the central chair "tw" and each room given (sip.uri sip:<id>@127.0.0.1 unless
    # "uri" is given; any other key of the sip: block as given). Then
    meeting = await node.schedule("tw", ["room-a"], minutes_from_now=1)   # open at once (early join)
    # dial sip:<meeting["dial_number"]>@127.0.0.1:<sip_port>; node.ctx.sip is the SipGateway.
    # For the whole sample server: `giaoban --config config/server.yaml serve` (SIP on 127.0.0.1:5060).

Dial-in: a proved endpoint is admitted and listed (kind sip); unknown numbers get 404, a closed
meeting 480, a source outside allowed_sources 403, an auth_user endpoint a 401 challenge; the chair's
remove is a BYE at the room. PIN callers: a wrong PIN keyed by RFC 4733 or INFO ends the call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from aiosipua.auth import SipDigestAuth, answer_challenge

from signaling.auth.sip_digest import ha1_fields
from signaling.sip.calls import DialFailed
from signaling.sip.info import PICTURE_FAST_UPDATE
from signaling.sip.stack import SipStack
from signaling.sip.wire import sdp_of
from signaling.sip_settings import SipSettings
from tests.support.harness import Node, WsClient, start_node
from tests.support.redis_server import free_port
from tests.support.rtp_room import RtpRoom

pytestmark = pytest.mark.integration
CHAIR = "tw"


def write_directory(path: Path, rooms: dict[str, dict[str, Any]]) -> Path:
    lines = [
        "version: 1",
        'name: "Thử nghiệm cổng SIP"',
        "endpoints:",
        f'  - {{id: {CHAIR}, name: "Trung ương", tier: central, kind: studio, link: fibre}}',
    ]
    for endpoint, sip in rooms.items():
        block = {"uri": f"sip:{endpoint}@127.0.0.1", **sip}
        lines += [
            f"  - id: {endpoint}",
            f"    parent: {CHAIR}",
            "    tier: province",
            "    kind: room_terminal",
            "    link: fibre",
            f'    name: "Phòng họp {endpoint}"',
            "    sip:",
        ]
        for key, value in block.items():
            text = "[" + ", ".join(value) + "]" if isinstance(value, list) else f'"{value}"'
            lines.append(f"      {key}: {text}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def sip_node(tmp_path: Path, rooms: dict[str, dict[str, Any]], **settings: Any) -> tuple[Node, int]:
    """A whole server with SIP on a free port (see the module docstring); (node, sip port)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    directory = write_directory(tmp_path / "directory.yaml", rooms)
    port = free_port()
    sip = SipSettings(enabled=True, host="127.0.0.1", port=port, transports=["udp", "tcp"])
    node = await start_node(
        tmp_path / "data", media="local", ice_host="127.0.0.1", directory=str(directory), sip=sip, **settings
    )
    return node, port


class RoomSystem:
    """A SIP room system made of our stack (the UA) and an RtpRoom (its media)."""

    def __init__(self, on_invite=None) -> None:
        self.stack = SipStack(
            SipSettings(enabled=True, host="127.0.0.1", port=0, transports=["udp"]), on_invite or _refuse
        )
        self.media = RtpRoom(audio="PCMU", video=True, size=(160, 120))

    async def start(self) -> None:
        await self.stack.start()
        await self.media.start()

    @property
    def port(self) -> int:
        return self.stack.addresses["udp"][1]

    async def dial(self, user: str, sip_port: int, from_user: str):
        call = await self.stack.dial(f"sip:{user}@127.0.0.1:{sip_port}", from_user=from_user, sdp=self.media.offer())
        answer = await call.wait_answered(timeout=15)
        await self.media.apply_answer(answer)
        return call

    async def stop(self) -> None:
        await self.media.stop()
        await self.stack.stop()


async def _refuse(call) -> None:
    call.reject(486, "Busy Here")


async def _live(node: Node, meeting_id: str) -> list[dict]:
    status, body = await node.call("GET", f"/api/v1/meetings/{meeting_id}/live")
    assert status == 200, body
    return body.get("participants", [])


async def _sip_in(node: Node, meeting_id: str, endpoint_id: str) -> bool:
    return any(p.get("endpoint_id") == endpoint_id and p.get("kind") == "sip" for p in await _live(node, meeting_id))


async def _gone(node: Node, meeting_id: str, endpoint_id: str) -> bool:
    return not await _sip_in(node, meeting_id, endpoint_id)


async def until(check, timeout: float = 10.0) -> bool:
    """Whether the async ``check()`` came true within ``timeout`` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.fixture
async def gateway(tmp_path):
    rooms = {
        "room-a": {"allowed_sources": ["127.0.0.1"]},
        "room-far": {"allowed_sources": ["10.9.9.9"]},
        "room-d": {"auth_user": "room-d"},
    }
    node, port = await sip_node(tmp_path, rooms)
    room = RoomSystem()
    await room.start()
    yield node, port, room
    await room.stop()
    await node.stop()


async def test_admitted_call_is_listed_and_its_bye_leaves(gateway):
    node, port, room = gateway
    meeting = await node.schedule(CHAIR, ["room-a"])
    call = await room.dial(meeting["dial_number"], port, from_user="room-a")
    assert await until(lambda: _sip_in(node, meeting["id"], "room-a"))
    names = {p["endpoint_id"]: p for p in await _live(node, meeting["id"])}
    assert names["room-a"]["name"] == "Phòng họp room-a"
    status, presence = await node.call("GET", "/api/v1/presence")  # the console's map shows it online
    assert any(p["endpoint_id"] == "room-a" and p.get("via") == "sip" for p in presence["online"]), presence
    # a room asking for a key frame by INFO (RFC 5168) is answered 200; the leg's encoder sends one
    assert await call.send_info("application/media_control+xml", PICTURE_FAST_UPDATE) == 200
    await call.hangup()
    assert await until(lambda: _gone(node, meeting["id"], "room-a"))
    status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
    status, record = await node.call(
        "GET", f"/api/v1/meetings/{meeting['id']}/occurrences/{live['occurrence_id']}/attendance"
    )
    row = next(r for r in record["endpoints"] if r["endpoint_id"] == "room-a")
    assert row["joined"] and not row["present"], row  # came (by SIP) and left


async def refusal(room: RoomSystem, user: str, port: int, from_user: str) -> tuple[int, str, str]:
    """(code, reason phrase, Warning header) of a call the gateway refuses."""
    call = await room.stack.dial(f"sip:{user}@127.0.0.1:{port}", from_user=from_user, sdp=room.media.offer())
    with pytest.raises(DialFailed):
        await call.wait_answered(timeout=10)
    return call.final.status_code, call.final.reason_phrase, call.final.get_header("Warning") or ""


async def test_unknown_number_closed_meeting_and_strangers_are_refused(gateway):
    node, port, room = gateway
    code, reason, warning = await refusal(room, "99999999", port, "room-a")
    assert (code, reason) == (404, "Not Found") and "Không có cuộc họp số 99999999" in warning
    later = await node.schedule(CHAIR, ["room-a"], minutes_from_now=600)  # opens in 10 h
    code, reason, warning = await refusal(room, later["dial_number"], port, "room-a")
    assert (code, reason) == (480, "Temporarily Unavailable") and "chưa mở" in warning, warning
    meeting = await node.schedule(CHAIR, ["room-a", "room-far"])
    code, _, warning = await refusal(room, meeting["dial_number"], port, "room-far")  # from outside its sources
    assert code == 403 and "allowed_sources" in warning, warning
    code, _, warning = await refusal(room, meeting["dial_number"], port, "someone")  # unknown, no PIN
    assert code == 403 and "no PIN" in warning, warning
    code, _, warning = await refusal(room, "room-far", port, "someone")  # its endpoint id, from elsewhere
    assert code == 403 and "room-far" in warning, warning
    g729 = "v=0\r\no=r 1 1 IN IP4 127.0.0.1\r\ns=r\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n"
    call = await room.stack.dial(f"sip:{meeting['dial_number']}@127.0.0.1:{port}", from_user="room-a", sdp=g729)
    with pytest.raises(DialFailed) as no_codec:
        await call.wait_answered(timeout=10)
    warning = call.final.get_header("Warning") or ""
    assert no_codec.value.code == 488 and "G729" in warning, call.final
    assert warning.index("không có định dạng media chung") < warning.index("G729")  # Vietnamese first
    assert not await _sip_in(node, meeting["id"], "room-a")


async def test_digest_endpoint_is_challenged_and_admitted_with_its_secret(gateway):
    node, port, room = gateway
    meeting = await node.schedule(CHAIR, ["room-d"])
    status, body = await node.call("POST", "/api/v1/endpoints/room-d/credentials")  # its SIP password too
    assert status == 201, body
    doc = await node.ctx.store.get("credentials", node.ctx.directory.get("room-d").credential)
    assert doc["sip_user"] == "room-d" and doc["sip_ha1_md5"] == ha1_fields("room-d", body["secret"])["sip_ha1_md5"]
    uri = f"sip:{meeting['dial_number']}@127.0.0.1:{port}"
    for password, admitted in (("wrong-secret", False), (body["secret"], True)):
        first = await room.stack.dial(uri, from_user="room-d", sdp=room.media.offer())
        with pytest.raises(DialFailed) as challenged:
            await first.wait_answered(timeout=10)
        assert challenged.value.code == 401
        header = answer_challenge(SipDigestAuth("room-d", password), first.final, 401, "INVITE", uri)
        assert header is not None
        again = await room.stack.dial(uri, from_user="room-d", sdp=room.media.offer(), headers=dict([header]))
        if admitted:
            await room.media.apply_answer(await again.wait_answered(timeout=10))
            assert await until(lambda: _sip_in(node, meeting["id"], "room-d"))
            await again.hangup()
        else:
            with pytest.raises(DialFailed) as refused:
                await again.wait_answered(timeout=10)
            assert refused.value.code == 403


async def test_chair_remove_sends_bye_to_the_room(gateway):
    node, port, room = gateway
    meeting = await node.schedule(CHAIR, ["room-a"])
    call = await room.dial(meeting["dial_number"], port, from_user="room-a")
    assert await until(lambda: _sip_in(node, meeting["id"], "room-a"))
    chair = await WsClient.connect(node, await node.endpoint_token(CHAIR))
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await chair.send("remove", endpoint_id="room-a")
        await asyncio.wait_for(call.ended.wait(), 10)
        assert call.end_reason == "bye"  # the BYE came from the gateway
        assert await until(lambda: _gone(node, meeting["id"], "room-a"))
    finally:
        await chair.close()
    with pytest.raises(DialFailed) as again:  # removed: it may not come back this occurrence
        await room.dial(meeting["dial_number"], port, from_user="room-a")
    assert again.value.code == 403


@pytest.mark.parametrize("keyed_by", ["rfc4733", "info"])
async def test_wrong_pin_ends_the_call(gateway, keyed_by):
    node, port, room = gateway
    meeting = await node.schedule(CHAIR, ["room-a"], pin="2468")
    call = await room.dial(meeting["dial_number"], port, from_user="stranger")
    await asyncio.sleep(0.5)  # the lobby leg is up
    for digit in "1357":  # as many keys as the PIN has: checked without a "#"
        if keyed_by == "rfc4733":
            room.media.send_dtmf(digit)
        else:
            assert await call.send_info("application/dtmf-relay", f"Signal={digit}\r\nDuration=160\r\n") == 200
        await asyncio.sleep(0.1)
    await asyncio.wait_for(call.ended.wait(), 10)
    assert call.end_reason == "bye"
    assert not any(p.get("kind") == "sip" for p in await _live(node, meeting["id"]))


@pytest.mark.parametrize("keyed_by", ["rfc4733", "info"])
async def test_right_pin_moves_the_caller_into_the_meeting(gateway, keyed_by):
    """The caller waits in a lobby leg; after the PIN a re-INVITE without SDP moves it to the
    meeting's leg: the room offers in its 200, the gateway answers in the ACK."""
    node, port, room = gateway
    meeting = await node.schedule(CHAIR, ["room-a"], pin="2468")
    call = await room.dial(meeting["dial_number"], port, from_user="guest")
    acked: asyncio.Future = asyncio.get_running_loop().create_future()

    async def offer_again(offer):
        assert offer is None, "the gateway asks for an offer"
        return room.media.offer()

    def ack_received(ack, stack_handles=call.ack_received):  # the UA's stack keeps no ACK SDP for us
        if not acked.done():
            acked.set_result(sdp_of(ack))
        stack_handles(ack)

    call.on_reinvite = offer_again
    call.ack_received = ack_received
    await asyncio.sleep(0.5)
    for digit in "2468":
        if keyed_by == "rfc4733":
            room.media.send_dtmf(digit)
        else:
            assert await call.send_info("application/dtmf", digit) == 200
        await asyncio.sleep(0.1)
    assert await until(lambda: _guest_in(node, meeting["id"]), 10), "not in the meeting after the right PIN"
    answer = await asyncio.wait_for(acked, 10)  # the meeting leg's answer, in the ACK
    assert answer and "m=audio" in answer
    lobby = room.media.answers[-1]
    assert "\r\nm=video 0 " in lobby and "\r\nm=video 0 " not in answer  # the lobby took no video, the meeting does
    (session, version), (lobby_session, lobby_version) = (_origin(sdp) for sdp in (answer, lobby))
    assert session == lobby_session and version > lobby_version  # one session: rooms skip an SDP of the same version
    await room.media.apply_answer(answer)
    await call.hangup()
    assert await until(lambda: _no_guest(node, meeting["id"]), 10)


def _origin(sdp: str) -> tuple[str, int]:
    fields = next(line for line in sdp.splitlines() if line.startswith("o=")).split()
    return fields[1], int(fields[2])


async def _guest_in(node: Node, meeting_id: str) -> bool:
    return any(p.get("kind") == "sip" and p.get("role") == "participant" for p in await _live(node, meeting_id))


async def _no_guest(node: Node, meeting_id: str) -> bool:
    return not await _guest_in(node, meeting_id)
