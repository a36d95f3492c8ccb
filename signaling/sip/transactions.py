"""SIP transactions of the stack (#14): retransmission and its absorption (RFC 3261 §17).

aiosipua sends each request once; over UDP a lost INVITE or BYE would end a call. A
:class:`ClientTransaction` retransmits its request with Timer A/E (T1 doubling; non-INVITE capped at
T2), gives up with a synthetic 408 after Timer B/F (64×T1, also over TCP/TLS), ACKs a non-2xx final
answer to an INVITE itself (§17.1.1.3) and ACKs that answer's retransmissions again. An INVITE's
Timer B stops at its first provisional (§17.1.1.2): a ringing room is ended by the caller (CANCEL),
and ``give_up`` ends a transaction the room never finishes, whose late 2xx still goes to
``on_late_2xx`` (the call ACKs and BYEs it) while the transaction lingers.

:class:`ServerTransactions` remembers the last response sent for each request (by transaction key)
for 32 s, so a retransmitted request gets that response again instead of being handled
twice, and retransmits a non-2xx final answer to an INVITE over UDP (Timer G) until its ACK. Keys
follow §17.2.3: branch, sent-by and method, or the RFC 2543 fields for a branch without the magic
cookie; an ACK is absorbed only as the ACK of a final ≥ 300 (a 2xx's ACK goes to its dialog).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from aiosipua.header_codec import parse_via
from aiosipua.message import SipRequest, SipResponse

from signaling.sip.transport import Link

log = logging.getLogger(__name__)

T1, T2 = 0.5, 4.0
TIMEOUT = 64 * T1  # Timer B, F, H
LINGER = 32.0  # Timer D, J: how long a finished transaction still absorbs retransmissions


MAGIC_COOKIE = "z9hG4bK"  # an RFC 3261 branch: unique per transaction (§8.1.1.7)
ServerKey = tuple[str, ...]


def branch_of(message: SipRequest | SipResponse) -> str:
    vias = message.headers.get("via")
    return (parse_via(vias[0]).branch or "") if vias else ""


def server_key(request: SipRequest, method: str | None = None) -> ServerKey:
    """What identifies the server transaction of ``request`` (§17.2.3): an RFC 3261 branch with the
    top Via's sent-by and the method; a branch-less (RFC 2543) request by its Request-URI, From tag,
    Call-ID, CSeq number and whole top Via. ``method`` "INVITE" finds the INVITE an ACK belongs to."""
    method = (method or request.method).upper()
    vias = request.headers.get("via")
    top = vias[0] if vias else ""
    via = parse_via(top) if top else None
    branch = (via.branch or "") if via is not None else ""
    if branch.startswith(MAGIC_COOKIE):
        sent_by = f"{via.host}:{via.port or ''}" if via is not None else ""
        return (branch, sent_by.lower(), method)
    sender = request.from_addr
    from_tag = (sender.tag or "") if sender is not None else ""
    seq = str(request.cseq.seq) if request.cseq is not None else ""
    return ("rfc2543", request.uri, from_tag, request.call_id or "", seq, top.strip(), method)


class ClientTransaction:
    """One request we sent: retransmitted until answered; ``final`` resolves with the final response."""

    def __init__(
        self,
        request: SipRequest,
        link: Link,
        on_provisional: Callable[[SipResponse], None] | None = None,
        on_late_2xx: Callable[[SipResponse], None] | None = None,
    ) -> None:
        self.request, self.link, self.on_provisional, self.on_late_2xx = request, link, on_provisional, on_late_2xx
        self.key = (branch_of(request), request.method.upper())
        self.final: asyncio.Future[SipResponse] = asyncio.get_running_loop().create_future()
        self.raw = bytes(request)
        self._ack: bytes | None = None
        self._answered = False  # any response: INVITE retransmission and Timer B stop (§17.1.1.2)
        self.gave_up = False  # final set by give_up, not by the peer
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.link.send(self.raw)
        self._task = asyncio.get_running_loop().create_task(self._timers())

    async def _timers(self) -> None:
        interval, waited = T1, 0.0
        invite = self.key[-1] == "INVITE"
        while waited < TIMEOUT and not self.final.done():
            await asyncio.sleep(min(interval, TIMEOUT - waited))
            waited += min(interval, TIMEOUT - waited)
            if self.final.done() or (invite and self._answered):
                return  # Proceeding: the caller's own ring timeout ends it (CANCEL, give_up)
            if waited >= TIMEOUT:
                break
            if not self.link.reliable:
                self.link.send(self.raw)
            interval = interval * 2 if invite else min(interval * 2, T2)
        self.give_up("Request Timeout")

    def give_up(self, reason: str = "Request Timeout (No Final Answer)") -> None:
        """End it with a synthetic 408 (no final answer came); a 2xx later still reaches ``on_late_2xx``."""
        if not self.final.done():
            self.gave_up = True
            self.final.set_result(SipResponse(status_code=408, reason_phrase=reason))

    def lingers(self) -> bool:
        """Whether it must still take responses once finished: a non-2xx over UDP (ACKed again,
        Timer D) or an INVITE we gave up on (its late 2xx is ACKed and BYEd)."""
        if self.key[-1] != "INVITE" or not self.final.done():
            return False
        return self.gave_up or (self.final.result().status_code >= 300 and not self.link.reliable)

    def receive(self, response: SipResponse) -> None:
        self._answered = True
        if self.gave_up and 200 <= response.status_code < 300:
            if self.on_late_2xx is not None:
                self.on_late_2xx(response)
            return
        if response.status_code < 200:
            if not self.final.done() and self.on_provisional is not None:
                self.on_provisional(response)
            return
        if self.key[1] == "INVITE" and response.status_code >= 300:
            if self._ack is None:
                self._ack = bytes(self._ack_for(response))
            self.link.send(self._ack)  # also for each retransmission of the final
        if not self.final.done():
            self.final.set_result(response)

    def _ack_for(self, response: SipResponse) -> SipRequest:
        """The ACK of a non-2xx final (§17.1.1.3): same branch and Request-URI, To with the answer's tag."""
        ack = SipRequest(method="ACK", uri=self.request.uri)
        ack.headers.append("Via", self.request.headers.get("via")[0])
        for name in ("From", "Call-ID"):
            ack.headers.set_single(name, self.request.headers.get_first(name) or "")
        ack.headers.set_single("To", response.headers.get_first("to") or "")
        seq = self.request.cseq.seq if self.request.cseq else 1
        ack.headers.set_single("CSeq", f"{seq} ACK")
        for route in self.request.headers.get("route"):
            ack.headers.append("Route", route)
        ack.headers.set_single("Max-Forwards", "70")
        return ack

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()


