"""Signed, expiring tokens: operator sessions, endpoint sessions and laptop join links.

Format: ``gb1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>``. The key lives in the state
store (collection ``secrets``), created once by whichever node starts first, so every signaling
node verifies every other node's tokens without extra configuration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from signaling.errors import unauthorized
from signaling.store.base import Store

PREFIX = "gb1"
KINDS = ("operator", "endpoint", "link")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Claims:
    kind: str  # operator | endpoint | link
    sub: str  # operator username, endpoint id, or "guest:<name>" for a link without endpoint
    exp: float  # unix seconds
    name: str = ""  # display name
    meeting: str | None = None  # links only: the one meeting they open
    role: str | None = None  # links only: chair | participant | viewer
    endpoint: str | None = None  # links only: the endpoint a leader's laptop speaks for
    iat: float | None = None  # issued at (unix seconds): tokens issued before a revocation fail

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class TokenSigner:
    def __init__(self, key: bytes, clock=time.time, kinds: tuple[str, ...] = KINDS) -> None:
        if len(key) < 32:
            raise ValueError("token key must be at least 32 bytes")
        self._key = key
        self._clock = clock
        self._kinds = kinds

    def derived(self, purpose: str, kinds: tuple[str, ...]) -> "TokenSigner":
        """A signer for another audience (node-to-node calls): its key is derived from this one, so
        its tokens and the users' tokens never verify for each other."""
        key = hmac.new(self._key, f"giaoban/{purpose}".encode(), hashlib.sha256).digest()
        return TokenSigner(key, self._clock, kinds)

    @classmethod
    async def from_store(cls, store: Store) -> "TokenSigner":
        fresh = {"key": secrets.token_hex(32), "created": time.time()}
        await store.put_if_absent("secrets", "token-key", fresh)
        doc = await store.get("secrets", "token-key")
        return cls(bytes.fromhex(doc["key"]))

    def sign(self, claims: Claims) -> str:
        body = _b64(json.dumps(claims.to_dict(), separators=(",", ":"), ensure_ascii=False).encode())
        mac = hmac.new(self._key, f"{PREFIX}.{body}".encode(), hashlib.sha256).digest()
        return f"{PREFIX}.{body}.{_b64(mac)}"

    def issue(self, kind: str, sub: str, ttl_s: float, **extra) -> tuple[str, Claims]:
        now = self._clock()
        claims = Claims(kind=kind, sub=sub, exp=now + ttl_s, iat=now, **extra)
        return self.sign(claims), claims

    def verify(self, token: str) -> Claims:
        """Claims of a valid, unexpired token; ApiError(unauthorized) naming the problem otherwise."""
        if not isinstance(token, str) or not token:
            raise unauthorized("missing token")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise unauthorized("malformed token: expected gb1.<claims>.<signature>")
        try:
            mac = _unb64(parts[2])
            raw = _unb64(parts[1])
        except (ValueError, TypeError):
            raise unauthorized("malformed token: bad base64") from None
        want = hmac.new(self._key, f"{PREFIX}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, want):
            raise unauthorized("invalid token signature")
        try:
            claims = Claims(**json.loads(raw))
        except (ValueError, TypeError):
            raise unauthorized("malformed token claims") from None
        if claims.kind not in self._kinds:
            raise unauthorized(f"unknown token kind {claims.kind!r}")
        if claims.exp < self._clock():
            raise unauthorized("token expired; ask the operator for a new link or log in again")
        return claims


# Passwords and endpoint secrets: scrypt, parameters stored with the hash so they can be raised.
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_secret(secret: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    try:
        algo, n, r, p, salt, digest = stored.split("$")
        if algo != "scrypt":
            return False
        got = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), dklen=32, n=int(n), r=int(r), p=int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got.hex(), digest)


def new_secret() -> str:
    """A secret a commune operator can type from a printed sheet if they must: 24 base32 chars."""
    return base64.b32encode(secrets.token_bytes(15)).decode().lower()
