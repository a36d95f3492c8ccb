"""The SIP stack of the room-system gateway (#14): sockets, transactions and dialogs, no meeting logic.

Built on aiosipua 0.7.1 (MIT, asyncio) for what it does well: message parsing and serialisation,
header codecs, the Dialog (tags, CSeq, route set, in-dialog requests), session-timer arithmetic and
digest hashing. Its UAS/UAC layer is not used: it sends requests once over UDP, never ACKs a
non-2xx answer, ACKs a 2xx before we could put an answer in it (no delayed offer), and has no TLS,
no INFO, no server-side digest and a lenient parser. Those are this package's: transport.py (UDP,
TCP, TLS, framing, connection caps), wire.py (strict parsing, 400 naming the fault), transactions.py
(retransmission, Timer A/B/E/F/G), inbound.py (routing what arrives), calls.py/incoming.py/outgoing.py
(dialogs, RFC 4028 session timers, 100rel), digest.py (server-side digest), limits.py.

API (what signaling/sip/gateway.py uses)::

    stack = SipStack(settings.sip, on_invite, limits=None, session_expires=1800)  # None: SipLimits.of(settings.sip)
    await stack.start()          # listens on sip.host:sip.port over sip.transports; tls on port+1
    await stack.stop()           # BYE to every call, then closes the sockets
    stack.addresses              # {"udp": (host, port), "tcp": ..., "tls": ...} as bound
    stack.calls                  # {call_id: IncomingCall | OutgoingCall} live now

    async def on_invite(call: IncomingCall) -> None   # run as a task per new INVITE (100 Trying sent)
        call.offer_sdp            # str | None (None: the room wants our offer in the 200, its answer in the ACK)
        call.request_uri_user     # "7001" from sip:7001@server (dial number or endpoint id)
        call.from_uri, call.from_user, call.from_display, call.transport ("udp"|"tcp"|"tls")
        call.source               # (ip, port) of the caller: the packet's, or the one a trusted proxy recorded
        call.header("User-Agent") # any header of the INVITE
        user = await stack.challenge(call, realm, ha1_lookup)  # str: authenticated user; None: a 401/403
                                  # was sent and this INVITE is over (the room retries with credentials
                                  # as a new INVITE, which on_invite sees again)
        await call.ringing()      # 180 (reliable with PRACK when the room supports 100rel)
        await call.answer(sdp)    # 200 with our SDP, retransmitted until the ACK; session timer negotiated
                                  # (CallGone if the room cancelled meanwhile: on_invite may let it propagate)
        ack_sdp = await call.wait_ack()   # the ACK's SDP (the room's answer when offer_sdp was None)
        call.reject(488, "Not Acceptable Here", warning="no common codec: offered G729; we take PCMU ...")
        call.on_reinvite = async def(offer: str | None) -> str   # their re-INVITE/UPDATE offer -> our
                                  # answer; raise Refusal(488, "...", warning), OfferRefused (-> 488 with
                                  # its text as Warning) or anything with .code/.reason/.warning to refuse;
                                  # offer None: we offer, their answer is `await call.wait_ack()`
        call.on_info = def(content_type, body)   # INFO (picture_fast_update, dtmf-relay); answered 200
        call.on_bye = def()       # the room hung up
        await call.ended.wait(); call.end_reason   # bye|hangup|cancel|rejected|failed|ack_timeout|session_expired|stopped
        await call.hangup()       # BYE (or 480 if not answered yet)
        await call.send_info("application/media_control+xml", xml)  # -> status of the answer
        await call.reinvite(sdp)  # our new offer -> their answer (Refusal with their Warning on a non-2xx)
        await call.reinvite_for_offer(answer_of)  # offerless re-INVITE: their 200 offers, answer_of(offer)
                                  # -> our answer, sent in the ACK (moves the media to another leg)

    out = await stack.dial("sip:room@10.1.2.3:5060;transport=tcp", from_user="7001", sdp=None)
        # INVITE without SDP (delayed offer) unless sdp is given; raises DialFailed(503) if unreachable
    room_sdp = await out.wait_answered(timeout=60)   # the 200's SDP (its offer); DialFailed(code, reason) if refused;
                                  # the timeout is the ring timeout (Timer B stops at a 1xx): CANCEL, DialFailed(408)
    await out.ack(answer_sdp)     # ACK with our answer (with an sdp given to dial, the ACK went at once)
    await out.cancel()            # CANCEL while it rings (wait_answered then raises DialFailed(487))
    out.ringing (Event), and on_reinvite/on_info/on_bye/ended/hangup/send_info/reinvite as above

Session timers: 1800 s asked/granted (min 90, 422 below); we refresh (UPDATE where the room allows
it, else re-INVITE with our last SDP) when we are the refresher (always when the room lacks
Supported: timer), and send BYE when its refresh does not come. stack.counts counts requests by
method and refusals by reason ("refused:<reason>"); "error" must stay 0.

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

from aiosipua.header_codec import parse_uri
from aiosipua.message import SipRequest, SipResponse
from aiosipua.utils import format_addr

from signaling.guard.client_address import parse_networks
from signaling.sip.calls import Call, CallGone, DialFailed, Refusal
from signaling.sip.digest import DigestServer, Ha1Lookup
from signaling.sip.inbound import Inbound
from signaling.sip.incoming import IncomingCall
from signaling.sip.limits import SipLimits, TokenBuckets
from signaling.sip.refusals import refusal
from signaling.sip.outgoing import OutgoingCall, build_invite, orphan_dialog
from signaling.sip.transactions import LINGER, ClientTransaction, ServerTransactions
from signaling.sip.transport import Link, Transports
from signaling.sip.wire import response, warning_value
from signaling.sip_settings import SipSettings

log = logging.getLogger(__name__)

__all__ = ["SipStack", "IncomingCall", "OutgoingCall", "Call", "CallGone", "Refusal", "DialFailed", "SipLimits"]

OnInvite = Callable[[IncomingCall], Awaitable[None] | None]


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
        self.limits = limits or SipLimits.of(settings)
        self.trusted_proxies = parse_networks(settings.trusted_proxies)  # proxies.py: whose Via we believe
        self.user_agent = user_agent
        self.session_expires, self.min_se = session_expires, min_se
        self.tls_client = tls_client
        self.calls: dict[str, Call] = {}
        self.counts: Counter[str] = Counter()  # requests received by method, refusals by reason
        self.digest = DigestServer()
        self.inbound = Inbound(self)
        self.transports = Transports(
            self.inbound.deliver, self.inbound.refuse_framing,
            max_conns=self.limits.max_conns, max_conns_per_ip=self.limits.max_conns_per_address,
        )  # fmt: skip
        self.server = ServerTransactions()
        self.client: dict[tuple[str, str], ClientTransaction] = {}
        self.message_buckets = TokenBuckets(self.limits.message_rate, self.limits.message_burst)
        self.invite_buckets = TokenBuckets(self.limits.invite_rate, self.limits.invite_burst)
        self.calls_per_ip: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ---

    @property
    def addresses(self) -> dict[str, tuple[str, int]]:
        return dict(self.transports.bound)

    async def start(self) -> None:
        """Listen on sip.host:sip.port over each of sip.transports (tls on sip.port + 1)."""
        host, port = self.settings.host, self.settings.port
        names = self.settings.transports
        try:
            await self._listen_udp_tcp(host, port, names)
            if "tls" in names:
                context = server_tls(self.settings.tls_cert, self.settings.tls_key)
                await self.transports.listen_stream(
                    "tls", host, self.settings.port + 1 if self.settings.port else 0, context
                )
        except BaseException:
            await self.transports.close()
            raise
        log.info("sip: listening on %s", ", ".join(f"{t} {h}:{p}" for t, (h, p) in self.addresses.items()))

    async def _listen_udp_tcp(self, host: str, port: int, names: list[str]) -> None:
        """UDP and TCP on one port; port 0 (tests): a free one for both, tried a few times."""
        for attempt in range(8):
            if "udp" in names:
                await self.transports.listen_udp(host, port)
            try:
                if "tcp" in names:
                    await self.transports.listen_stream("tcp", host, port or self.transports.bound["udp"][1])
                return
            except OSError:
                if port or "udp" not in names or attempt == 7:
                    raise
                await self.transports.close()  # the free UDP port is taken for TCP: another pair

    async def stop(self) -> None:
        """BYE (or 503) to every call, then the sockets close. Idempotent, bounded."""
        calls = list(self.calls.values())
        for call in calls:
            if isinstance(call, IncomingCall) and not call.final_sent:
                call.reject(503, "Service Unavailable")
        if calls:
            ending = asyncio.gather(*(call.hangup() for call in calls), return_exceptions=True)
            try:
                await asyncio.wait_for(ending, 2.0)
            except TimeoutError:
                log.info("sip: %d calls not hung up within 2 s of stop", len(calls))
        for call in calls:
            call.end_reason = "stopped"
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for txn in self.client.values():
            txn.stop()
        self.client.clear()
        self.server.close()
        await self.transports.close()

    # --- what the gateway calls ---

    async def dial(
        self, uri: str, from_user: str, sdp: str | None = None, *, headers: dict[str, str] | None = None
    ) -> OutgoingCall:
        """INVITE ``uri`` from ``sip:<from_user>@<our domain>``; no ``sdp``: a delayed offer."""
        if len(self.calls) >= self.limits.max_calls:
            raise DialFailed(503, "Too Many Calls")
        link = await self._link_to(uri)
        dialog, invite = build_invite(self, uri, from_user, link, sdp)
        for name, value in (headers or {}).items():
            invite.headers.set_single(name, value)
        call = OutgoingCall(self, dialog, link, invite, sdp)
        self.calls[call.call_id] = call
        self._track(call.txn)
        call.start()
        return call

    async def _link_to(self, uri: str) -> Link:
        try:
            target = parse_uri(uri.strip("<>"))
        except (ValueError, IndexError):
            raise DialFailed(400, f"Bad SIP URI {uri!r}") from None
        param = str(target.params.get("transport") or "").lower()
        name = "tls" if target.scheme == "sips" or param == "tls" else (param if param in ("tcp", "udp") else "udp")
        if name not in self.transports.bound:
            raise DialFailed(503, f"Transport {name} Not Enabled")
        port = target.port or (5061 if name == "tls" else 5060)
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(target.host.strip("[]"), port, proto=6)
            return await self._open_link(name, (str(infos[0][4][0]), port))
        except (OSError, TimeoutError, ssl.SSLError) as e:
            raise DialFailed(503, f"Unreachable {target.host}:{port} ({type(e).__name__})") from None

    async def _open_link(self, name: str, peer: tuple[str, int]) -> Link:
        if name == "udp":
            return self.transports.udp_link(peer)
        tls = (self.tls_client or ssl.create_default_context()) if name == "tls" else None
        return await self.transports.stream_link(name, peer, tls)

    async def bye_dialog(self, parts: dict[str, Any]) -> int:
        """BYE a call that another node of ours set up and can no longer end (it died), from its
        ``outgoing.dialog_parts``; the status of the room's answer (408: none, 503: unreachable)."""
        try:
            link = await self._open_link(str(parts["transport"]), (str(parts["peer"][0]), int(parts["peer"][1])))
        except (OSError, TimeoutError, ssl.SSLError):
            return 503
        call = Call(self, orphan_dialog(parts), link)
        return (await self.send_request(call.bye_request(), call)).status_code

    async def challenge(self, call: IncomingCall, realm: str, ha1_lookup: Ha1Lookup) -> str | None:
        """The digest-authenticated user of this INVITE, or None after sending it a 401 or 403."""
        verdict = await self.digest.check(call.invite, call.source[0], realm, ha1_lookup)  # nonces bound to the source
        if verdict.user is not None:
            call.authenticated_user = verdict.user
            return verdict.user
        self.counts[f"refused:{verdict.code}"] += 1
        if verdict.code == 403:
            no = refusal(403, verdict.reason, "Sai tên hoặc mật khẩu SIP của thiết bị", "wrong credentials")
            call.reject(no.code, no.reason, warning=no.warning)
            return None
        if verdict.code != 401:  # 400: a malformed Authorization
            call.reject(verdict.code, verdict.reason)
            return None
        offers = self.digest.challenges(realm, call.source[0], stale=verdict.stale)

        def add_challenges(resp: SipResponse) -> None:
            for value in offers:
                resp.headers.append("WWW-Authenticate", value)

        no = refusal(401, "Unauthorized", "Thiết bị cần đăng nhập SIP (digest)", "digest authentication required")
        call.reject(no.code, no.reason, warning=no.warning, extra=add_challenges)
        return None

    # --- what calls use ---

    def advertised(self, transport: str) -> tuple[str, int]:
        """The address our Via and Contact name for ``transport``."""
        host, port = self.transports.bound.get(transport) or next(iter(self.transports.bound.values()))
        if host in ("0.0.0.0", "::") and self.settings.domain:
            host = self.settings.domain
        return str(host), int(port)

    def contact(self, transport: str, user: str = "") -> str:
        host, port = self.advertised(transport)
        at = f"{user}@" if user else ""
        suffix = "" if transport == "udp" else f";transport={transport}"
        return f"<sip:{at}{format_addr(host, port)}{suffix}>"

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
        """Answer ``request`` where it came from, and remember the answer for its retransmissions."""
        if call is not None and code > 100:
            resp = call.dialog.create_response(request, code, reason)
            if code < 300 and request.method.upper() in ("INVITE", "UPDATE", "SUBSCRIBE"):
                resp.headers.set_single("Contact", self.contact(call.link.transport))
            if code < 300 and request.method.upper() == "INVITE":  # the room's route set (RFC 3261 12.1.1):
                for route in request.headers.get("record-route"):  # its BYE passes the proxies too
                    resp.headers.append("Record-Route", route)
        else:
            resp = response(request, code, reason)
        resp.headers.set_single("Server", self.user_agent)
        if sdp is not None:
            resp.text = sdp
            resp.headers.set_single("Content-Type", "application/sdp")
        if warning:
            resp.headers.set_single("Warning", warning_value(code, self.advertised("udp")[0], warning))
        for name, value in (headers or {}).items():
            resp.headers.set_single(name, value)
        if extra is not None:
            extra(resp)
        # where the request came from (a room may send its BYE on a new TCP connection), else the call's link
        target = link or self.server.link_of(request) or (call.link if call is not None else None)
        assert target is not None, "a response needs a call or a link"
        self.server.respond(request, resp, target)
        return resp

    async def send_request(self, request: SipRequest, call: Call, *, wait: bool = True) -> SipResponse:
        """Send an in-dialog request (retransmitted over UDP); its final answer, 408 when none came
        (``wait=False``: returns a 202 placeholder once the first copy is sent, the rest goes on behind)."""
        try:
            call.link = await self._relink(call)
        except (OSError, TimeoutError, ssl.SSLError) as e:
            log.info("sip %s: %s not sent: %s", call.call_id, request.method, e)
            return SipResponse(status_code=503, reason_phrase="Service Unavailable (No Connection)")
        txn = ClientTransaction(request, call.link)
        self._track(txn)
        txn.start()
        if not wait:
            return SipResponse(status_code=202, reason_phrase="Sent")
        return await asyncio.shield(txn.final)

    def _track(self, txn: ClientTransaction) -> None:
        self.client[txn.key] = txn

        def done(final: asyncio.Future[SipResponse]) -> None:
            if txn.lingers():  # Timer D: retransmitted finals ACKed again; a 2xx after give_up ACKed and BYEd
                asyncio.get_running_loop().call_later(LINGER, self.client.pop, txn.key, None)
            else:
                self.client.pop(txn.key, None)
            txn.stop()

        txn.final.add_done_callback(done)

    async def _relink(self, call: Call) -> Link:
        """The call's link, or a new connection to its remote target when its stream has closed."""
        link = call.link
        writer = self.transports.conns.get((link.transport, link.peer))
        if link.transport == "udp" or (writer is not None and not writer.is_closing()):
            return link
        target = parse_uri(call.dialog.remote_target or call.dialog.remote_uri)
        peer = (target.host.strip("[]"), target.port or (5061 if link.transport == "tls" else 5060))
        tls = (self.tls_client or ssl.create_default_context()) if link.transport == "tls" else None
        return await self.transports.stream_link(link.transport, peer, tls)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("sip: task failed", exc_info=task.exception())

    def forget(self, call: Call) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
            if isinstance(call, IncomingCall):
                ip = call.source[0]
                self.calls_per_ip[ip] -= 1
                if self.calls_per_ip[ip] <= 0:
                    del self.calls_per_ip[ip]


def server_tls(cert: str, key: str) -> ssl.SSLContext:
    """The TLS context of our listener from sip.tls_cert/sip.tls_key (PEM)."""
    if not cert or not key:
        raise ValueError("sip.transports has tls: set sip.tls_cert and sip.tls_key")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context
