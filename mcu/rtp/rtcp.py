"""RTCP of a SIP leg that the SFU's helpers (``mcu.sfu.rtp_header``) do not write or read: the
sender report with its report blocks, SDES CNAME (RFC 3550 §6.1: every compound packet has one;
some room systems drop packets without it) and TMMBR (RFC 5104 §4.2.1), which room systems send
instead of REMB to cap what we send them, and the TMMBN that acknowledges it; the NTP time of the
room's sender reports, for the LSR/DLSR of our report blocks (RFC 3550 §6.4.1: its round-trip
time). I/O free."""

from __future__ import annotations

import struct

from mcu.sfu.rtp_header import RTCP_RR, RTCP_RTPFB

RTCP_SR = 200
RTCP_SDES = 202
TMMBR_FMT = 3
TMMBN_FMT = 4

# (ssrc, fraction lost 0..255, cumulative lost, extended highest seq[, jitter, LSR, DLSR]): absent = 0
Block = tuple[int, ...]


def report_blocks(blocks: list[Block]) -> bytes:
    out = b""
    for block in blocks[:31]:
        ssrc, fraction, lost, high, jitter, lsr, dlsr = (*block, 0, 0, 0)[:7]
        word = (fraction & 0xFF) << 24 | (lost & 0xFFFFFF)
        out += struct.pack("!IIIIII", ssrc, word, high & 0xFFFFFFFF, jitter & 0xFFFFFFFF, lsr, dlsr & 0xFFFFFFFF)
    return out


def sender_report_times(data: bytes) -> list[tuple[int, int]]:
    """(sender SSRC, middle 32 bits of its NTP time) of each SR in a compound RTCP packet: the LSR."""
    out = []
    pos, n = 0, len(data)
    while pos + 4 <= n:
        b0, pt = data[pos], data[pos + 1]
        end = pos + ((data[pos + 2] << 8 | data[pos + 3]) + 1) * 4
        if b0 >> 6 != 2 or end > n:
            break
        if pt == RTCP_SR and end - pos >= 28:
            ssrc, ntp = struct.unpack_from("!IQ", data, pos + 4)
            out.append((ssrc, ntp >> 16 & 0xFFFFFFFF))
        pos = end
    return out


def sender_report(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int, blocks: list[Block]) -> bytes:
    """RTCP SR (RFC 3550 §6.4.1); ``ntp``: 64-bit NTP time."""
    body = report_blocks(blocks)
    head = struct.pack("!BBHI", 0x80 | len(blocks[:31]), RTCP_SR, 6 + len(body) // 4, ssrc)
    info = struct.pack("!QIII", ntp, rtp_ts & 0xFFFFFFFF, packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    return head + info + body


def receiver_report(ssrc: int, blocks: list[Block]) -> bytes:
    body = report_blocks(blocks)
    return struct.pack("!BBHI", 0x80 | len(blocks[:31]), RTCP_RR, 1 + len(body) // 4, ssrc) + body


def sdes_cname(ssrc: int, cname: str) -> bytes:
    text = cname.encode()[:255]
    chunk = struct.pack("!IBB", ssrc, 1, len(text)) + text + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)
    return struct.pack("!BBH", 0x81, RTCP_SDES, len(chunk) // 4) + chunk


def tmmbr_requests(data: bytes) -> list[tuple[int, int, int]]:
    """(requesting SSRC, media SSRC, FCI word: exponent, mantissa, overhead) of each TMMBR entry
    in a compound RTCP packet."""
    out = []
    pos, n = 0, len(data)
    while pos + 4 <= n:
        b0, pt = data[pos], data[pos + 1]
        end = pos + ((data[pos + 2] << 8 | data[pos + 3]) + 1) * 4
        if b0 >> 6 != 2 or end > n:
            break
        if pt == RTCP_RTPFB and b0 & 0x1F == TMMBR_FMT and end - pos >= 12:
            sender = struct.unpack_from("!I", data, pos + 4)[0]
            for p in range(pos + 12, end - 7, 8):
                ssrc, word = struct.unpack_from("!II", data, p)
                out.append((sender, ssrc, word))
        pos = end
    return out


def tmmbr_limits(data: bytes) -> list[tuple[int, int]]:
    """(media SSRC, maximum bit/s) of each TMMBR entry in a compound RTCP packet."""
    return [(ssrc, ((word >> 9) & 0x1FFFF) << (word >> 26)) for _, ssrc, word in tmmbr_requests(data)]


def tmmbn(ssrc: int, requests: list[tuple[int, int, int]]) -> bytes:
    """TMMBN (RFC 5104 §4.2.2) acknowledging ``requests``: each requester's limit is the bounding set."""
    fci = b"".join(struct.pack("!II", sender, word) for sender, _, word in requests[:32])
    return struct.pack("!BBHII", 0x80 | TMMBN_FMT, RTCP_RTPFB, 2 + len(fci) // 4, ssrc, 0) + fci


class ReceptionTiming:
    """Interarrival jitter (RFC 3550 §6.4.1, A.8) of the room's packets and the LSR/DLSR of its
    last sender report: the timing part of the report block about the room's stream."""

    def __init__(self, clock: int) -> None:
        self.clock = clock
        self.jitter = 0.0  # in RTP clock units
        self._transit: float | None = None
        self._lsr = 0
        self._lsr_at = 0.0

    def packet(self, rtp_ts: int, arrival: float) -> None:
        transit = arrival * self.clock - rtp_ts
        if self._transit is not None:
            d = abs((transit - self._transit + 2**31) % 2**32 - 2**31)  # across a timestamp wrap
            self.jitter += (d - self.jitter) / 16
        self._transit = transit

    def sender_report(self, ntp_middle: int, arrival: float) -> None:
        self._lsr, self._lsr_at = ntp_middle, arrival

    def block_tail(self, now: float) -> tuple[int, int, int]:
        """(jitter, LSR, DLSR in 1/65536 s) for a report block sent at ``now``."""
        dlsr = int((now - self._lsr_at) * 65536) if self._lsr else 0
        return int(self.jitter), self._lsr, max(0, dlsr)
