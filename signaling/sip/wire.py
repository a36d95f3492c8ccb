"""SIP messages on the wire (#14): strict parsing of what arrives, and the responses we build.

aiosipua's parser is lenient (it takes any three words as a request line and reads what it can);
a server facing the internet must say what is wrong instead. ``parse`` checks the start line, the
mandatory headers (RFC 3261 §8.1.1), CSeq, Via, header sizes and Content-Length, then hands the
bytes to aiosipua for the message object. A request that fails raises :class:`BadMessage` whose
``reason`` names the fault ("Missing Call-ID", "Content-Length Mismatch") and, when the message
still has the headers a response needs, whose ``request`` can be answered with a 400 naming it.
"""

from __future__ import annotations

import re

from aiosipua.header_codec import parse_address, parse_cseq, parse_uri, parse_via
from aiosipua.message import SipMessage, SipRequest, SipResponse
from aiosipua.utils import generate_tag

MAX_HEADERS = 100
MAX_HEADER_LINE = 4096
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK"
ACCEPT = "application/sdp, application/media_control+xml, application/dtmf-relay, application/dtmf"
SUPPORTED = "timer, 100rel"
_REQUEST_LINE = re.compile(r"([A-Za-z]{1,32}) (sips?:[^\s]{1,1024}) SIP/2\.0")
_STATUS_LINE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9]) ([^\x00-\x08\x0a-\x1f]*)")
_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*[A-Za-z]{2,5}\s+[\w.:\[\]-]+(?:\s*;[\x21-\x7e]*)*")
_ADDRESS = re.compile(r"[^<>]*<(?:sips?|tel):[^<>\s]+>(?:\s*;.*)?|(?:sips?|tel):[^<>\s;]+(?:;.*)?", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_PLACEHOLDER = b"OPTIONS sip:invalid SIP/2.0"
_COPIED = {b"via", b"v", b"from", b"f", b"to", b"t", b"call-id", b"i", b"cseq"}


class BadMessage(Exception):
    """A message we refuse; ``request`` is set when it can still be answered (it has Via and CSeq)."""

    def __init__(self, reason: str, request: SipRequest | None = None, code: int = 400) -> None:
        super().__init__(reason)
        self.reason, self.request, self.code = reason, request, code


def parse(data: bytes) -> SipRequest | SipResponse:
    """A checked message, or BadMessage naming the first fault found."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = data.partition(b"\n\n")
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    start = lines[0].decode("ascii", errors="replace").strip()
    is_response = start.startswith("SIP/")
    if not (_STATUS_LINE.fullmatch(start) if is_response else _REQUEST_LINE.fullmatch(start)):
        raise BadMessage("Bad Status Line" if is_response else "Bad Request Line", _salvage(lines))
    _check_lines(lines)
    try:
        message = SipMessage.parse(data)
    except (ValueError, IndexError):
        raise BadMessage("Unparsable Message", _salvage(lines)) from None
    _check_headers(message, is_response)
    _check_length(message, body)
    return message


def _check_lines(lines: list[bytes]) -> None:
    if len(lines) > MAX_HEADERS + 1:
        raise BadMessage("Too Many Headers", _salvage(lines), 513)
    for line in lines[1:]:
        if len(line) > MAX_HEADER_LINE:
            raise BadMessage("Header Too Long", _salvage(lines), 513)
        if b"\x00" in line:
            raise BadMessage("NUL In Headers", _salvage([x for x in lines if b"\x00" not in x]))


def _salvage(lines: list[bytes]) -> SipRequest | None:
    """The headers a response copies (Via, From, To, Call-ID, CSeq) of a refused message, under a
    placeholder request line, if they are there and can route a reply."""
    kept = [line for line in lines[1:] if line.split(b":", 1)[0].strip().lower() in _COPIED and len(line) <= 1024]
    try:
        message = SipMessage.parse(b"\r\n".join([_PLACEHOLDER, *kept[:20]]) + b"\r\n\r\n")
    except (ValueError, IndexError):
        return None
    if not isinstance(message, SipRequest) or not _answerable(message):
        return None
    return message


def _answerable(message: SipMessage) -> bool:
    """A response can be built: a parsable Via and CSeq (the other headers are copied if present)."""
    vias, cseqs = message.headers.get("via"), message.headers.get("cseq")
    if not vias or not cseqs or not all(_VIA.fullmatch(v.strip()) for v in vias):
        return False
    try:
        cseq = parse_cseq(cseqs[0])
    except (ValueError, IndexError):
        return False
    return bool(_TOKEN.fullmatch(cseq.method))


def _check_headers(message: SipMessage, is_response: bool) -> None:
    request = message if isinstance(message, SipRequest) else None
    replyable = request if request is not None and _answerable(request) else None
    for name in REQUIRED:
        if not message.headers.get(name):
            raise BadMessage(f"Missing {name}", replyable)
    for name, check in (("Via", parse_via), ("CSeq", parse_cseq), ("From", parse_address), ("To", parse_address)):
        try:
            check(message.headers.get(name)[0])
        except (ValueError, IndexError, KeyError, AttributeError):
            raise BadMessage(f"Bad {name}", replyable if name in ("From", "To") else None) from None
    cseq = parse_cseq(message.headers.get("cseq")[0])
    if not _TOKEN.fullmatch(cseq.method) or not 0 <= cseq.seq < 2**31:
        raise BadMessage("Bad CSeq", None)
    if not _VIA.match(message.headers.get("via")[0]):
        raise BadMessage("Bad Via")
    for name in ("From", "To"):
        unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', message.headers.get(name)[0])
        if not _ADDRESS.fullmatch(unquoted.strip()):
            raise BadMessage(f"Bad {name}", replyable)
    if request is not None and cseq.method.upper() != request.method.upper():
        raise BadMessage("CSeq Method Mismatch", replyable)


def _check_length(message: SipMessage, body: bytes) -> None:
    raw = message.headers.get_first("content-length")
    if raw is None:
        return
    if not raw.strip().isdigit():
        raise BadMessage("Bad Content-Length", message if isinstance(message, SipRequest) else None)
    if int(raw) > len(body):
        raise BadMessage("Content-Length Mismatch", message if isinstance(message, SipRequest) else None)


def response(request: SipRequest, code: int, reason: str, *, to_tag: str | None = None) -> SipResponse:
    """A response to ``request`` outside any dialog's bookkeeping: Via, From, To (+tag), Call-ID, CSeq copied."""
    out = SipResponse(status_code=code, reason_phrase=reason)
    for via in request.headers.get("via"):
        out.headers.append("Via", via)
    for name in ("From", "Call-ID", "CSeq"):
        value = request.headers.get_first(name)
        if value is not None:
            out.headers.set_single(name, value)
    to = request.headers.get_first("to")
    if to is not None:
        if code > 100 and ";tag=" not in to.replace(" ", ""):
            to = f"{to};tag={to_tag or generate_tag()}"
        out.headers.set_single("To", to)
    return out


def warning_value(code: int, host: str, text: str) -> str:
    """A Warning header (RFC 3261 §20.43): 305 incompatible media for 488, else 399 miscellaneous."""
    warn_code = 305 if code == 488 else 399
    quoted = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")
    return f'{warn_code} {host} "{quoted[:200]}"'


def capabilities(message: SipMessage) -> None:
    """Allow, Accept and Supported: what an OPTIONS answer and our INVITEs say we take."""
    message.headers.set_single("Allow", ALLOW)
    message.headers.set_single("Accept", ACCEPT)
    message.headers.set_single("Supported", SUPPORTED)


def unsupported(request: SipRequest) -> list[str]:
    """The option tags of the request's Require we do not support (RFC 3261 §8.2.2.3: 420 names them)."""
    ours = {t.strip() for t in SUPPORTED.split(",")}
    tags = [t.strip().lower() for v in request.headers.get("require") for t in v.split(",") if t.strip()]
    return [t for t in dict.fromkeys(tags) if t not in ours]


def has_option(message: SipMessage, token: str) -> bool:
    """``token`` in the message's Supported or Require (e.g. "timer", "100rel")."""
    values = message.headers.get("supported") + message.headers.get("require")
    return token in {t.strip().lower() for v in values for t in v.split(",")}


def sdp_of(message: SipMessage) -> str | None:
    """The message's SDP body as text, or None."""
    ctype = (message.content_type or "").split(";")[0].strip().lower()
    if ctype == "application/sdp" and message.body.strip():
        return message.body.decode("utf-8", errors="replace")
    return None


def uri_user(uri: str) -> str:
    try:
        return parse_uri(uri.strip("<>")).user or ""
    except (ValueError, IndexError):
        return ""


def allows_update(message: SipRequest | SipResponse) -> bool:
    return any("UPDATE" in v.upper() for v in message.headers.get("allow"))
