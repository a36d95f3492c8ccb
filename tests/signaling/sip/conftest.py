"""Fixtures of the SIP stack tests (#14): stacks on free 127.0.0.1 ports, always stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from signaling.sip.stack import SipLimits, SipStack
from signaling.sip_settings import SipSettings
from tests.sip.conftest import baresips

__all__ = ["baresips", "stacks", "audio_sdp"]  # baresips: headless room systems (tests/support/baresip.py)

AUDIO_SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
)
GENEROUS = SipLimits(
    invite_rate=1000, invite_burst=1000, calls_per_address=1000, message_rate=10000, message_burst=10000
)


def audio_sdp(port: int = 40000) -> str:
    return AUDIO_SDP.format(port=port)


@pytest.fixture
async def stacks() -> AsyncIterator[Callable[..., SipStack]]:
    """``await make(on_invite, transports=[...], **kw)`` -> a started SipStack on free ports; all stopped at teardown."""
    made: list[SipStack] = []

    async def make(on_invite=None, *, transports=("udp", "tcp"), limits=GENEROUS, **kw) -> SipStack:
        settings = SipSettings(enabled=True, host="127.0.0.1", port=0, transports=list(transports), **kw.pop("tls", {}))

        async def refuse(call) -> None:
            call.reject(603, "Decline")

        stack = SipStack(settings, on_invite or refuse, limits=limits, **kw)
        await stack.start()
        made.append(stack)
        return stack

    yield make
    for stack in made:
        await stack.stop()
