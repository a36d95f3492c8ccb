"""One SIP call of the stack (#14): the dialog both ways, and what the gateway does with it.

:class:`Call` is the confirmed dialog: BYE both ways, INFO, re-INVITE/UPDATE (their offer goes to
``on_reinvite``, which returns our answer), session timers (RFC 4028) and the 2xx retransmission
until its ACK. One re-INVITE/UPDATE at a time (RFC 3261 §14; glare: ``signaling.sip.glare``). :class:`IncomingCall` (a room dialed us) and :class:`OutgoingCall` (we dialed a room)
add the INVITE transaction of their side; see ``signaling.sip.stack`` for the API as a whole.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiosipua.dialog import Dialog, DialogState
from aiosipua.message import SipRequest, SipResponse
from aiosipua.session_timer import SessionTimer, parse_session_expires

from signaling.sip.transactions import T1, T2, TIMEOUT
from signaling.sip.transport import Link
from signaling.sip.glare import OfferTurn
from signaling.sip.refusals import CallGone, DialFailed, Refusal, refusal_of
from signaling.sip.wire import capabilities, sdp_of
from signaling.sip_settings import SipSettings

log = logging.getLogger(__name__)

InfoHandler = Callable[[str, str], Any]  # (content type, body) -> None or awaitable
OfferHandler = Callable[[str | None], Awaitable[str]]  # their offer (None: offerless) -> our SDP


class Stack(Protocol):
    """What a call uses of its SipStack (signaling.sip.stack), without importing it."""

    settings: SipSettings
    user_agent: str
    session_expires: int | None
    min_se: int

    def advertised(self, transport: str) -> tuple[str, int]: ...

    def contact(self, transport: str, user: str = "") -> str: ...

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
    ) -> SipResponse: ...

    async def send_request(self, request: SipRequest, call: Call, *, wait: bool = True) -> SipResponse: ...

    def spawn(self, coro: Awaitable[Any]) -> None: ...

    def forget(self, call: Call) -> None: ...


async def maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class Call:
    """A dialog with a room system: what both directions share once it is set up."""

    owns_call_id = False  # whether we made the Call-ID (our dial): the longer glare delay (§14.1)

    def __init__(self, stack: Stack, dialog: Dialog, link: Link) -> None:
        self.stack, self.dialog, self.link = stack, dialog, link
        self.call_id = dialog.call_id
        self.transport = link.transport
        self.on_info: InfoHandler | None = None
        self.on_reinvite: OfferHandler | None = None
        self.on_bye: Callable[[], Any] | None = None
        self.ended = asyncio.Event()
        self.end_reason = ""  # bye | hangup | cancel | rejected | failed | ack_timeout | session_expired | stopped
        self.bye_reason = ""  # the Reason header (RFC 3326) of the room's BYE, e.g. why a PIN was refused
        self.local_sdp: str | None = None  # the SDP we last sent: a refresh re-INVITE offers it again
        self.peer_allows_update = False
        self._timer: SessionTimer | None = None
        self._session: tuple[int, bool] | None = None  # (interval, we refresh)
        self.turn = OfferTurn(self.owns_call_id)  # one re-INVITE/UPDATE at a time
        self._last_ack: bytes | None = None
        self._acked: asyncio.Future[str | None] | None = None  # the ACK of our last 200: its SDP
        self._pending_2xx: tuple[int, asyncio.Task[None], asyncio.Future[str | None]] | None = None

    # --- requests we send in the dialog ---

    def _request(self, method: str, body: str | None = None, ctype: str = "application/sdp") -> SipRequest:
        host, port = self.stack.advertised(self.link.transport)
        request = self.dialog.create_request(
            method, via_host=host, via_port=port, via_transport=self.link.transport.upper()
        )
        request.headers.set_single("Contact", self.stack.contact(self.link.transport))
        request.headers.set_single("User-Agent", self.stack.user_agent)
        if body is not None:
            request.text = body
            request.headers.set_single("Content-Type", ctype)
        return request

    async def _send(self, request: SipRequest) -> SipResponse:
        return await self.stack.send_request(request, self)

    async def hangup(self, reason: str | None = None) -> None:
        """End the call: BYE once it is set up (before that, see IncomingCall/OutgoingCall);
        ``reason``: a Reason header on the BYE (RFC 3326), e.g. ``SIP;cause=403;text="Sai ma PIN"``."""
        await self._bye("hangup", reason)

    def bye_request(self, reason: str | None = None) -> SipRequest:
        bye = self._request("BYE")
        if reason:
            bye.headers.set_single("Reason", reason)
        return bye

    async def _bye(self, why: str, reason: str | None = None) -> None:
        if self.dialog.state != DialogState.CONFIRMED or self.ended.is_set():
            self._end(why)
            return
        bye = self.bye_request(reason)
        self.dialog.terminate()
        self._end(why)
        await self.stack.send_request(bye, self, wait=False)  # retransmitted behind; the call is over for us

    async def send_info(self, ctype: str, body: str) -> int:
        """An INFO in the dialog (e.g. picture_fast_update); the status of its answer (408 when none)."""
        if self.dialog.state != DialogState.CONFIRMED:
            return 481
        return (await self._send(self._request("INFO", body, ctype))).status_code

    async def reinvite(self, sdp: str) -> str | None:
        """Our new offer (hold, codec change) in a re-INVITE; their answer, or Refusal with their status."""
        if self.dialog.state != DialogState.CONFIRMED:
            raise Refusal(481, "Call/Transaction Does Not Exist")
        answer = await self._send_own("INVITE", sdp)
        try:
            if answer.status_code >= 300:
                raise Refusal(answer.status_code, answer.reason_phrase, answer.headers.get_first("warning"))
            self.local_sdp = sdp
            self.send_ack(answer, None)
            self._refreshed()
            return sdp_of(answer)
        finally:
            self.turn.release()

    async def _send_own(self, method: str, sdp: str | None = None) -> SipResponse:
        """Our re-INVITE/UPDATE in its turn (glare.py); returns with the turn taken until our ACK."""

        async def send_once() -> SipResponse:
            request = self._request(method, sdp)
            self._stamp_session(request)
            return await self._send(request)

        return await self.turn.send(send_once)

    def send_ack(self, response: SipResponse, sdp: str | None) -> bytes:
        """The ACK of a 2xx to our INVITE (§13.2.2.4): a new branch, the INVITE's CSeq number."""
        ack = self._request("ACK", sdp)
        self.dialog.local_cseq -= 1  # create_request counted it; an ACK reuses the INVITE's number
        seq = response.cseq.seq if response.cseq else self.dialog.local_cseq
        ack.headers.set_single("CSeq", f"{seq} ACK")
        ack.headers.remove("Contact")
        raw = bytes(ack)
        self.link.send(raw)
        self._last_ack = raw
        return raw

    def retransmitted_2xx(self, response: SipResponse) -> None:
        """A 2xx again (our ACK was lost): the same ACK again."""
        if self._last_ack is not None:
            self.link.send(self._last_ack)

    async def reinvite_for_offer(self, answer_of: Callable[[str], Awaitable[str]]) -> None:
        """A re-INVITE without SDP: the room offers in its 200, ``answer_of(offer)`` answers in the
        ACK (RFC 3261 §14.1; moves the call's media to another leg). Refusal on a non-2xx or a 200
        without SDP; whatever ``answer_of`` raises is raised after the 200 is ACKed without a body."""
        if self.dialog.state != DialogState.CONFIRMED:
            raise Refusal(481, "Call/Transaction Does Not Exist")
        response = await self._send_own("INVITE")
        try:
            if response.status_code >= 300:
                raise Refusal(response.status_code, response.reason_phrase, "the room refused the re-INVITE")
            offer = sdp_of(response)
            if offer is None:
                self.send_ack(response, None)
                raise Refusal(488, "Not Acceptable Here", "the room's 200 to our re-INVITE carried no SDP offer")
            try:
                answer = await answer_of(offer)
            except BaseException:
                self.send_ack(response, None)
                raise
            self.local_sdp = answer
            self.send_ack(response, answer)
            self._refreshed()
        finally:
            self.turn.release()

    # --- requests the room sends in the dialog ---

    def handle(self, request: SipRequest) -> None:
        method = request.method.upper()
        if method == "BYE":
            self.bye_reason = request.headers.get_first("reason") or ""
            self.stack.respond(request, 200, "OK", call=self)
            self.dialog.terminate()
            self._end("bye")
        elif method == "INFO":
            self._spawn(self._info(request))
        elif method in ("INVITE", "UPDATE"):
            wait = self.turn.refusal(method, awaiting_ack=self._pending_2xx is not None)
            if wait is not None:  # 491 (glare) or 500 + Retry-After
                self.stack.respond(request, wait[0], wait[1], call=self, headers=wait[2])
            else:
                self.turn.take("theirs")
                self._spawn(self._offer(request))
        elif method == "OPTIONS":
            self.stack.respond(request, 200, "OK", call=self, extra=capabilities)
        elif method == "PRACK":
            self.prack(request)
        else:
            self.stack.respond(request, 405, "Method Not Allowed", call=self, extra=capabilities)

    def prack(self, request: SipRequest) -> None:
        self.stack.respond(request, 481, "Call/Transaction Does Not Exist", call=self)

    async def _info(self, request: SipRequest) -> None:
        ctype = (request.content_type or "").split(";")[0].strip().lower()
        try:
            if self.on_info is not None:
                await maybe_await(self.on_info(ctype, request.text))
        except Exception:
            log.exception("sip %s: on_info failed", self.call_id)
        self.stack.respond(request, 200, "OK", call=self)

    async def _offer(self, request: SipRequest) -> None:
        """A re-INVITE or UPDATE: ``on_reinvite`` answers an offer; without one it is a session refresh."""
        offer = sdp_of(request)
        try:
            if request.method.upper() == "UPDATE" and offer is None:
                answer = None  # RFC 4028 refresh by UPDATE: nothing to negotiate
            elif self.on_reinvite is not None:
                answer = await self.on_reinvite(offer)
            else:
                answer = self.local_sdp
            self.local_sdp = answer or self.local_sdp
            self._refreshed(request)
            extra = self._session_headers
            if request.method.upper() == "UPDATE":
                self.stack.respond(request, 200, "OK", call=self, sdp=answer, extra=extra)
            else:
                self.send_2xx(request, answer, extra)
        except Exception as e:
            no = refusal_of(e)  # OfferRefused: 488 naming what was offered and what we take
            if no is None:
                log.exception("sip %s: on_reinvite failed", self.call_id)
                no = Refusal(500, "Server Internal Error")
            self.stack.respond(request, no.code, no.reason, call=self, warning=no.warning or None)
        finally:
            self.turn.release()

    # --- 2xx to an INVITE we received, retransmitted until its ACK (§13.3.1.4) ---

    def send_2xx(self, invite: SipRequest, sdp: str | None, extra: Callable[[SipResponse], None] | None) -> None:
        response = self.stack.respond(invite, 200, "OK", call=self, sdp=sdp, extra=extra)
        seq = invite.cseq.seq if invite.cseq else 0
        acked: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(self._retransmit_2xx(bytes(response), acked))
        if self._pending_2xx is not None:
            self._pending_2xx[1].cancel()
        self._pending_2xx = (seq, task, acked)

    async def _retransmit_2xx(self, raw: bytes, acked: asyncio.Future[str | None]) -> None:
        interval, waited = T1, 0.0
        while waited < TIMEOUT:
            await asyncio.sleep(interval)
            waited += interval
            if not self.link.reliable:
                self.link.send(raw)
            interval = min(interval * 2, T2)
        if not acked.done():
            log.warning("sip %s: no ACK for our 200 in %.0f s: call released", self.call_id, TIMEOUT)
            acked.set_result(None)
            await self._bye("ack_timeout")

    async def wait_ack(self, timeout: float = TIMEOUT) -> str | None:
        """The SDP of the ACK to our latest 200 (the room's answer where our 200 made the offer), None if it had none."""
        acked = self._pending_2xx[2] if self._pending_2xx is not None else self._acked
        if acked is None:
            return None
        return await asyncio.wait_for(asyncio.shield(acked), timeout)

    def ack_received(self, ack: SipRequest) -> None:
        pending = self._pending_2xx
        if pending is None or (ack.cseq is not None and ack.cseq.seq != pending[0]):
            return
        self._pending_2xx = None
        self._acked = pending[2]
        pending[1].cancel()
        if not pending[2].done():
            pending[2].set_result(sdp_of(ack))
        self.dialog.confirm()
        self._start_session_timer()

    # --- session timers (RFC 4028) ---

    def _stamp_session(self, request: SipRequest) -> None:
        if self._session is not None:
            interval, we_refresh = self._session
            refresher = self._refresher_name(we_refresh)
            request.headers.set_single("Session-Expires", f"{interval};refresher={refresher}")
            request.headers.set_single("Supported", "timer, 100rel")

    def _refresher_name(self, we_refresh: bool) -> str:
        raise NotImplementedError

    def _session_headers(self, response: SipResponse) -> None:
        if self._session is not None:
            interval, we_refresh = self._session
            response.headers.set_single("Session-Expires", f"{interval};refresher={self._refresher_name(we_refresh)}")

    def negotiate_session(self, message: SipRequest | SipResponse, fallback_we_refresh: bool) -> None:
        """The interval and refresher from a Session-Expires (request we got or answer to ours)."""
        raw = message.headers.get_first("session-expires")
        if raw is None:
            return
        interval, refresher = parse_session_expires(raw)
        if interval <= 0:
            return
        we_refresh = fallback_we_refresh if refresher is None else refresher == self._refresher_name(True)
        self._session = (max(interval, self.stack.min_se), we_refresh)

    def _start_session_timer(self) -> None:
        if self._session is None or self._timer is not None or self.ended.is_set():
            return
        interval, we_refresh = self._session
        self._timer = SessionTimer(interval, we_refresh=we_refresh, refresh=self._refresh, expire=self._expired)
        self._timer.start()

    def _refreshed(self, request: SipRequest | None = None) -> None:
        if request is not None:
            self.negotiate_session(request, self._session[1] if self._session else False)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._start_session_timer()

    def _refresh(self) -> None:
        self._spawn(self._send_refresh())

    async def _send_refresh(self) -> None:
        """Our refresh: UPDATE where the room allows it, else a re-INVITE with the same SDP; failure ends the call."""
        if self.peer_allows_update or self.local_sdp is None:
            answer = await self._send_own("UPDATE")
        else:
            answer = await self._send_own("INVITE", self.local_sdp)
            if answer.status_code < 300:
                self.send_ack(answer, None)
        self.turn.release()
        if answer.status_code >= 300 and answer.status_code != 491:
            log.warning("sip %s: session refresh got %d: hanging up", self.call_id, answer.status_code)
            await self._bye("session_expired")

    def _expired(self) -> None:
        self._timer = None
        log.warning("sip %s: no session refresh from the room: hanging up (RFC 4028 §10)", self.call_id)
        self._spawn(self._bye("session_expired"))

    # --- bookkeeping ---

    def _spawn(self, coro: Awaitable[Any]) -> None:
        self.stack.spawn(coro)

    def _end(self, reason: str) -> None:
        if self.ended.is_set():
            return
        self.end_reason = reason
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending_2xx is not None:
            self._pending_2xx[1].cancel()
            if not self._pending_2xx[2].done():
                self._pending_2xx[2].set_result(None)
        self.stack.forget(self)
        self.ended.set()
        if reason == "bye" and self.on_bye is not None:
            try:
                self.on_bye()
            except Exception:
                log.exception("sip %s: on_bye failed", self.call_id)


__all__ = ["Call", "CallGone", "DialFailed", "Refusal", "Stack", "maybe_await"]  # the refusals re-exported
