"""Server-side digest authentication for SIP (#14; RFC 3261 §22, RFC 8760, RFC 2617 fallback).

aiosipua answers challenges (client side) only; a room system that dials in is challenged here.
A 401 carries two WWW-Authenticate headers, SHA-256 first and MD5 second (RFC 8760 §2.4: the
client takes the first it supports), ``qop="auth"``, and a nonce that is its own proof: the time it
was made and an HMAC of that time and of the caller's address under a secret of this process, so a
nonce is good only from the address it was given to. A nonce older than ``NONCE_TTL_S`` is answered
with a fresh challenge marked ``stale=true``. Against replay (RFC 7616 §3.4.6, §5.1) the ``uri``
parameter must be the Request-URI, and each accepted answer's ``nc`` is kept per nonce: a repeated
or lower count is challenged again. Unknown user and wrong password get the same 403 text.

Who the caller may be is the gateway's business: ``ha1_lookup(user, realm, algorithm)`` returns the
hex H(user:realm:password) under that algorithm, or None for an unknown user. The expected response
is computed the way aiosipua's ``build_credentials`` computes a client's, from H(A1) instead of the
password, and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosipua.header_codec import parse_auth, parse_uri
from aiosipua.message import SipRequest

from signaling.sip.calls import maybe_await

NONCE_TTL_S = 300
FORBIDDEN = "Forbidden"  # one text for unknown user and wrong credentials: no user enumeration
ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
Ha1Lookup = Callable[[str, str, str], Any]  # (user, realm, algorithm) -> hex HA1 | None, or an awaitable of it


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking a request's credentials: ``user`` when good, else a 401/403 to send."""

    user: str | None = None
    code: int = 401
    reason: str = "Unauthorized"
    stale: bool = False


class DigestServer:
    """Makes challenges and checks the answers to them, for one stack (its secret lives in memory)."""

    def __init__(self, secret: bytes | None = None) -> None:
        self._secret = secret or os.urandom(32)
        self._counts: dict[str, int] = {}  # nonce -> the highest nc accepted with it (while it is fresh)

    def nonce(self, source: str, now: float | None = None) -> str:
        """A nonce for a caller at ``source`` (its IP address)."""
        stamp = f"{int(time.time() if now is None else now):x}"
        return f"{stamp}.{self._mac(stamp, source)}"

    def _mac(self, stamp: str, source: str) -> str:
        return hmac.new(self._secret, f"{stamp}|{source}".encode(), hashlib.sha256).hexdigest()[:32]

    def nonce_state(self, nonce: str, source: str, now: float | None = None) -> str:
        """'fresh', 'stale' (ours but old) or 'bad' (not ours, or given to another address)."""
        stamp, _, mac = nonce.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(stamp, source)):
            return "bad"
        try:
            made = int(stamp, 16)
        except ValueError:
            return "bad"
        age = (time.time() if now is None else now) - made
        return "fresh" if -5 <= age <= NONCE_TTL_S else "stale"

    def challenges(self, realm: str, source: str, stale: bool = False) -> list[str]:
        """WWW-Authenticate values for a caller at ``source``, strongest first."""
        nonce = self.nonce(source)
        extra = ", stale=true" if stale else ""
        return [
            f'Digest realm="{_quote(realm)}", nonce="{nonce}", algorithm={name}, qop="auth"{extra}'
            for name in ALGORITHMS
        ]

    async def check(self, request: SipRequest, source: str, realm: str, ha1_lookup: Ha1Lookup) -> Verdict:
        """The verdict on the Authorization of ``request``, which came from the address ``source``."""
        authorization, method, uri = request.headers.get_first("authorization"), request.method.upper(), request.uri
        if not authorization:
            return Verdict()
        try:
            creds = parse_auth(authorization, credentials=True)
        except (ValueError, IndexError):
            return Verdict(code=400, reason="Bad Authorization Header")
        params = {k.lower(): v for k, v in creds.params.items()}
        algorithm = params.get("algorithm", "MD5").upper()
        hasher = ALGORITHMS.get(algorithm)
        if creds.scheme.lower() != "digest" or hasher is None or params.get("realm") != realm:
            return Verdict()  # a scheme, algorithm or realm we did not offer: challenge again
        nonce = params.get("nonce", "")
        state = self.nonce_state(nonce, source)
        if state != "fresh":
            return Verdict(stale=state == "stale")
        if not same_uri(params.get("uri", ""), uri):
            return Verdict(code=400, reason="Bad Request (Digest URI Is Not The Request-URI)")
        count = nonce_count(params)
        if count is None or count <= self._counts.get(nonce, 0):
            return Verdict()  # a replayed (or malformed) count: a fresh challenge
        user = params.get("username", "")
        ha1 = await maybe_await(ha1_lookup(user, realm, algorithm))
        expected = expected_response(hasher, ha1, method, params) if ha1 else None
        if expected is None or not hmac.compare_digest(expected, params.get("response", "").lower()):
            return Verdict(code=403, reason=FORBIDDEN)
        self._remember(nonce, count)
        return Verdict(user=user)

    def _remember(self, nonce: str, count: int) -> None:
        """The nc just accepted; counts of nonces past their lifetime are dropped."""
        if len(self._counts) >= 1024:
            self._counts = {n: c for n, c in self._counts.items() if self.nonce_age(n) <= NONCE_TTL_S + 5}
        self._counts[nonce] = count

    @staticmethod
    def nonce_age(nonce: str) -> float:
        try:
            return time.time() - int(nonce.partition(".")[0], 16)
        except ValueError:
            return float("inf")


def nonce_count(params: dict[str, str]) -> int | None:
    """The answer's nc as a number (1 where qop is absent: such a nonce serves once); None if malformed."""
    if not params.get("qop"):
        return 1
    raw = params.get("nc", "")
    return int(raw, 16) if len(raw) == 8 and all(c in "0123456789abcdefABCDEF" for c in raw) else None


def same_uri(digest_uri: str, request_uri: str) -> bool:
    """The Authorization's uri names the Request-URI (RFC 3261 §22.4: compared as URIs)."""
    if digest_uri == request_uri:
        return True
    try:
        a, b = parse_uri(digest_uri.strip("<>")), parse_uri(request_uri.strip("<>"))
    except (ValueError, IndexError):
        return False
    return (a.scheme, a.user, a.host.lower(), a.port) == (b.scheme, b.user, b.host.lower(), b.port)


def expected_response(hasher: Callable[..., Any], ha1: str, method: str, params: dict[str, str]) -> str | None:
    """The digest response a client knowing H(A1) sends (RFC 7616 §3.4.1; qop=auth or none)."""

    def h(text: str) -> str:
        return str(hasher(text.encode()).hexdigest())

    ha2 = h(f"{method}:{params.get('uri', '')}")
    qop = params.get("qop", "").lower()
    nonce = params.get("nonce", "")
    if qop == "auth":
        return h(f"{ha1.lower()}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}:auth:{ha2}")
    if qop:
        return None  # auth-int is not offered
    return h(f"{ha1.lower()}:{nonce}:{ha2}")


def ha1(user: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(user:realm:password): what a directory stores instead of the password."""
    return ALGORITHMS[algorithm.upper()](f"{user}:{realm}:{password}".encode()).hexdigest()


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
