"""What arrives at the SIP stack (#14): each message from the wire, checked, limited and routed.

``_deliver`` never lets a peer's bytes raise out of the listener: a message over the address's
message rate is dropped, a malformed one refused (400/513 naming the fault, or dropped when no
response can be routed), a response goes to its client transaction, a request to its server
transaction (retransmissions), its dialog, or, for a new INVITE, through the per-address limits to
``on_invite``. One per :class:`signaling.sip.stack.SipStack`, whose state it uses.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol

from aiosipua.dialog import dialog_matches, remote_cseq_valid
from aiosipua.message import SipRequest, SipResponse

from signaling.guard.client_address import Network
from signaling.sip.calls import Call, CallGone, Stack, maybe_await
from signaling.sip.incoming import IncomingCall
from signaling.sip.limits import SipLimits, TokenBuckets
from signaling.sip.refusals import Refusal, refusal, refusal_of
from signaling.sip.proxies import caller_address
from signaling.sip.transactions import ClientTransaction, ServerTransactions, branch_of
from signaling.sip.transport import Link
from signaling.sip.wire import BadMessage, capabilities, parse, response, unsupported


class Receiver(Stack, Protocol):
    """What the receiving half uses of its SipStack, beyond what calls use."""

    on_invite: Callable[[IncomingCall], Any]
    limits: SipLimits
    counts: Counter[str]
    calls: dict[str, Call]
    server: ServerTransactions
    client: dict[tuple[str, str], ClientTransaction]
    message_buckets: TokenBuckets
    invite_buckets: TokenBuckets
    calls_per_ip: Counter[str]
    trusted_proxies: tuple[Network, ...]


BUSY_VI = "Máy chủ đang quá tải, xin gọi lại sau"  # the Warning of every limit's 503 (Retry-After)
log = logging.getLogger(__name__)
UNANSWERED_S = 180.0  # an INVITE on_invite neither answers nor rejects gets 480 after this


class Inbound:
    """The receiving half of a SipStack: its transports hand every message to ``deliver``."""

    def __init__(self, stack: Receiver) -> None:
        self.stack = stack

    def deliver(self, data: bytes, link: Link) -> None:
        """One message from the wire. Nothing a peer sends may raise out of here."""
        try:
            if not self.stack.message_buckets.take(link.peer[0]):
                self.stack.counts["dropped:message rate"] += 1
                return
            try:
                message = parse(data)
            except BadMessage as e:
                self._refuse(e, link)
                return
            if isinstance(message, SipResponse):
                self._on_response(message)
            else:
                self.stack.counts[message.method.upper()] += 1
                self._on_request(message, link)
        except Exception:
            log.exception("sip: message from %s:%d not handled", *link.peer)
            self.stack.counts["error"] += 1

    def _refuse(self, e: BadMessage, link: Link) -> None:
        self.stack.counts[f"refused:{e.reason}"] += 1
        log.info("sip: %s from %s:%d", e.reason, *link.peer)
        if e.request is not None and e.request.method.upper() != "ACK":
            link.send(bytes(response(e.request, e.code, e.reason)))

    def refuse_framing(self, head: bytes, code: int, reason: str, link: Link) -> None:
        try:
            request = parse(head.split(b"\r\n\r\n")[0] + b"\r\nContent-Length: 0\r\n\r\n")
        except BadMessage as e:
            request = e.request  # type: ignore[assignment]
        if isinstance(request, SipRequest):
            self._refuse(BadMessage(reason, request, code), link)

    def _on_response(self, resp: SipResponse) -> None:
        cseq = resp.cseq
        method = cseq.method.upper() if cseq else ""
        txn = self.stack.client.get((branch_of(resp), method))
        if txn is not None:
            txn.receive(resp)
        elif method == "INVITE" and 200 <= resp.status_code < 300:
            call = self.stack.calls.get(resp.call_id or "")
            if call is not None:
                call.retransmitted_2xx(resp)

    def _on_request(self, req: SipRequest, link: Link) -> None:
        method = req.method.upper()
        call = self.stack.calls.get(req.call_id or "")
        if method == "ACK":
            if not self.stack.server.acked(req) and call is not None and dialog_matches(call.dialog, req):
                call.ack_received(req)
            return
        if self.stack.server.retransmitted(req):
            return
        if (req.headers.get_first("max-forwards") or "").strip() == "0":
            self.stack.respond(req, 483, "Too Many Hops", link=link)
        elif method != "CANCEL" and (unknown := unsupported(req)):
            self.stack.respond(req, 420, "Bad Extension", link=link, headers={"Unsupported": ", ".join(unknown)})
        elif method == "CANCEL":
            self._on_cancel(req, call, link)
        elif req.to_addr is not None and req.to_addr.tag:
            if call is None or not dialog_matches(call.dialog, req):
                self.stack.respond(req, 481, "Call/Transaction Does Not Exist", link=link)
            elif not remote_cseq_valid(call.dialog, req):
                self.stack.respond(req, 500, "CSeq Out Of Order", link=link)
            else:
                self.stack.server.begin(req, link)
                if link.transport == call.link.transport and link.peer[0] == call.link.peer[0]:
                    call.link = link  # the room's latest connection or NAT binding: our requests follow it
                call.handle(req)
        elif method == "INVITE":
            self._new_invite(req, call, link)
        elif method == "OPTIONS":
            self.stack.respond(req, 200, "OK", link=link, extra=capabilities)
        elif method in ("BYE", "INFO", "UPDATE", "PRACK"):
            self.stack.respond(req, 481, "Call/Transaction Does Not Exist", link=link)
        else:
            self.stack.respond(req, 405, "Method Not Allowed", link=link, extra=capabilities)

    def _on_cancel(self, req: SipRequest, call: Call | None, link: Link) -> None:
        if isinstance(call, IncomingCall) and branch_of(call.invite) == branch_of(req):
            self.stack.respond(req, 200, "OK", call=call, link=link)
            call.cancelled()
        else:
            self.stack.respond(req, 481, "Call/Transaction Does Not Exist", link=link)

    def _new_invite(self, req: SipRequest, existing: Call | None, link: Link) -> None:
        source = caller_address(req, link.peer, self.stack.trusted_proxies)
        ip = source[0]  # the caller's: a trusted proxy's calls count against the rooms behind it
        no = self._admit(req, existing, ip)
        if no is not None:
            self.stack.counts[f"refused:{no.reason}"] += 1
            headers = self._refusal_headers(no.code)
            self.stack.respond(req, no.code, no.reason, link=link, warning=no.warning, headers=headers)
            return
        call = IncomingCall(self.stack, req, link, source)
        self.stack.calls[call.call_id] = call
        self.stack.calls_per_ip[ip] += 1
        self.stack.server.begin(req, link)
        self.stack.respond(req, 100, "Trying", link=link)
        self.stack.spawn(self._run_on_invite(call))

    def _refusal_headers(self, code: int) -> dict[str, str]:
        if code == 422:
            return {"Min-SE": str(self.stack.min_se)}
        return {"Retry-After": str(self.stack.limits.retry_after_s)} if code == 503 else {}

    def _admit(self, req: SipRequest, existing: Call | None, ip: str) -> Refusal | None:
        """Why a new INVITE is refused before anyone sees it (the 503s Vietnamese first), or None."""
        if existing is not None:
            return Refusal(482, "Loop Detected (Call-ID In Use)")
        if not self.stack.invite_buckets.take(ip):
            return refusal(503, "Too Many INVITEs From Your Address", BUSY_VI, "too many INVITEs from your address")
        if len(self.stack.calls) >= self.stack.limits.max_calls:
            return refusal(503, "Too Many Calls", BUSY_VI, "this server has too many calls")
        if self.stack.calls_per_ip[ip] >= self.stack.limits.calls_per_address:
            return refusal(503, "Too Many Calls From Your Address", BUSY_VI, "too many calls from your address")
        expires = (req.headers.get_first("session-expires") or "").split(";")[0].strip()
        if self.stack.session_expires is not None and expires.isdigit() and 0 < int(expires) < self.stack.min_se:
            return Refusal(422, "Session Interval Too Small")
        return None

    async def _run_on_invite(self, call: IncomingCall) -> None:
        try:
            await maybe_await(self.stack.on_invite(call))
        except CallGone as e:  # the room gave up while we were answering: nothing went wrong here
            log.info("%s", e)
            return
        except Exception as e:
            no = refusal_of(e)  # Refusal, OfferRefused (488): the one mapping, refusals.py
            if no is None:
                log.exception("sip %s: on_invite failed", call.call_id)
                no = Refusal(500, "Server Internal Error")
            call.reject(no.code, no.reason, warning=no.warning)
            return
        if not call.final_sent:
            try:
                await asyncio.wait_for(call.ended.wait(), UNANSWERED_S)
            except TimeoutError:
                call.reject(480, "Temporarily Unavailable")
