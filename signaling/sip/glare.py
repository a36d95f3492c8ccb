"""One offer exchange at a time in a SIP dialog (#14, RFC 3261 §14, RFC 3311 §5.2).

A :class:`signaling.sip.calls.Call` holds one :class:`OfferTurn`. While our re-INVITE/UPDATE runs (until
its ACK), a crossing one from the room gets 491, and a 491 to ours is sent again after §14.1's random
delay (2.1-4 s when we made the Call-ID, else 0-2 s). While we answer the room's (or our 2xx to an
INVITE awaits its ACK), another of its INVITEs gets 500 with Retry-After, and ours waits its turn.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from aiosipua.message import SipResponse

TRIES = 3  # our request sent again after a 491 at most this often
DELAY_S = {True: (2.1, 4.0), False: (0.0, 2.0)}  # §14.1, by "we made the Call-ID"
WAIT_S = 32.0  # the longest ours waits for theirs to finish (Timer B's 64×T1)


class OfferTurn:
    def __init__(self, owns_call_id: bool) -> None:
        self.owns_call_id = owns_call_id
        self.busy: str | None = None  # "ours" while our request runs, "theirs" while we answer one
        self._idle = asyncio.Event()
        self._idle.set()

    def refusal(self, method: str, awaiting_ack: bool) -> tuple[int, str, dict[str, str]] | None:
        """The answer to a re-INVITE/UPDATE of the room that must wait, or None: it is its turn."""
        if self.busy == "ours":
            return 491, "Request Pending", {}
        if self.busy == "theirs" or (method == "INVITE" and awaiting_ack):
            return 500, "Previous INVITE Pending", {"Retry-After": str(random.randint(1, 10))}
        return None

    def take(self, who: str) -> None:
        self.busy = who
        self._idle.clear()

    def release(self) -> None:
        self.busy = None
        self._idle.set()

    async def send(self, send_once: Callable[[], Awaitable[SipResponse]]) -> SipResponse:
        """Our request once it is our turn, retried after a 491; returns with the turn still taken
        (the caller ``release``s it after its ACK)."""
        for attempt in range(1, TRIES + 1):
            while self.busy is not None:
                await asyncio.wait_for(self._idle.wait(), WAIT_S)
            self.take("ours")
            try:
                response = await send_once()
            except BaseException:
                self.release()
                raise
            if response.status_code != 491 or attempt == TRIES:
                return response
            self.release()
            await asyncio.sleep(random.uniform(*DELAY_S[self.owns_call_id]))
        raise AssertionError("unreachable")
