"""A call a room system made to us (#14): the server side of its INVITE transaction.

100 Trying goes at once (the stack sends it); ``ringing`` sends 180, reliably (RFC 3262: RSeq,
Require: 100rel, retransmitted until the PRACK) when the room supports 100rel; ``answer`` sends the
200 with our SDP and the session timer (RFC 4028 §9: the room refreshes when it asked to and
supports timers, else we do), retransmitted until the ACK; ``reject`` sends a final error with an
optional Warning; a CANCEL before the answer gets 487 for the INVITE.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiosipua.dialog import create_dialog_from_request
from aiosipua.header_codec import stringify_uri
from aiosipua.message import SipRequest, SipResponse

from signaling.sip.calls import Call, CallGone, Stack
from signaling.sip.transactions import T1, T2, TIMEOUT
from signaling.sip.transport import Link
from signaling.sip.wire import allows_update, capabilities, has_option, sdp_of, uri_user


class IncomingCall(Call):
    def __init__(self, stack: Stack, invite: SipRequest, link: Link, source: tuple[str, int] | None = None) -> None:
        super().__init__(stack, create_dialog_from_request(invite), link)
        self.invite = invite
        self.offer_sdp = sdp_of(invite)
        self.request_uri_user = uri_user(invite.uri)
        sender = invite.from_addr
        self.from_uri = stringify_uri(sender.uri) if sender else ""
        self.from_user = (sender.uri.user or "") if sender else ""
        self.from_display = (sender.display_name or "").strip('"') if sender else ""
        self.source = source or link.peer  # the caller's (ip, port): a trusted proxy's record (proxies.py)
        self.authenticated_user: str | None = None  # set by stack.challenge
        self.peer_allows_update = allows_update(invite)
        self.final_sent = False
        self._reliable = has_option(invite, "100rel")
        self._rseq = 0
        self._prack: asyncio.Future[None] | None = None

    def header(self, name: str) -> str | None:
        """The first value of one of the INVITE's headers."""
        return self.invite.headers.get_first(name)

    async def ringing(self) -> None:
        """180 Ringing; reliable (waits for nothing, but answer() waits for its PRACK) where supported."""
        if self.final_sent or self._prack is not None:
            return
        if not self._reliable:
            self.stack.respond(self.invite, 180, "Ringing", call=self)
            return
        self._rseq += 1
        rseq = self._rseq

        def reliable(resp: SipResponse) -> None:
            resp.headers.set_single("Require", "100rel")
            resp.headers.set_single("RSeq", str(rseq))

        raw = bytes(self.stack.respond(self.invite, 180, "Ringing", call=self, extra=reliable))
        self._prack = asyncio.get_running_loop().create_future()
        self.stack.spawn(self._retransmit_reliable(raw, self._prack))

    async def _retransmit_reliable(self, raw: bytes, pracked: asyncio.Future[None]) -> None:
        interval, waited = T1, 0.0
        while waited < TIMEOUT and not pracked.done():
            await asyncio.sleep(interval)
            waited += interval
            if not pracked.done() and not self.link.reliable:
                self.link.send(raw)
            interval = min(interval * 2, T2)
        if not pracked.done():
            pracked.set_result(None)
            self.reject(504, "Server Time-out (No PRACK)")

    def prack(self, request: SipRequest) -> None:
        rack = (request.headers.get_first("rack") or "").split()
        if self._prack is None or not rack or rack[0] != str(self._rseq):
            self.stack.respond(request, 481, "Call/Transaction Does Not Exist", call=self)
            return
        self.stack.respond(request, 200, "OK", call=self)
        if not self._prack.done():
            self._prack.set_result(None)

    async def answer(self, sdp: str | None) -> None:
        """200 OK with our SDP (our answer, or our offer when the INVITE had none)."""
        if self.final_sent or self.ended.is_set():
            raise CallGone(f"sip {self.call_id}: already answered or ended ({self.end_reason or 'final sent'})")
        if self._prack is not None:
            await asyncio.wait_for(asyncio.shield(self._prack), TIMEOUT)
            if self.final_sent:
                raise CallGone(f"sip {self.call_id}: no PRACK for our reliable 180")
        self._negotiate_timer()
        self.final_sent = True
        self.local_sdp = sdp
        self.dialog.confirm()  # a BYE may come before the ACK
        timer_required = self._session is not None and has_option(self.invite, "timer")

        def headers(resp: SipResponse) -> None:
            capabilities(resp)
            self._session_headers(resp)
            if timer_required:
                resp.headers.set_single("Require", "timer")

        self.send_2xx(self.invite, sdp, headers)

    def _negotiate_timer(self) -> None:
        """RFC 4028 §9: the room refreshes only if it supports timers and did not leave it to us."""
        if self.stack.session_expires is None:
            return
        room_supports = has_option(self.invite, "timer")
        if self.invite.headers.get_first("session-expires"):
            self.negotiate_session(self.invite, fallback_we_refresh=not room_supports)
        room_min = (self.invite.headers.get_first("min-se") or "").split(";")[0].strip()
        floor = max(self.stack.min_se, int(room_min) if room_min.isdigit() else 0)  # RFC 4028 §9: theirs too
        if self._session is None:
            self._session = (max(self.stack.session_expires, floor), True)
        elif self._session[0] < floor:
            self._session = (floor, self._session[1])
        if not room_supports:
            self._session = (self._session[0], True)  # a UA without timers never refreshes

    def _refresher_name(self, we_refresh: bool) -> str:
        return "uas" if we_refresh else "uac"

    def reject(
        self,
        code: int,
        reason: str,
        warning: str | None = None,
        headers: dict[str, str] | None = None,
        extra: Callable[[SipResponse], None] | None = None,
    ) -> None:
        """A final error answer (4xx-6xx) with an optional Warning text; the call ends."""
        if self.final_sent:
            return
        self.final_sent = True
        self.stack.respond(self.invite, code, reason, call=self, warning=warning, headers=headers, extra=extra)
        self.dialog.terminate()
        self._end("rejected")

    async def hangup(self, reason: str | None = None) -> None:
        if not self.final_sent:
            self.reject(480, "Temporarily Unavailable")
            self.end_reason = "hangup"
            return
        await self._bye("hangup", reason)

    def cancelled(self) -> None:
        """A CANCEL matched our INVITE transaction (its 200 is sent by the stack)."""
        if self.final_sent:
            return
        self.final_sent = True
        self.stack.respond(self.invite, 487, "Request Terminated", call=self)
        self.dialog.terminate()
        self._end("cancel")
