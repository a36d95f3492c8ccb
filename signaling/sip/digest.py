"""Server-side digest authentication for SIP (#14; RFC 3261 §22, RFC 8760, RFC 2617 fallback).

aiosipua answers challenges (client side) only; a room system that dials in is challenged here.
A 401 carries two WWW-Authenticate headers, SHA-256 first and MD5 second (RFC 8760 §2.4: the
client takes the first it supports), ``qop="auth"``, and a nonce that is its own proof: the time it
was made and an HMAC of that time under a secret of this process, so no nonce table is kept. A
nonce older than ``NONCE_TTL_S`` is answered with a fresh challenge marked ``stale=true``.

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

from aiosipua.header_codec import parse_auth

from signaling.sip.calls import maybe_await

NONCE_TTL_S = 300
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

    def nonce(self, now: float | None = None) -> str:
        stamp = f"{int(time.time() if now is None else now):x}"
        return f"{stamp}.{self._mac(stamp)}"

    def _mac(self, stamp: str) -> str:
        return hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]

    def nonce_state(self, nonce: str, now: float | None = None) -> str:
        """'fresh', 'stale' (ours but old) or 'bad' (not ours)."""
        stamp, _, mac = nonce.partition(".")
        if not mac or not hmac.compare_digest(mac, self._mac(stamp)):
            return "bad"
        try:
            made = int(stamp, 16)
        except ValueError:
            return "bad"
        age = (time.time() if now is None else now) - made
        return "fresh" if -5 <= age <= NONCE_TTL_S else "stale"

    def challenges(self, realm: str, stale: bool = False) -> list[str]:
        """WWW-Authenticate values, strongest first."""
        nonce = self.nonce()
        extra = ", stale=true" if stale else ""
        return [
            f'Digest realm="{_quote(realm)}", nonce="{nonce}", algorithm={name}, qop="auth"{extra}'
            for name in ALGORITHMS
        ]

    async def check(self, authorization: str | None, method: str, realm: str, ha1_lookup: Ha1Lookup) -> Verdict:
        """The verdict on a request's Authorization header value (None: not sent)."""
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
        state = self.nonce_state(params.get("nonce", ""))
        if state != "fresh":
            return Verdict(stale=state == "stale")
        user = params.get("username", "")
        ha1 = await maybe_await(ha1_lookup(user, realm, algorithm))
        if not ha1:
            return Verdict(code=403, reason="Forbidden (Unknown User)")
        expected = expected_response(hasher, ha1, method, params)
        if expected is None or not hmac.compare_digest(expected, params.get("response", "").lower()):
            return Verdict(code=403, reason="Forbidden (Wrong Credentials)")
        return Verdict(user=user)


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