class ServerTransactions:
    """The last response to each recent request, keyed by ``server_key``."""

    def __init__(self) -> None:
        self._last: dict[ServerKey, tuple[bytes, Link, int]] = {}  # last response, its link and status
        self._timer_g: dict[ServerKey, asyncio.Task[None]] = {}
        self._expiry: dict[ServerKey, asyncio.TimerHandle] = {}

    key = staticmethod(server_key)

    def __contains__(self, key: ServerKey) -> bool:
        return key in self._last

    def __len__(self) -> int:
        return len(self._last)

    def begin(self, request: SipRequest, link: Link) -> None:
        """A request being handled: its retransmissions are absorbed (answered with what we sent last)."""
        self._last[self.key(request)] = (b"", link, 0)
        self._expire_after(self.key(request), TIMEOUT * 2)  # a handler that never answers

    def link_of(self, request: SipRequest) -> Link | None:
        """The link ``request`` arrived on (its response goes back there), if it is being handled."""
        entry = self._last.get(self.key(request))
        return entry[1] if entry is not None else None

    def retransmitted(self, request: SipRequest) -> bool:
        """Seen before: the last response (if any) is sent again."""
        entry = self._last.get(self.key(request))
        if entry is None:
            return False
        raw, link, _ = entry
        if raw:
            link.send(raw)
        return True

    def respond(self, request: SipRequest, response: SipResponse, link: Link) -> None:
        key = self.key(request)
        raw = bytes(response)
        link.send(raw)
        code = response.status_code
        self._last[key] = (raw, link, code)
        if code >= 200:
            self._expire_after(key, LINGER)
        if code >= 300 and key[-1] == "INVITE" and not link.reliable:
            self._timer_g[key] = asyncio.get_running_loop().create_task(self._retransmit(key, raw, link))

    def acked(self, ack: SipRequest) -> bool:
        """The ACK of our non-2xx final answer (its INVITE's transaction, §17.2.3): Timer G stops. The
        ACK of a 2xx is the dialog's (a new transaction, even where a UA reuses the INVITE's branch)."""
        key = self.key(ack, "INVITE")
        entry = self._last.get(key)
        if entry is None or entry[2] < 300:
            return False
        task = self._timer_g.pop(key, None)
        if task is not None:
            task.cancel()
        return True

    async def _retransmit(self, key: ServerKey, raw: bytes, link: Link) -> None:
        interval, waited = T1, 0.0
        while waited < TIMEOUT:
            await asyncio.sleep(interval)
            waited += interval
            link.send(raw)
            interval = min(interval * 2, T2)
        self._timer_g.pop(key, None)

    def _expire_after(self, key: ServerKey, delay: float) -> None:
        old = self._expiry.pop(key, None)
        if old is not None:
            old.cancel()
        self._expiry[key] = asyncio.get_running_loop().call_later(delay, self._forget, key)

    def _forget(self, key: ServerKey) -> None:
        self._last.pop(key, None)
        self._expiry.pop(key, None)
        task = self._timer_g.pop(key, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        for handle in self._expiry.values():
            handle.cancel()
        for task in self._timer_g.values():
            task.cancel()
        with contextlib.suppress(Exception):
            self._last.clear()
        self._expiry.clear()
        self._timer_g.clear()
