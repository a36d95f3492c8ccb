"""The SIP stack of the room-system gateway (#14): sockets, transactions and dialogs, no meeting logic.

Built on aiosipua 0.7.1 (MIT, asyncio) for what it does well: message parsing and serialisation,
header codecs, the Dialog (tags, CSeq, route set, in-dialog requests), session-timer arithmetic and
digest hashing. Its UAS/UAC layer is not used: it sends requests once over UDP, never ACKs a
non-2xx answer, ACKs a 2xx before we could put an answer in it (no delayed offer), and has no TLS,
no INFO, no server-side digest and a lenient parser. Those are this package's: transport.py (UDP,
TCP, TLS, framing, connection caps), wire.py (strict parsing, 400 naming the fault), transactions.py
(retransmission, Timer A/B/E/F/G), calls.py/incoming.py/outgoing.py (dialogs), digest.py, limits.py.

API (what signaling/sip/gateway.py uses)::

    stack = SipStack(settings.sip, on_invite, limits=SipLimits(), session_expires=1800)
    await stack.start()          # listens on sip.host:sip.port over sip.transports; tls on port+1
    await stack.stop()           # BYE to every call, then closes the sockets
    stack.addresses              # {"udp": (host, port), "tcp": ..., "tls": ...} as bound
    stack.calls                  # {call_id: IncomingCall | OutgoingCall} live now

    async def on_invite(call: IncomingCall) -> None   # run as a task per new INVITE (100 Trying sent)
        call.offer_sdp            # str | None (None: the room wants our offer in the 200, its answer in the ACK)
        call.request_uri_user     # "7001" from sip:7001@server (dial number or endpoint id)
        call.from_uri, call.from_user, call.from_display, call.source (ip, port), call.transport ("udp"|"tcp"|"tls")
        call.header("User-Agent") # any header of the INVITE
        user = await stack.challenge(call, realm, ha1_lookup)  # str: authenticated user; None: a 401/403
                                  # was sent and this INVITE is over (the room retries with credentials
                                  # as a new INVITE, which on_invite sees again)
        await call.ringing()      # 180 (reliable with PRACK when the room supports 100rel)
        await call.answer(sdp)    # 200 with our SDP, retransmitted until the ACK; session timer negotiated
        ack_sdp = await call.wait_ack()   # the ACK's SDP (the room's answer when offer_sdp was None)
        call.reject(488, "Not Acceptable Here", warning="no common codec: offered G729; we take PCMU ...")
        call.on_reinvite = async def(offer: str | None) -> str   # their re-INVITE/UPDATE offer -> our
                                  # answer; raise Refusal(488, "...", warning) to refuse it
        call.on_info = def(content_type, body)   # INFO (picture_fast_update, dtmf-relay); answered 200
        call.on_bye = def()       # the room hung up
        await call.ended.wait(); call.end_reason   # bye|hangup|cancel|rejected|failed|ack_timeout|session_expired|stopped
        await call.hangup()       # BYE (or 480 if not answered yet)
        await call.send_info("application/media_control+xml", xml)  # -> status of the answer
        await call.reinvite(sdp)  # our new offer -> their answer (Refusal on a non-2xx)

    out = await stack.dial("sip:room@10.1.2.3:5060;transport=tcp", from_user="7001", sdp=None)
        # INVITE without SDP (delayed offer) unless sdp is given; raises DialFailed(503) if unreachable
    room_sdp = await out.wait_answered(timeout=60)   # the 200's SDP (its offer); DialFailed(code, reason) if refused
    await out.ack(answer_sdp)     # ACK with our answer (with an sdp given to dial, the ACK went at once)
    await out.cancel()            # CANCEL while it rings (wait_answered then raises DialFailed(487))
    out.ringing (Event), and on_reinvite/on_info/on_bye/ended/hangup/send_info/reinvite as above

Limits (SipLimits): INVITEs per address per second (503 + Retry-After), messages per address, calls
per address and overall (503), TCP/TLS connections; malformed messages get 400 with a reason phrase
naming the fault (or are dropped when no response can be routed); the listener never stops on one.
Responses go to the address the request came from (rport behaviour for every request).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from aiosipua.message import SipRequest, SipResponse

from signaling.sip.calls import Call, DialFailed, Refusal
from signaling.sip.digest import DigestServer, Ha1Lookup
from signaling.sip.incoming import IncomingCall
from signaling.sip.limits import SipLimits, TokenBuckets
from signaling.sip.outgoing import OutgoingCall
from signaling.sip.transactions import ClientTransaction, ServerTransactions
from signaling.sip.transport import Link, Transports
from signaling.sip_settings import SipSettings

log = logging.getLogger(__name__)

__all__ = ["SipStack", "IncomingCall", "OutgoingCall", "Call", "Refusal", "DialFailed", "SipLimits"]

OnInvite = Callable[[IncomingCall], Awaitable[None] | None]
UNANSWERED_S = 180.0  # an INVITE on_invite neither answers nor rejects gets 480 after this


class SipStack:
    def __init__(
        self,
        settings: SipSettings,
        on_invite: OnInvite,
        *,
        limits: SipLimits | None = None,
        user_agent: str = "giaoban",
        session_expires: int | None = 1800,
        min_se: int = 90,
        tls_client: ssl.SSLContext | None = None,
    ) -> None:
        self.settings, self.on_invite = settings, on_invite
        self.limits = limits or SipLimits()
        self.user_agent = user_agent
        self.session_expires, self.min_se = session_expires, min_se
        self.tls_client = tls_client
        self.calls: dict[str, Call] = {}
        self.counts: Counter[str] = Counter()  # requests received by method, refusals by reason
        self.digest = DigestServer()
        self.transports = Transports(
            self._deliver, self._refuse_framing,
            max_conns=self.limits.max_conns, max_conns_per_ip=self.limits.max_conns_per_address,
        )  # fmt: skip
        self.server = ServerTransactions()
        self.client: dict[tuple[str, str], ClientTransaction] = {}
        self._messages = TokenBuckets(self.limits.message_rate, self.limits.message_burst)
        self._invites = TokenBuckets(self.limits.invite_rate, self.limits.invite_burst)
        self._per_ip: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ---

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        return dict(self.transports.bound)

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    # --- what the gateway calls ---

    async def dial(
        self, uri: str, from_user: str, sdp: str | None = None, *, headers: dict[str, str] | None = None
    ) -> OutgoingCall:
        raise NotImplementedError

    async def challenge(self, call: IncomingCall, realm: str, ha1_lookup: Ha1Lookup) -> str | None:
        raise NotImplementedError

    # --- what calls use ---

    def advertised(self, transport: str) -> tuple[str, int]:
        raise NotImplementedError

    def contact(self, transport: str, user: str = "") -> str:
        raise NotImplementedError

    def respond(
        self,
        request: SipRequest,
        code: int,
        reason: str,
        *,
        call: Call | None = None,
        sdp: str | None = None,
        warning: str | None = None,
        extra: Callable[[SipResponse], None] | None = None,
        headers: dict[str, str] | None = None,
        link: Link | None = None,
    ) -> SipResponse:
        raise NotImplementedError

    async def send_request(self, request: SipRequest, call: Call) -> SipResponse:
        raise NotImplementedError

    def spawn(self, coro: Awaitable[Any]) -> None:
        raise NotImplementedError

    def forget(self, call: Call) -> None:
        raise NotImplementedError

    # --- what arrives ---

    def _deliver(self, data: bytes, link: Link) -> None:
        raise NotImplementedError

    def _refuse_framing(self, head: bytes, code: int, reason: str, link: Link) -> None:
        raise NotImplementedError
