"""Per-source jitter buffer: Opus payloads in, one playout decision per 20 ms tick out.

Packets are ordered by RTP sequence number (16-bit, wrap-around aware; one packet = one 20 ms
frame, the size every WebRTC sender uses). Playout starts once ``prefill`` packets are buffered.
Each ``pop()`` returns the packet due now, ``CONCEAL`` when it is missing (a gap with later
packets already here, or an underrun of at most ``max_conceal`` ticks), or ``None`` when the
source is idle (it stopped sending: the mixer then contributes silence, and playout restarts
with a new prefill when packets come back). Packets whose tick has passed are dropped as late;
the buffer is bounded: above ``capacity`` the oldest packets are dropped (latency stays bounded
when a sender bursts). A sequence jump larger than ``capacity`` (sender restart, SSRC change
upstream) resynchronises playout instead of concealing the whole distance.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


class _Conceal:
    def __repr__(self) -> str:
        return "CONCEAL"


CONCEAL: Final = _Conceal()


def seq_diff(a: int, b: int) -> int:
    """a - b in 16-bit sequence space (-32768..32767)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


@dataclass
class Packet:
    seq: int
    timestamp: int
    payload: bytes
    level: int | None  # RFC 6464 level in -dBov (0 loudest, 127 silence), None if unknown


@dataclass
class JitterStats:
    received: int = 0
    played: int = 0
    concealed: int = 0  # ticks that needed concealment (missing or late packet, short underrun)
    late: int = 0  # packets that arrived after their tick (dropped)
    duplicate: int = 0
    overflow: int = 0  # dropped because the buffer was full
    restarts: int = 0  # playout (re)starts after idle
    resyncs: int = 0  # jumps to a sequence number far from the expected one


class JitterBuffer:
    def __init__(self, prefill: int = 2, capacity: int = 8, max_conceal: int = 3):
        if not 1 <= prefill <= capacity:
            raise ValueError("need 1 <= prefill <= capacity")
        self.prefill = prefill
        self.capacity = capacity
        self.max_conceal = max_conceal
        self.stats = JitterStats()
        self._packets: dict[int, Packet] = {}
        self._next: int | None = None  # seq due at the next pop, None while idle
        self._last_played: int | None = None  # last real packet played: late detection when idle
        self._underrun = 0
        self._late_run = 0

    @property
    def playing(self) -> bool:
        return self._next is not None

    def __len__(self) -> int:
        return len(self._packets)

    def push(self, pkt: Packet) -> bool:
        """Queue a packet; False if it was dropped (late or duplicate)."""
        self.stats.received += 1
        ref = self._next if self._next is not None else self._last_played
        if ref is not None:
            behind = seq_diff(ref, pkt.seq)
            late = behind > 0 if self._next is not None else behind >= 0
            if late and behind < 1000:  # far behind: the sender restarted its sequence
                self._late_run += 1
                if self._late_run <= self.capacity:
                    self.stats.late += 1
                    return False
                self.reset()  # a run of "late" packets: the sender restarted nearby
                self.stats.resyncs += 1
        self._late_run = 0
        if pkt.seq in self._packets:
            self.stats.duplicate += 1
            return False
        self._packets[pkt.seq] = pkt
        while len(self._packets) > self.capacity:
            oldest = self._oldest()
            del self._packets[oldest]
            self.stats.overflow += 1
            if self._next is not None and seq_diff(oldest, self._next) >= 0:
                self._next = (oldest + 1) & 0xFFFF
        return True

    def _oldest(self) -> int:
        ref = self._next if self._next is not None else next(iter(self._packets))
        return min(self._packets, key=lambda s: seq_diff(s, ref))

    def pop(self) -> Packet | _Conceal | None:
        """The playout decision for this tick."""
        if self._next is None:
            if len(self._packets) < self.prefill:
                return None
            self._next = self._oldest()
            self.stats.restarts += 1
        seq = self._next
        pkt = self._packets.pop(seq, None)
        if pkt is not None:
            self._last_played = seq
            self._next = (seq + 1) & 0xFFFF
            self._underrun = 0
            self.stats.played += 1
            return pkt
        if self._packets:
            oldest = self._oldest()
            if abs(seq_diff(oldest, seq)) > self.capacity:  # the sender jumped: follow it
                self.stats.resyncs += 1
                self._next = oldest
                return self.pop()
        else:
            self._underrun += 1
            if self._underrun > self.max_conceal:  # the source stopped: go idle
                self._next = None
                self._underrun = 0
                return None
        self._next = (seq + 1) & 0xFFFF
        self.stats.concealed += 1
        return CONCEAL

    def peek(self) -> bytes | None:
        """Payload of the packet due at the next pop, if it is already here (after a CONCEAL,
        the packet whose in-band FEC can rebuild the missing frame)."""
        pkt = self._packets.get(self._next) if self._next is not None else None
        return pkt.payload if pkt is not None else None

    def reset(self) -> None:
        self._packets.clear()
        self._next = None
        self._last_played = None
        self._underrun = 0
        self._late_run = 0
