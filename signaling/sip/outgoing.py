"""A call we make to a room system (#14): the client side of our INVITE transaction.

A dial sends a DELAYED OFFER by default (RFC 3261 §13.2.1: an INVITE without SDP; the room offers
in its 200 and we answer in the ACK), so one ``handle_offer`` serves dial-in and dial-out. With an
SDP given, it is a normal offer and the ACK goes at once. Reliable provisionals are PRACKed (RFC
3262), the 2xx's Session-Expires sets the timer (RFC 4028 §7.2), a non-2xx answer is ACKed by the
transaction, and ``cancel`` sends CANCEL while it rings (RFC 3261 §9.1). A ringing room is never
timed out by the transaction (Timer B stops at the first 1xx): ``wait_answered(timeout)`` is the
caller's ring timeout, which CANCELs; with no answer to the CANCEL the transaction is given up, and a
2xx that still comes (or crossed the CANCEL) is ACKed and BYEd, so no call is left at the room.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiosipua.dialog import Dialog, DialogState
from aiosipua.header_codec import stringify_uri
from aiosipua.message import SipRequest, SipResponse
from aiosipua.utils import generate_call_id, generate_tag

from signaling.sip.calls import Call, DialFailed, Stack
from signaling.sip.transactions import TIMEOUT, ClientTransaction
from signaling.sip.transport import Link
from signaling.sip.wire import allows_update, capabilities, sdp_of

log = logging.getLogger(__name__)


def build_invite(stack: Stack, uri: str, from_user: str, link: Link, sdp: str | None) -> tuple[Dialog, SipRequest]:
    host, _ = stack.advertised(link.transport)
    domain = stack.settings.domain or host
    dialog = Dialog(
        call_id=generate_call_id(domain), local_tag=generate_tag(), local_uri=f"sip:{from_user}@{domain}",
        remote_uri=uri, remote_target=uri, state=DialogState.EARLY,
    )  # fmt: skip
    via_host, via_port = stack.advertised(link.transport)
    invite = dialog.create_request("INVITE", via_host=via_host, via_port=via_port, via_transport=link.transport.upper())
    invite.headers.set_single("Contact", stack.contact(link.transport, from_user))
    invite.headers.set_single("User-Agent", stack.user_agent)
    capabilities(invite)
    if stack.session_expires is not None:
        invite.headers.set_single("Session-Expires", str(max(stack.session_expires, stack.min_se)))
        invite.headers.set_single("Min-SE", str(stack.min_se))
    if sdp is not None:
        invite.text = sdp
        invite.headers.set_single("Content-Type", "application/sdp")
    return dialog, invite


CSEQ_GAP = 1000  # an orphan's BYE: above any refresh its dead node sent after its dialog was stored


def dialog_parts(call: Call) -> dict[str, Any]:
    """What another node needs to BYE this call if ours dies (dialout keeps it in the store)."""
    d = call.dialog
    return {
        "call_id": d.call_id, "local_tag": d.local_tag, "remote_tag": d.remote_tag, "local_uri": d.local_uri,
        "remote_uri": d.remote_uri, "remote_target": d.remote_target, "route_set": list(d.route_set),
        "cseq": d.local_cseq, "transport": call.link.transport, "peer": list(call.link.peer),
    }  # fmt: skip


def orphan_dialog(parts: dict[str, Any]) -> Dialog:
    """The confirmed dialog of ``dialog_parts``, for a BYE from another node (RFC 3261 §12: only
    Call-ID, tags, target, route set and a higher CSeq matter to the room)."""
    return Dialog(
        call_id=str(parts["call_id"]), local_tag=str(parts["local_tag"]), remote_tag=str(parts["remote_tag"]),
        local_uri=str(parts["local_uri"]), remote_uri=str(parts["remote_uri"]),
        remote_target=str(parts["remote_target"]), route_set=[str(r) for r in parts["route_set"]],
        local_cseq=int(parts["cseq"]) + CSEQ_GAP, state=DialogState.CONFIRMED,
    )  # fmt: skip


class OutgoingCall(Call):
    owns_call_id = True

    def __init__(self, stack: Stack, dialog: Dialog, link: Link, invite: SipRequest, offer_sdp: str | None) -> None:
        super().__init__(stack, dialog, link)
        self.uri = dialog.remote_uri
        self.invite, self.offer_sdp = invite, offer_sdp
        self.ringing = asyncio.Event()
        self.answer_sdp: str | None = None
        self.final: SipResponse | None = None
        self.txn = ClientTransaction(invite, link, self._provisional, self._late_2xx)
        self._cancelling = False
        self._pracked = 0

    def start(self) -> None:
        self.txn.start()
        self.txn.final.add_done_callback(lambda f: self._final(f.result()))

    async def wait_answered(self, timeout: float | None = None) -> str | None:
        """The 200's SDP (the room's offer after a delayed offer, its answer otherwise); DialFailed if
        refused. After ``timeout`` (the ring timeout) the dial is CANCELled and DialFailed(408) raised."""
        try:
            final = await asyncio.wait_for(asyncio.shield(self.txn.final), timeout)
        except TimeoutError:
            await self.cancel()
            raise DialFailed(408, f"No Answer Within {timeout:.0f} s") from None
        if final.status_code >= 300:
            raise DialFailed(final.status_code, final.reason_phrase)
        return self.answer_sdp

    async def ack(self, sdp: str | None = None) -> None:
        """ACK the 200: with our answer after a delayed offer (no-op when the ACK already went)."""
        if self.final is None or self.final.status_code >= 300 or self._last_ack is not None:
            return
        if sdp is not None:
            self.local_sdp = sdp
        self.send_ack(self.final, sdp)
        self._start_session_timer()

    async def cancel(self) -> None:
        """CANCEL while unanswered; after a 2xx this is a hangup."""
        if self.final is not None:
            if self.final.status_code < 300:
                await self.hangup()
            return
        self._cancelling = True
        cancel = SipRequest(method="CANCEL", uri=self.invite.uri)
        cancel.headers.append("Via", self.invite.headers.get("via")[0])
        for name in ("From", "To", "Call-ID"):
            cancel.headers.set_single(name, self.invite.headers.get_first(name) or "")
        cancel.headers.set_single("CSeq", f"{self.invite.cseq.seq if self.invite.cseq else 1} CANCEL")
        cancel.headers.set_single("Max-Forwards", "70")
        for route in self.invite.headers.get("route"):
            cancel.headers.append("Route", route)
        await self.stack.send_request(cancel, self, wait=False)  # what counts is the INVITE's final
        try:
            await asyncio.wait_for(asyncio.shield(self.txn.final), TIMEOUT)
        except TimeoutError:  # RFC 3261 §9.1: the INVITE transaction is over for us
            self.txn.give_up("Request Timeout (No Answer To CANCEL)")

    async def hangup(self, reason: str | None = None) -> None:
        if self.final is None:
            await self.cancel()
            return
        await self._bye("hangup", reason)

    def _provisional(self, response: SipResponse) -> None:
        if response.status_code == 100:
            return
        self.ringing.set()
        to = response.to_addr
        if to is not None and to.tag and not self.dialog.remote_tag:
            self.dialog.remote_tag = to.tag
            self._take_target(response)
        rseq = (response.headers.get_first("rseq") or "").strip()
        if rseq.isdigit() and int(rseq) > self._pracked and "100rel" in (response.headers.get_first("require") or ""):
            self._pracked = int(rseq)
            prack = self._request("PRACK")
            prack.headers.set_single("RAck", f"{rseq} {self.invite.cseq.seq if self.invite.cseq else 1} INVITE")
            self.stack.spawn(self.stack.send_request(prack, self))

    def _take_target(self, response: SipResponse) -> None:
        contacts = response.contact
        if contacts:
            self.dialog.remote_target = stringify_uri(contacts[0].uri)
        self.dialog.route_set = list(reversed(response.headers.get("record-route")))

    def _final(self, response: SipResponse) -> None:
        self.final = response
        if response.status_code >= 300:
            self.dialog.terminate()
            self._end("cancel" if self._cancelling else "failed")
            return
        to = response.to_addr
        if to is not None and to.tag:
            self.dialog.remote_tag = to.tag
        self._take_target(response)
        self.dialog.confirm()
        self.answer_sdp = sdp_of(response)
        self.peer_allows_update = allows_update(response)
        self.negotiate_session(response, fallback_we_refresh=True)
        if self.offer_sdp is not None or self._cancelling:
            self.local_sdp = self.offer_sdp
            self.send_ack(response, None)
            self._start_session_timer()
        if self._cancelling:  # the 200 crossed our CANCEL: the call exists, end it
            self.stack.spawn(self._bye("cancel"))

    def _late_2xx(self, response: SipResponse) -> None:
        """A 2xx after we gave up on the INVITE: the room set a call up, so ACK it (again) and BYE it once."""
        if self._last_ack is not None:
            self.retransmitted_2xx(response)
            return
        log.info("sip %s: %d came after we gave up: ACK and BYE", self.call_id, response.status_code)
        to = response.to_addr
        self.dialog.remote_tag = to.tag if to is not None and to.tag else self.dialog.remote_tag
        self._take_target(response)
        self.send_ack(response, None)
        bye = self._request("BYE")
        self.stack.spawn(self.stack.send_request(bye, self, wait=False))

    def _refresher_name(self, we_refresh: bool) -> str:
        return "uac" if we_refresh else "uas"
