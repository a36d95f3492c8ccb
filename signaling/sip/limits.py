"""Per-address limits of the SIP stack (#14): what one source may cost us before it is refused.

A flood of INVITEs from one address gets 503 with Retry-After once its token bucket is empty
(``invite_rate`` per second, ``invite_burst`` at once), and any message beyond ``message_rate`` is
dropped unread; one address holds at most ``calls_per_address`` calls and the stack ``max_calls``.
Behind a trusted proxy (``sip.trusted_proxies``, proxies.py) "one address" is the caller's address
the proxy recorded; the first three are settings (``SipLimits.of``).
The tables are bounded: an address idle long enough has a full bucket again, so it is forgotten.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from signaling.sip_settings import SipSettings


@dataclass(frozen=True)
class SipLimits:
    invite_rate: float = 10.0  # new INVITEs per second per source address ...
    invite_burst: int = 20  # ... with this many at once
    message_rate: float = 300.0  # any message per second per address (beyond: dropped unread)
    message_burst: int = 600
    calls_per_address: int = 20  # live calls from one address (a room system holds 1, a proxy many)
    max_calls: int = 500  # live calls on this stack
    retry_after_s: int = 5
    max_conns: int = 1024  # TCP+TLS connections in all ...
    max_conns_per_address: int = 32  # ... and from one address

    @classmethod
    def of(cls, settings: SipSettings) -> SipLimits:
        """The defaults with what ``sip.*`` sets (calls_per_address, invite_rate, invite_burst)."""
        return cls(
            invite_rate=settings.invite_rate,
            invite_burst=settings.invite_burst,
            calls_per_address=settings.calls_per_address,
        )


class TokenBuckets:
    """One token bucket per key (a source address); at most ``max_keys`` remembered."""

    def __init__(self, rate: float, burst: int, max_keys: int = 65536) -> None:
        self.rate, self.burst, self.max_keys = rate, float(burst), max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> bool:
        """One token from ``key``'s bucket, False when it is empty."""
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._prune(now)
        self._buckets[key] = (tokens - 1.0, now)
        return True

    def _prune(self, now: float) -> None:
        """Forget the buckets that are full again (idle for burst/rate seconds); else the oldest half."""
        full_after = self.burst / self.rate if self.rate else 0.0
        idle = [k for k, (_, at) in self._buckets.items() if now - at >= full_after]
        for key in idle or sorted(self._buckets, key=lambda k: self._buckets[k][1])[: len(self._buckets) // 2]:
            del self._buckets[key]

    def __len__(self) -> int:
        return len(self._buckets)
