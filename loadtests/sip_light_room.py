"""Light SIP room systems for the load benchmark (#14): calls placed with our own SIP stack, media
played by tests/support/rtp_room.py's ``RtpRoom`` in light mode (counts what arrives, decodes nothing).

``RoomDialer`` places each call from a client ``SipStack`` of its source address (one stack per
address; the benchmark dials every room from 127.0.0.1 and raises the server's per-address limits), INVITE with the room's offer,
the 200's answer applied, and notes when the first video packet (the first composite frame the
server sent it) arrived. ``camera=False`` rooms keep their video line but send no camera: they
receive the composite and their mix and cost the server their audio only, the issue's model of an
added room; with cameras the server also takes every room's picture in.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from signaling.sip.stack import SipStack
from signaling.sip_settings import SipSettings
from tests.support.redis_server import free_port
from tests.support.rtp_room import RtpRoom


class LightRoom(RtpRoom):
    """An ``RtpRoom`` in light mode; without ``camera`` its video line only receives."""

    def __init__(self, endpoint_id: str, host: str, camera: bool, **kw) -> None:
        super().__init__(light=True, host=host, tone_hz=0.0, **kw)
        self.endpoint_id, self.camera = endpoint_id, camera

    async def _send_video(self) -> None:
        if self.camera:
            await super()._send_video()


@dataclass
class Join:
    room: LightRoom
    invite_at: float = 0.0
    answered_at: float = 0.0
    first_video_at: float = 0.0
    answer: str = field(default="", repr=False)


class RoomDialer:
    """Client SIP stacks (one per source address) that dial light rooms into the server."""

    def __init__(self) -> None:
        self.stacks: dict[str, SipStack] = {}
        self.calls: list = []
        self.rooms: list[LightRoom] = []

    async def _stack(self, host: str) -> SipStack:
        if host not in self.stacks:

            def refuse(call) -> None:  # these rooms only dial
                call.reject(486, "Busy Here")

            settings = SipSettings(enabled=True, host=host, port=free_port(), transports=["udp"], domain=host)
            stack = SipStack(settings, refuse, session_expires=None)
            await stack.start()
            self.stacks[host] = stack
        return self.stacks[host]

    async def dial(self, room: LightRoom, uri: str, timeout: float = 15.0) -> Join:
        """INVITE to the first composite video packet; the times of each step."""
        stack = await self._stack(room.host)
        await room.start()
        self.rooms.append(room)
        join = Join(room, invite_at=time.monotonic())
        call = await stack.dial(uri, from_user=room.endpoint_id, sdp=room.offer())
        self.calls.append(call)
        answer = await call.wait_answered(timeout=timeout)
        join.answered_at, join.answer = time.monotonic(), answer or ""
        assert answer, f"{room.endpoint_id}: 200 without SDP"
        await room.apply_answer(answer)
        deadline = join.answered_at + timeout
        while not room.video_packets:
            if time.monotonic() > deadline:
                raise AssertionError(f"{room.endpoint_id}: no composite within {timeout} s of its answer")
            await asyncio.sleep(0.005)
        join.first_video_at = time.monotonic()
        return join

    async def stop(self) -> None:
        for call in self.calls:
            try:
                await asyncio.wait_for(call.hangup(), 2.0)
            except Exception:
                pass
        for stack in self.stacks.values():
            await asyncio.wait_for(stack.stop(), 10.0)
        await asyncio.gather(*(room.stop() for room in self.rooms), return_exceptions=True)
