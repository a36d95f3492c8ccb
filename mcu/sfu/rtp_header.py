"""I/O-free helpers on raw RTP/RTCP bytes.

Everything here works on ``bytes`` with ``struct`` and index arithmetic: no packet objects, so
that the per-packet work of the router stays a handful of C calls. RFC references: RTP 3550,
header extensions 8285, audio level 6464, VP8 payload 7741, H.264 payload 6184, RTCP feedback
4585 / 5104, RTX 4588.
"""

from __future__ import annotations

import struct
from typing import Any

SEQ_TS = struct.Struct("!HI")  # sequence number and timestamp at offset 2
SEQ_TS_SSRC = struct.Struct("!HII")  # offset 2: seq, timestamp, ssrc
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")

URI_AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
URI_MID = "urn:ietf:params:rtp-hdrext:sdes:mid"

RTCP_SR = 200
RTCP_RR = 201
RTCP_RTPFB = 205
RTCP_PSFB = 206


def is_rtcp(data: bytes) -> bool:
    return len(data) >= 2 and 192 <= data[1] <= 208


def payload_bounds(data: bytes) -> tuple[int, int, int, int]:
    """Return (ext_start, ext_end, payload_start, payload_end) of an RTP packet.

    ``ext_start == ext_end`` when there is no header extension. Raises ValueError on a
    truncated packet.
    """
    n = len(data)
    if n < 12:
        raise ValueError("RTP packet too short")
    b0 = data[0]
    off = 12 + ((b0 & 0x0F) << 2)
    ext_start = ext_end = off
    if b0 & 0x10:
        if off + 4 > n:
            raise ValueError("truncated RTP header extension")
        ext_start = off
        off += 4 + ((data[off + 2] << 8 | data[off + 3]) << 2)
        ext_end = off
    end = n - data[-1] if b0 & 0x20 else n
    if off > end:
        raise ValueError("truncated RTP packet")
    return ext_start, ext_end, off, end


def find_extension(data: bytes, ext_start: int, ext_end: int, ext_id: int) -> bytes | None:
    """Value of header extension ``ext_id`` (RFC 8285 one- or two-byte form), or None."""
    if ext_start == ext_end or ext_id <= 0:
        return None
    profile = data[ext_start] << 8 | data[ext_start + 1]
    pos = ext_start + 4
    if profile == 0xBEDE:
        while pos < ext_end:
            b = data[pos]
            if b == 0:  # padding
                pos += 1
                continue
            eid = b >> 4
            length = (b & 0x0F) + 1
            if eid == 15:
                return None
            if eid == ext_id:
                return data[pos + 1 : pos + 1 + length]
            pos += 1 + length
    elif profile & 0xFFF0 == 0x1000:
        while pos + 1 < ext_end:
            eid = data[pos]
            if eid == 0:
                pos += 1
                continue
            length = data[pos + 1]
            if eid == ext_id:
                return data[pos + 2 : pos + 2 + length]
            pos += 2 + length
    return None


def audio_level(data: bytes, ext_start: int, ext_end: int, ext_id: int) -> int | None:
    """RFC 6464 level in -dBov (0 loudest, 127 silence), or None if absent."""
    value = find_extension(data, ext_start, ext_end, ext_id)
    if not value:
        return None
    return value[0] & 0x7F


def audio_level_extension(ext_id: int, level: int) -> bytes:
    """A one-byte-form extension block carrying only the audio level."""
    return bytes((0xBE, 0xDE, 0x00, 0x01, (ext_id << 4), level & 0x7F, 0, 0))


def vp8_keyframe_start(data: bytes, off: int, end: int) -> bool:
    """True for the first packet of a VP8 key frame (RFC 7741 sections 4.2, 4.3)."""
    if end - off < 2:
        return False
    b = data[off]
    if not (b & 0x10) or (b & 0x07):  # S bit set and partition index 0
        return False
    pos = off + 1
    if b & 0x80:  # X
        x = data[pos]
        pos += 1
        if x & 0x80:  # I: picture id, 7 or 15 bits
            pos += 2 if data[pos] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            pos += 1
        if x & 0x30:  # T or K
            pos += 1
    if pos >= end:
        return False
    return not (data[pos] & 0x01)  # P bit 0: key frame


def vp8_picture_id(data: bytes, off: int) -> int:
    """The 15-bit VP8 picture id (RFC 7741 4.2, M bit set), or -1 (absent or 7-bit form)."""
    if len(data) - off < 4 or not (data[off] & 0x80):
        return -1
    if (data[off + 1] & 0x80) and (data[off + 2] & 0x80):
        return (data[off + 2] & 0x7F) << 8 | data[off + 3]
    return -1


def h264_keyframe_parts(data: bytes, off: int, end: int) -> bool:
    """True if the packet carries an SPS or the start of an IDR slice (RFC 6184)."""
    if end - off < 1:
        return False
    nal = data[off] & 0x1F
    if nal in (5, 7):
        return True
    if nal == 24:  # STAP-A
        pos = off + 1
        while pos + 2 < end:
            size = data[pos] << 8 | data[pos + 1]
            if size == 0 or pos + 2 >= end:
                break
            if data[pos + 2] & 0x1F in (5, 7):
                return True
            pos += 2 + size
        return False
    if nal == 28 and end - off >= 2:  # FU-A: start of an IDR slice
        fu = data[off + 1]
        return bool(fu & 0x80) and (fu & 0x1F) == 5
    return False


def pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    """RTCP Picture Loss Indication (RFC 4585 6.3.1)."""
    return struct.pack("!BBHII", 0x81, RTCP_PSFB, 2, sender_ssrc, media_ssrc)


def fir(sender_ssrc: int, media_ssrc: int, seq_nr: int) -> bytes:
    """RTCP Full Intra Request (RFC 5104 4.3.1)."""
    return struct.pack("!BBHIIIB3x", 0x84, RTCP_PSFB, 4, sender_ssrc, 0, media_ssrc, seq_nr & 0xFF)


def nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    """RTCP generic NACK (RFC 4585 6.2.1) for the given sequence numbers."""
    fci = bytearray()
    seqs = sorted(set(s & 0xFFFF for s in lost))
    i = 0
    while i < len(seqs):
        pid = seqs[i]
        blp = 0
        i += 1
        while i < len(seqs) and 0 < ((seqs[i] - pid) & 0xFFFF) <= 16:
            blp |= 1 << (((seqs[i] - pid) & 0xFFFF) - 1)
            i += 1
        fci += struct.pack("!HH", pid, blp)
    header = struct.pack("!BBHII", 0x81, RTCP_RTPFB, 2 + len(fci) // 4, sender_ssrc, media_ssrc)
    return header + bytes(fci)


def receiver_report(sender_ssrc: int, blocks: list[tuple[int, int, int, int]]) -> bytes:
    """RTCP RR (RFC 3550 6.4.2); blocks: (ssrc, fraction_lost, cumulative_lost, ext_high_seq).
    Jitter, LSR and DLSR are reported as 0."""
    body = b"".join(
        struct.pack("!IIIIII", ssrc, (fraction & 0xFF) << 24 | (lost & 0xFFFFFF), high, 0, 0, 0)
        for ssrc, fraction, lost, high in blocks[:31]
    )
    return struct.pack("!BBHI", 0x80 | len(blocks[:31]), RTCP_RR, 1 + len(body) // 4, sender_ssrc) + body


def remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    """Receiver Estimated Maximum Bitrate (draft-alvestrand-rmcat-remb)."""
    exp = 0
    mantissa = max(0, int(bitrate))
    while mantissa >= 1 << 18:
        mantissa >>= 1
        exp += 1
    fci = b"REMB" + struct.pack("!BBH", len(ssrcs), (exp << 2) | (mantissa >> 16), mantissa & 0xFFFF)
    fci += b"".join(struct.pack("!I", s) for s in ssrcs)
    return struct.pack("!BBHII", 0x8F, RTCP_PSFB, 2 + len(fci) // 4, sender_ssrc, 0) + fci


# Feedback items returned by parse_feedback():
#   ("pli", media_ssrc) ("fir", media_ssrc) ("nack", media_ssrc, [seq, ...])
#   ("rr", ssrc, fraction_lost_0_255) one per report block of SR/RR
FEEDBACK_PLI = "pli"
FEEDBACK_FIR = "fir"
FEEDBACK_NACK = "nack"
FEEDBACK_RR = "rr"
FEEDBACK_REMB = "remb"  # ("remb", media_ssrc, bitrate) one per SSRC listed in a REMB
Feedback = tuple[Any, ...]  # one of the items above


def parse_feedback(data: bytes) -> list[Feedback]:
    """Extract the feedback a router acts on from a compound RTCP packet; ignore the rest."""
    out: list[Feedback] = []
    pos = 0
    n = len(data)
    while pos + 4 <= n:
        b0 = data[pos]
        pt = data[pos + 1]
        length = ((data[pos + 2] << 8 | data[pos + 3]) + 1) * 4
        end = pos + length
        if (b0 >> 6) != 2 or end > n:
            break
        fmt = b0 & 0x1F
        if pt == RTCP_PSFB and end - pos >= 12:
            media = U32.unpack_from(data, pos + 8)[0]
            if fmt == 1:
                out.append((FEEDBACK_PLI, media))
            elif fmt == 4:
                p = pos + 12
                while p + 8 <= end:
                    out.append((FEEDBACK_FIR, U32.unpack_from(data, p)[0]))
                    p += 8
            elif fmt == 15 and end - pos >= 20 and data[pos + 12 : pos + 16] == b"REMB":
                count, b1 = data[pos + 16], data[pos + 17]
                bitrate = ((b1 & 0x03) << 16 | data[pos + 18] << 8 | data[pos + 19]) << (b1 >> 2)
                p = pos + 20
                for _ in range(count):
                    if p + 4 > end:
                        break
                    out.append((FEEDBACK_REMB, U32.unpack_from(data, p)[0], bitrate))
                    p += 4
        elif pt == RTCP_RTPFB and fmt == 1 and end - pos >= 12:
            media = U32.unpack_from(data, pos + 8)[0]
            lost = []
            p = pos + 12
            while p + 4 <= end:
                pid, blp = struct.unpack_from("!HH", data, p)
                lost.append(pid)
                for bit in range(16):
                    if blp & (1 << bit):
                        lost.append((pid + bit + 1) & 0xFFFF)
                p += 4
            out.append((FEEDBACK_NACK, media, lost))
        elif pt in (RTCP_SR, RTCP_RR):
            p = pos + 8 + (20 if pt == RTCP_SR else 0)
            for _ in range(fmt):
                if p + 24 > end:
                    break
                out.append((FEEDBACK_RR, U32.unpack_from(data, p)[0], data[p + 4]))
                p += 24
        pos = end
    return out
