"""Limits on PIN guessing by SIP callers (#14 review 2/3): failure counters in the store, lobby caps.

A PIN of 4-6 digits falls to a few thousand guesses, so every lobby (an unknown caller keying a
PIN) takes a slot in two store counters BEFORE it is answered, and only the right PIN gives the
slot back; a caller that hangs up, keys nothing or keys a wrong PIN has spent it:
  * ``address:<ip>``: PER_ADDRESS per WINDOW_S from one source address (every meeting);
  * ``meeting:<id>``: PER_MEETING per WINDOW_S for one meeting (guessing from many addresses).
A full counter refuses the next caller with 403 before any answer, and each refused try counts
too and restarts the window: a guesser that keeps dialling stays locked out (the backoff); the
operator sees one WARNING line per lockout. Counters live in the store (ephemeral, TTL WINDOW_S),
so every node of a cluster sees the same ones. Rooms of the directory that prove who they are
never pass here.
Lobbies at once are capped per source address and per node (each holds a media leg).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from signaling.sip.refusals import refusal
from signaling.store.base import Store

log = logging.getLogger("giaoban.sip")
FAILURES = "sip_pin_failures"
WINDOW_S = 15 * 60
PER_ADDRESS = 5
PER_MEETING = 20
LOBBIES_PER_ADDRESS = 2
LOBBIES_PER_NODE = 50


class PinGuard:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lobbies: Counter[str] = Counter()  # source address -> lobbies open on this node

    @property
    def waiting(self) -> int:
        """Lobbies open on this node now."""
        return sum(self._lobbies.values())

    async def take_try(self, address: str, meeting_id: str) -> list[str]:
        """A try's slots (give them back with ``right_pin``), or a 403 refusal when either
        counter is full (that refused try counts as well)."""
        keys = [(f"address:{address}", PER_ADDRESS), (f"meeting:{meeting_id}", PER_MEETING)]
        taken: list[str] = []
        for key, limit in keys:
            count = await self.store.incr_ephemeral(FAILURES, key, WINDOW_S)
            taken.append(key)
            if count > limit:
                if count == limit + 1:  # one line per lockout, not one per refused try
                    log.warning(
                        "SIP PIN lockout: %d wrong or missing PINs for %s within %d min",
                        limit,
                        key,
                        WINDOW_S // 60,
                        extra={"source": address, "meeting": meeting_id},
                    )
                raise refusal(
                    403,
                    "Forbidden",
                    f"Nhập sai mã PIN quá nhiều lần, hãy thử lại sau {WINDOW_S // 60} phút",
                    f"too many wrong PINs; try again in {WINDOW_S // 60} minutes",
                )
        return taken

    async def right_pin(self, taken: list[str]) -> None:
        for key in taken:
            await self.store.incr_ephemeral(FAILURES, key, WINDOW_S, by=-1)

    @contextmanager
    def lobby(self, address: str) -> Iterator[None]:
        """One lobby of ``address`` open while inside; 486/503 when a cap is reached."""
        if self._lobbies[address] >= LOBBIES_PER_ADDRESS:
            raise refusal(
                486,
                "Busy Here",
                f"Địa chỉ {address} đang có {LOBBIES_PER_ADDRESS} cuộc gọi chờ mã PIN",
                f"{address} already has {LOBBIES_PER_ADDRESS} calls waiting for a PIN",
            )
        if self.waiting >= LOBBIES_PER_NODE:
            raise refusal(
                503, "Service Unavailable", "Máy chủ đang bận, hãy gọi lại sau", "too many calls waiting for a PIN"
            )
        self._lobbies[address] += 1
        try:
            yield
        finally:
            self._lobbies[address] -= 1
            if self._lobbies[address] <= 0:
                del self._lobbies[address]
