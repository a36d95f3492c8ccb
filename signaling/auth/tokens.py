"""Signed, expiring tokens: operator sessions, endpoint sessions and laptop join links.

Format: ``gb1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>``, base64url without padding.
Only that one canonical spelling verifies: padding, ``+/`` for ``-_``, non-zero trailing bits or
any other character is refused before the MAC is checked, so a token cannot be altered into a
second accepted form. The user-token key lives in the state store (collection ``secrets``),
created once by whichever node starts first, so every signaling node verifies every other node's
tokens without extra configuration; node-to-node tokens use ``settings.node_key`` instead
(``TokenSigner.for_nodes``), so write access to the store does not let anyone mint them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from signaling.errors import unauthorized
from signaling.store.base import Store

PREFIX = "gb1"
KINDS = ("operator", "endpoint", "link")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


_B64URL = re.compile(r"[A-Za-z0-9_-]+")  # no padding, no "+/", nothing else
MAX_TOKEN_CHARS = 4096  # ours are ~300; a longer one is refused before any work


def _unb64(text: str) -> bytes:
    """Strict base64url: the canonical unpadded form only (ValueError otherwise). A length of
    4n+1 or non-zero unused low bits in the last character would decode to the same bytes as
    another spelling, so the decoded value must re-encode to exactly ``text``."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not canonical base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not canonical base64url")
    return data


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
    by: str | None = None  # links only: the operator who made it (its deletion revokes the link)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class TokenSigner:
    def __init__(self, key: bytes, clock: Callable[[], float] = time.time, kinds: tuple[str, ...] = KINDS) -> None:
        if len(key) < 32:
            raise ValueError("token key must be at least 32 bytes")
        self._key = key
        self._clock = clock
        self._kinds = kinds

    @classmethod
    def for_nodes(cls, node_key: str, clock: Callable[[], float] = time.time) -> "TokenSigner":
        """Node-to-node tokens, keyed by ``settings.node_key`` (never by anything in the store)."""
        key = hmac.new(node_key.encode(), b"giaoban/media-nodes", hashlib.sha256).digest()
        return cls(key, clock, ("node",))

    @classmethod
    async def from_store(cls, store: Store) -> "TokenSigner":
        fresh = {"key": secrets.token_hex(32), "created": time.time()}
        await store.put_if_absent("secrets", "token-key", fresh)
        doc = await store.get("secrets", "token-key")
        assert doc is not None  # written just above unless another node wrote it first
        return cls(bytes.fromhex(doc["key"]))

    def sign(self, claims: Claims) -> str:
        body = _b64(msgspec.json.encode(claims.to_dict()))
        mac = hmac.new(self._key, f"{PREFIX}.{body}".encode(), hashlib.sha256).digest()
        return f"{PREFIX}.{body}.{_b64(mac)}"

    def issue(self, kind: str, sub: str, ttl_s: float, **extra: Any) -> tuple[str, Claims]:
        now = self._clock()
        claims = Claims(kind=kind, sub=sub, exp=now + ttl_s, iat=now, **extra)
        return self.sign(claims), claims

    def verify(self, token: str) -> Claims:
        """Claims of a valid, unexpired token; ApiError(unauthorized) naming the problem otherwise."""
        if not isinstance(token, str) or not token:
            raise unauthorized("missing token")
        if len(token) > MAX_TOKEN_CHARS:
            raise unauthorized(f"malformed token: longer than {MAX_TOKEN_CHARS} characters")
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != PREFIX:
            raise unauthorized("malformed token: expected gb1.<claims>.<signature>")
        try:
            mac = _unb64(parts[2])
            raw = _unb64(parts[1])
        except ValueError:
            raise unauthorized("malformed token: claims and signature must be unpadded base64url") from None
        want = hmac.new(self._key, f"{PREFIX}.{parts[1]}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, want):
            raise unauthorized("invalid token signature")
        claims = _decode_claims(raw)
        if claims.kind not in self._kinds:
            raise unauthorized(f"unknown token kind {claims.kind!r}")
        if claims.exp < self._clock():
            raise unauthorized("token expired; ask the operator for a new link or log in again")
        return claims


def _decode_claims(raw: bytes) -> Claims:
    """Typed claims: a signed token whose ``exp`` is a string (a key leaked from an older
    version, a bug in an issuer) is refused as malformed, never a server error."""
    try:
        claims = msgspec.json.decode(raw, type=Claims)
    except msgspec.ValidationError as exc:
        raise unauthorized(f"malformed token claims: {exc}") from None
    except msgspec.DecodeError:
        raise unauthorized("malformed token claims: not a JSON object") from None
    if claims.exp != claims.exp or (claims.iat is not None and claims.iat != claims.iat):
        raise unauthorized("malformed token claims: exp and iat must be numbers")  # NaN
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
