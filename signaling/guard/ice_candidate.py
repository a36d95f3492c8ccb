"""Checks a trickled ICE candidate line before it reaches the media node.

aiortc parses candidates by position and ``assert``s the field count, so garbage such as
``candidate:garbage`` raised AssertionError/ValueError deep in the peer and the client got
``internal``. This is the candidate-attribute grammar of RFC 8839 section 5.1, checked up to the
candidate type; extension attributes after it are passed through (browsers add their own).
"""

from __future__ import annotations

import re

from signaling.errors import ApiError, bad_request

_FIELDS = (  # name, pattern, what it must be
    ("foundation", re.compile(r"[A-Za-z0-9+/]{1,32}"), "1-32 letters, digits, '+' or '/'"),
    ("component", re.compile(r"[0-9]{1,3}"), "a number from 1 to 256"),
    ("transport", re.compile(r"[A-Za-z0-9-]{1,16}"), "a transport such as UDP"),
    ("priority", re.compile(r"[0-9]{1,10}"), "a number below 2^32"),
    ("address", re.compile(r"[A-Za-z0-9.:%-]{1,255}"), "an IP address or a host name"),
    ("port", re.compile(r"[0-9]{1,5}"), "a port from 0 to 65535"),
    ("typ", re.compile(r"typ"), "the word 'typ'"),
    ("type", re.compile(r"[A-Za-z0-9-]{1,16}"), "a candidate type such as host, srflx or relay"),
)
_RANGES = {"component": (1, 256), "priority": (0, 2**32 - 1), "port": (0, 65535)}
_PORTS = ("rport",)  # extension values aiortc reads as integers


def check_candidate(text: str) -> None:
    """ApiError(bad_request) naming the first wrong part of an ICE candidate line."""
    if not text.isascii() or not text.isprintable():
        raise _bad(text, "it holds characters that are not printable ASCII")
    body = text[len("candidate:") :] if text.startswith("candidate:") else text
    bits = body.split()
    if len(bits) < len(_FIELDS):
        raise _bad(
            text, "expected 'candidate:<foundation> <component> <transport> <priority> <address> <port> typ <type>'"
        )
    for value, (name, pattern, what) in zip(bits, _FIELDS):
        low, high = _RANGES.get(name, (None, None))
        if not pattern.fullmatch(value) or (low is not None and not low <= int(value) <= high):
            raise _bad(text, f"{name} {value[:40]!r} is not {what}")
    extras = bits[len(_FIELDS) :]
    for name, value in zip(extras[::2], extras[1::2]):
        if name in _PORTS and not (value.isdigit() and len(value) <= 5 and int(value) <= 65535):
            raise _bad(text, f"{name} {value[:40]!r} is not a port from 0 to 65535")


def _bad(text: str, why: str) -> ApiError:
    return bad_request(f"ice: candidate {text[:80]!r} is malformed: {why}", "candidate")
