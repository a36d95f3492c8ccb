"""A SIP room system's SDP offer (RFC 4566, RFC 3264), read into plain data.

Room systems (Polycom, Cisco, Huawei, Yealink, baresip) offer plain RTP: ``m=audio``/``m=video``
with RTP/AVP or RTP/SAVP (RTP/AVPF and RTP/SAVPF are read as the same), a ``c=`` address at
session or media level, RTCP on the port after RTP unless ``a=rtcp`` says otherwise, often a second
video line for slides (``a=content:slides``, RFC 4796) and BFCP ``m=application`` lines. Every
m-line is kept, in order, because the answer must have one line per offered line
(``mcu.rtp.sdp.build_answer``); what we cannot use (a port of 0, another protocol, formats we do
not know) is read and left for the codec choice to refuse.

``parse_offer`` raises only ``SdpError`` (a ``MediaError``), naming the line and what is wrong, and
only for what makes the offer unusable as a whole: the text is too large, a line is not ``x=value``,
an m-line or a c-line cannot be read. Attributes we do not need are ignored; an ``a=crypto`` we
cannot use is kept with its problem (``mcu.rtp.sdes``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from mcu.api import MediaError
from mcu.rtp.sdes import Crypto, parse_crypto

MAX_SDP_CHARS = 32_768  # a SIP body over UDP is smaller; room offers are 1-4 KiB
MAX_LINES = 1000
MAX_MEDIA = 16
MAX_FORMATS = 64
RTP_PROTOS = {"RTP/AVP": "RTP/AVP", "RTP/AVPF": "RTP/AVP", "RTP/SAVP": "RTP/SAVP", "RTP/SAVPF": "RTP/SAVP"}
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
# RFC 3551's static payload types that room systems offer without an rtpmap: (name, clock, channels)
STATIC = {
    0: ("PCMU", 8000, 1),
    3: ("GSM", 8000, 1),
    4: ("G723", 8000, 1),
    8: ("PCMA", 8000, 1),
    9: ("G722", 8000, 1),
    13: ("CN", 8000, 1),
    15: ("G728", 8000, 1),
    18: ("G729", 8000, 1),
    31: ("H261", 90000, 1),
    34: ("H263", 90000, 1),
}


class SdpError(MediaError):
    """An SDP offer we cannot read; the message names the line and what is wrong (printable
    characters only: it may become a SIP header's text)."""

    def __init__(self, message: str) -> None:
        super().__init__("".join(c if c.isprintable() else "?" for c in message))


def number(text: str, digits: int) -> int | None:
    """``text`` as an int when it is 1 to ``digits`` ASCII digits (str.isdigit also takes '²')."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= digits else None


@dataclass(frozen=True)
class Format:
    """One payload format of an RTP m-line: ``name`` upper case ("PCMU", "H264", "TELEPHONE-EVENT"),
    "" for a dynamic payload type without an rtpmap."""

    pt: int
    name: str
    clock: int
    channels: int = 1
    fmtp: str = ""  # the a=fmtp value as offered ("" when none)
    params: dict[str, str] = field(default_factory=dict)  # fmtp key=value pairs, keys lower case


@dataclass
class MediaLine:
    """One offered m-line and its attributes."""

    index: int  # position among the offer's m-lines
    lineno: int  # line number of its m= line in the offer (1-based), for messages
    kind: str  # audio | video | application | ...
    port: int  # 0: the offerer refuses or disables this line
    proto: str  # as offered ("RTP/SAVPF", "UDP/BFCP", ...)
    tokens: list[str]  # the m= line's formats as offered (the refused answer echoes the first)
    formats: list[Format] = field(default_factory=list)  # RTP lines: one per payload type, in order
    address: str = ""  # c= address (media level, else session level)
    rtcp_port: int = 0  # a=rtcp, else port + 1
    rtcp_address: str = ""
    rtcp_mux: bool = False  # offered a=rtcp-mux (we answer without it: RTCP stays on port + 1)
    direction: str = "sendrecv"
    bandwidth_kbps: int | None = None  # b=AS, or b=TIAS / 1000
    content: tuple[str, ...] = ()  # a=content values (RFC 4796): "main", "slides", ...
    label: str = ""
    mid: str = ""
    ptime: int | None = None
    crypto: list[Crypto] = field(default_factory=list)
    feedback: list[str] = field(default_factory=list)  # a=rtcp-fb values ("* nack pli", "96 ccm fir")

    @property
    def rtp(self) -> bool:
        """An RTP line (RTP/AVP, RTP/SAVP, with or without F)."""
        return self.proto.upper() in RTP_PROTOS

    @property
    def secure(self) -> bool:
        return RTP_PROTOS.get(self.proto.upper()) == "RTP/SAVP"

    @property
    def slides(self) -> bool:
        return "slides" in self.content

    @property
    def sending_direction(self) -> str:
        """The direction the offer means: a=sendrecv etc., where the old way of holding a call
        (RFC 3264 8.4: c=0.0.0.0, where nothing can be sent) reads as sendonly (or inactive)."""
        if self.address not in ("0.0.0.0", "::"):
            return self.direction
        return "inactive" if self.direction in ("recvonly", "inactive") else "sendonly"

    def format(self, pt: int) -> Format | None:
        return next((f for f in self.formats if f.pt == pt), None)


@dataclass
class RtpOffer:
    """A whole offer: its m-lines in order, and the session level's defaults."""

    lines: list[MediaLine]
    address: str = ""  # session-level c=
    bandwidth_kbps: int | None = None  # session-level b=AS / b=TIAS
    origin: str = ""  # the o= line's value
    tool: str = ""  # a=tool (baresip says its version there)

    def first(self, kind: str) -> MediaLine | None:
        return next((m for m in self.lines if m.kind == kind), None)


def parse_offer(sdp: str) -> RtpOffer:
    """Read an SDP offer; raises ``SdpError`` only (see the module docstring)."""
    if not isinstance(sdp, str):
        raise SdpError("the SDP body is not text")
    if len(sdp) > MAX_SDP_CHARS:
        raise SdpError(f"the SDP has {len(sdp)} characters, more than {MAX_SDP_CHARS}")
    lines = sdp.replace("\r\n", "\n").split("\n")
    if len(lines) > MAX_LINES:
        raise SdpError(f"the SDP has {len(lines)} lines, more than {MAX_LINES}")
    reader = _Reader()
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if line.strip():
            reader.line(lineno, line)
    return reader.finish()


class _Reader:
    """The parser's state: the session level, then the current m-line."""

    def __init__(self) -> None:
        self.offer = RtpOffer(lines=[])
        self.session_direction = "sendrecv"
        self.media: MediaLine | None = None
        self.rtpmap: dict[int, tuple[str, int, int]] = {}
        self.fmtp: dict[int, str] = {}
        self.rtcp: tuple[int, str] | None = None
        self.direction = ""
        self.seen_version = False

    def line(self, lineno: int, line: str) -> None:
        if "\x00" in line or "\r" in line:
            raise SdpError(f"line {lineno} ({line[:40]!r}) holds a NUL or a lone CR character")
        if len(line) < 2 or line[1] != "=" or not ("a" <= line[0] <= "z"):
            raise SdpError(f"line {lineno} ({line[:40]!r}) is not of the form x=value")
        kind, value = line[0], line[2:].strip()
        if not self.seen_version:
            if kind != "v" or value != "0":
                raise SdpError(f"line {lineno} ({line[:40]!r}): an SDP starts with v=0")
            self.seen_version = True
        elif kind == "m":
            self._close_media()
            self._media(lineno, value)
        elif kind == "c":
            self._connection(lineno, value)
        elif kind == "b":
            self._bandwidth(value)
        elif kind == "o" and self.media is None:
            self.offer.origin = value[:200]
        elif kind == "a":
            self._attribute(lineno, value)

    def _media(self, lineno: int, value: str) -> None:
        if len(self.offer.lines) >= MAX_MEDIA:
            raise SdpError(f"line {lineno}: more than {MAX_MEDIA} m-lines")
        parts = value.split()
        if len(parts) < 4:
            raise SdpError(f"line {lineno} (m={value[:40]}): an m-line is 'm=<media> <port> <proto> <formats>'")
        kind, port_text, proto, tokens = parts[0].lower(), parts[1].split("/", 1)[0], parts[2], parts[3:]
        port = number(port_text, 5)
        if port is None or port > 65535:
            raise SdpError(f"line {lineno} (m={value[:40]}): the port {port_text[:10]!r} is not 0-65535")
        if len(tokens) > MAX_FORMATS:
            raise SdpError(f"line {lineno}: {len(tokens)} formats, more than {MAX_FORMATS}")
        media = MediaLine(len(self.offer.lines), lineno, kind[:20], port, proto[:40], [t[:40] for t in tokens])
        payload_types = [number(t, 3) for t in tokens]
        if media.rtp and not all(pt is not None and pt <= 127 for pt in payload_types):
            raise SdpError(f"line {lineno} (m={value[:40]}): RTP formats are payload types 0-127")
        self.media = media
        self.offer.lines.append(media)

    def _connection(self, lineno: int, value: str) -> None:
        parts = value.split()
        if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
            raise SdpError(f"line {lineno} (c={value[:40]}): a connection line is 'c=IN IP4|IP6 <address>'")
        address = parts[2].split("/", 1)[0]  # a multicast address's /ttl
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise SdpError(f"line {lineno} (c={value[:40]}): {address[:40]!r} is not an IP address") from None
        if ip.version != (4 if parts[1] == "IP4" else 6):
            raise SdpError(f"line {lineno} (c={value[:40]}): the address is not {parts[1]}")
        if self.media is None:
            self.offer.address = str(ip)
        else:
            self.media.address = str(ip)

    def _bandwidth(self, value: str) -> None:
        modifier, _, amount = value.partition(":")
        given = number(amount.strip(), 12)
        kbps = given if modifier == "AS" else given // 1000 if modifier == "TIAS" and given is not None else None
        if kbps is None:  # another or a broken b= line: ignored, the defaults apply
            return
        if self.media is None:
            self.offer.bandwidth_kbps = kbps
        elif modifier == "TIAS" or self.media.bandwidth_kbps is None:  # TIAS is the more exact one
            self.media.bandwidth_kbps = kbps

    def _attribute(self, lineno: int, value: str) -> None:
        name, _, rest = value.partition(":")
        name = name.strip().lower()
        if name in DIRECTIONS:
            if self.media is None:
                self.session_direction = name
            else:
                self.direction = name
        elif self.media is None:
            if name == "tool":
                self.offer.tool = rest[:100]
        elif name == "rtpmap":
            self._rtpmap(rest)
        elif name == "fmtp":
            pt, _, params = rest.partition(" ")
            if number(pt, 3) is not None:
                self.fmtp[int(pt)] = params.strip()[:500]
        elif name == "rtcp":
            self._rtcp(lineno, rest)
        elif name == "rtcp-mux":
            self.media.rtcp_mux = True
        elif name == "content":
            self.media.content = tuple(
                v.strip().lower()[:20] for v in rest.split(",") if v.strip() and v.strip().isprintable()
            )[:8]
        elif name == "crypto" and len(self.media.crypto) < 16:
            self.media.crypto.append(parse_crypto(rest[:400]))
        elif name == "label" and rest.strip().isprintable():
            self.media.label = rest.strip()[:64]
        elif name == "mid":
            self.media.mid = rest.strip()[:64]
        elif name == "ptime":
            self.media.ptime = number(rest.strip(), 4)
        elif name == "rtcp-fb" and len(self.media.feedback) < 32:
            self.media.feedback.append(" ".join(rest.split())[:80])

    def _rtpmap(self, rest: str) -> None:
        pt, _, encoding = rest.strip().partition(" ")
        parts = encoding.strip().split("/")
        payload_type, clock = number(pt, 3), number(parts[1], 7) if len(parts) in (2, 3) else None
        channels = number(parts[2], 2) if len(parts) == 3 else 1
        if payload_type is not None and clock is not None and channels is not None:
            self.rtpmap[payload_type] = (parts[0].upper()[:40], clock, channels)
        # else unreadable: the format stays unnamed, as if it had no rtpmap

    def _rtcp(self, lineno: int, rest: str) -> None:
        parts = rest.split()
        port = number(parts[0], 5) if parts else None
        if port is None or port > 65535:
            raise SdpError(f"line {lineno} (a=rtcp:{rest[:30]}): the RTCP port is not 0-65535")
        address = ""
        if len(parts) == 4 and parts[1] == "IN":
            try:
                address = str(ipaddress.ip_address(parts[3]))
            except ValueError:
                raise SdpError(f"line {lineno} (a=rtcp:{rest[:30]}): {parts[3][:40]!r} is not an IP address") from None
        self.rtcp = (port, address)

    def _close_media(self) -> None:
        """Finish the current m-line: its formats, RTCP, direction and address."""
        media = self.media
        if media is not None:
            if media.rtp:
                media.formats = [self._format(int(t)) for t in media.tokens]
            media.address = media.address or self.offer.address
            port, address = self.rtcp or (media.port + 1 if media.port else 0, "")
            media.rtcp_port, media.rtcp_address = port, address or media.address
            media.direction = self.direction or self.session_direction
            if media.port and media.rtp and not media.address:
                raise SdpError(f"line {media.lineno} (m={media.kind}): no c= line gives its address")
        self.media, self.rtpmap, self.fmtp, self.rtcp, self.direction = None, {}, {}, None, ""

    def _format(self, pt: int) -> Format:
        name, clock, channels = self.rtpmap.get(pt) or STATIC.get(pt) or ("", 0, 1)
        fmtp = self.fmtp.get(pt, "")
        params = {}
        for item in fmtp.split(";"):
            key, eq, val = item.partition("=")
            if eq and key.strip():
                params[key.strip().lower()[:40]] = val.strip()[:100]
        return Format(pt, name, clock, channels, fmtp, params)

    def finish(self) -> RtpOffer:
        if not self.seen_version:
            raise SdpError("the SDP is empty: it starts with v=0")
        self._close_media()
        if not self.offer.lines:
            raise SdpError("the SDP has no m-line: offer m=audio (and m=video)")
        return self.offer
