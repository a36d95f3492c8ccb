"""What the SIP gateway keeps to check a room system's digest (RFC 8760 / RFC 2617) (#14).

A room system with ``sip.auth_user`` in the directory authenticates with that user and the same
secret ``giaoban credentials`` issues for its endpoint (one secret per endpoint, rotated the same
way). Digest needs HA1 = H(user:realm:secret), which a scrypt hash cannot give, so issuing the
secret also stores the MD5 and SHA-256 HA1s beside the hash in the ``credentials`` document.
They open SIP only (the web login checks the scrypt hash), and rotating the secret replaces them.

The realm is fixed (``SIP_REALM``) rather than the server's address: a stored HA1 stays valid when
the gateway's address or domain changes; room systems take the realm from our challenge.
"""

from __future__ import annotations

import hashlib
from typing import Any

SIP_REALM = "giaoban"
ALGORITHMS = {"MD5": "sip_ha1_md5", "SHA-256": "sip_ha1_sha256"}  # digest algorithm -> document field


def ha1_fields(auth_user: str, secret: str, realm: str = SIP_REALM) -> dict[str, str]:
    text = f"{auth_user}:{realm}:{secret}".encode()
    return {
        "sip_user": auth_user,
        "sip_realm": realm,
        "sip_ha1_md5": hashlib.md5(text, usedforsecurity=False).hexdigest(),
        "sip_ha1_sha256": hashlib.sha256(text).hexdigest(),
    }


def stored_ha1(doc: dict[str, Any] | None, auth_user: str, algorithm: str = "MD5") -> str | None:
    """The HA1 for ``auth_user`` and ``algorithm`` from a credentials document, if it holds one."""
    field = ALGORITHMS.get(algorithm.upper())
    if doc is None or field is None or doc.get("sip_user") != auth_user:
        return None
    value = doc.get(field)
    return value if isinstance(value, str) else None
