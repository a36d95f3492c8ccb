"""SDES-SRTP for room systems (RFC 4568): the ``a=crypto`` attribute and the libsrtp sessions it keys.

A room system that offers RTP/SAVP lists one or more ``a=crypto:<tag> <suite> inline:<key||salt>``
lines per m-line; we answer with ONE of them (same tag and suite) carrying our own fresh key.
Each direction has its own key: the room's offered key decrypts what it sends us
(``inbound_session``), ours encrypts what we send (``outbound_session``).

We take the two suites every SIP room system and baresip speaks: AES_CM_128_HMAC_SHA1_80 and
AES_CM_128_HMAC_SHA1_32 (30 bytes of key||salt). ``parse_crypto`` never raises: a line we cannot
use is kept with ``problem`` saying why (an unknown suite, an MKI, session parameters, a bad key),
so that a refusal can name it and another line of the same offer can still be chosen.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from pylibsrtp import Policy, Session

# suite -> libsrtp profile; both take a 16-byte key and a 14-byte salt
SUITES = {
    "AES_CM_128_HMAC_SHA1_80": Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
}
KEY_SALT_BYTES = 30
MAX_TAG = 999_999_999  # RFC 4568: 1*9DIGIT
_LIFETIME = re.compile(r"(?:2\^(\d{1,2})|(\d{1,20}))\Z", re.ASCII)


@dataclass(frozen=True)
class Crypto:
    """One ``a=crypto`` line: what it says, and ``problem`` ("" when we can use it)."""

    tag: int
    suite: str
    key: bytes = b""  # master key || master salt (30 bytes for the suites we take)
    lifetime: int | None = None  # packets under this key, when given
    mki: str = ""  # "value:length" when the line uses a master key identifier
    problem: str = ""  # why we cannot use it, in English

    @property
    def usable(self) -> bool:
        return not self.problem

    def attribute(self) -> str:
        """The SDP line: ``a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:<base64>``."""
        return f"a=crypto:{self.tag} {self.suite} inline:{base64.b64encode(self.key).decode()}"


def parse_crypto(value: str) -> Crypto:
    """The value of an ``a=crypto:`` line (what follows the colon). Never raises."""
    parts = value.split()
    tag_text = parts[0] if parts else ""
    tag = int(tag_text) if tag_text.isascii() and tag_text.isdigit() and len(tag_text) <= 9 else -1
    suite = parts[1] if len(parts) > 1 else ""
    if tag < 0:
        return Crypto(tag, suite, problem=f"the tag {tag_text[:20]!r} is not a number of 1 to 9 digits")
    if len(parts) < 3:
        return Crypto(tag, suite, problem="it has no key parameters (inline:...)")
    if suite not in SUITES:
        return Crypto(tag, suite, problem=f"the suite {suite[:40]} is not one we take ({', '.join(SUITES)})")
    if len(parts) > 3:
        return Crypto(tag, suite, problem=f"session parameters ({' '.join(parts[3:])[:60]}) are not supported")
    if ";" in parts[2]:
        return Crypto(tag, suite, problem="several keys in one line are not supported")
    return _key_params(tag, suite, parts[2])


def _key_params(tag: int, suite: str, text: str) -> Crypto:
    """``inline:<key||salt>[|lifetime][|MKI:length]``."""
    if not text.startswith("inline:"):
        return Crypto(tag, suite, problem="its key method is not inline:")
    fields = text[len("inline:") :].split("|")
    try:
        key = base64.b64decode(fields[0], validate=True)
    except (binascii.Error, ValueError):
        return Crypto(tag, suite, problem="its key is not base64")
    if len(key) != KEY_SALT_BYTES:
        return Crypto(tag, suite, problem=f"its key||salt has {len(key)} bytes, not {KEY_SALT_BYTES}")
    lifetime: int | None = None
    mki = ""
    for field in fields[1:]:
        if ":" in field:
            mki = field[:40]
            continue
        match = _LIFETIME.match(field)
        if match is None or mki:
            return Crypto(tag, suite, key, problem=f"its key parameter {field[:40]!r} is not a lifetime or an MKI")
        lifetime = 2 ** int(match.group(1)) if match.group(1) else int(match.group(2))
    if mki:
        return Crypto(tag, suite, key, lifetime, mki, problem=f"it uses a master key identifier (MKI {mki})")
    if len(fields) > 3:
        return Crypto(tag, suite, key, problem="it has more key parameters than a lifetime and an MKI")
    return Crypto(tag, suite, key, lifetime)


def answer_crypto(offered: Crypto) -> Crypto:
    """Our answer to an offered line we take: its tag and suite with a fresh random key of ours."""
    return Crypto(offered.tag, offered.suite, os.urandom(KEY_SALT_BYTES))


def inbound_session(offered: Crypto) -> Session:
    """The session that decrypts what the room sends (its own key, from its offer or answer)."""
    return Session(_policy(offered, Policy.SSRC_ANY_INBOUND))


def outbound_session(ours: Crypto) -> Session:
    """The session that encrypts what we send (our key, from our answer or offer)."""
    return Session(_policy(ours, Policy.SSRC_ANY_OUTBOUND))


def _policy(crypto: Crypto, ssrc_type: int) -> Policy:
    if not crypto.usable:
        raise ValueError(f"a=crypto:{crypto.tag} cannot key a session: {crypto.problem}")
    policy = Policy(key=crypto.key, ssrc_type=ssrc_type, srtp_profile=SUITES[crypto.suite])
    policy.allow_repeat_tx = True  # retransmissions resend a sequence number (NACK)
    return policy
