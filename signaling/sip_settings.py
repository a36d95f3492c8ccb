"""The ``sip.*`` server settings (#14): where the SIP gateway for room systems listens.

Off by default. UDP and TCP share sip.port; TLS (``tls`` in sip.transports, with sip.tls_cert and
sip.tls_key) listens on sip.port + 1 (5061 beside 5060). The checks here raise ValueError naming
the key; ``signaling.settings`` turns them into file:line errors.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from signaling.guard.client_address import parse_networks

SIP_TRANSPORTS = ("udp", "tcp", "tls")
DEFAULT_TRANSPORTS = ("udp", "tcp")  # tls needs a certificate
DEFAULT_PORT = 5060
_HOSTNAME = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*",
    re.ASCII,
)


@dataclass
class SipSettings:
    enabled: bool = False
    host: str = "127.0.0.1"  # address the gateway binds; 0.0.0.0 = every interface
    port: int = DEFAULT_PORT
    transports: list[str] = field(default_factory=lambda: list(DEFAULT_TRANSPORTS))
    tls_cert: str = ""  # PEM files, both or neither; required by tls (served on port + 1)
    tls_key: str = ""
    domain: str = ""  # the domain in our own SIP URIs; "" = host
    # SIP proxies (Kamailio) whose recorded Via we believe: the caller is who they say (proxies.py)
    trusted_proxies: list[str] = field(default_factory=list)
    calls_per_address: int = 20  # live calls from one caller address (limits.py)
    invite_rate: float = 10.0  # new INVITEs per second from one caller address ...
    invite_burst: int = 20  # ... with this many at once


def sip_port(value: int) -> int:
    if not 0 < value < 65536:
        raise ValueError(f"sip.port must be 1..65535, got {value}")
    return value


def sip_host(value: str) -> str:
    """An IP address to bind (a name would bind whatever it resolves to, on whichever interface)."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(
            f"sip.host must be an IP address to listen on (e.g. 0.0.0.0 or 10.20.0.2), got {value!r}"
        ) from None
    return value


def sip_transports(value: list[Any]) -> list[str]:
    """Lower case, each once, from SIP_TRANSPORTS."""
    names = [t.lower() if isinstance(t, str) else t for t in value]
    if not names or any(t not in SIP_TRANSPORTS for t in names) or len(set(names)) != len(names):
        raise ValueError(f"sip.transports must list udp, tcp and/or tls, each once (e.g. [udp, tcp]); got {value!r}")
    return names


def sip_domain(value: str) -> str:
    if value and not _is_host(value):
        raise ValueError(f"sip.domain must be a DNS name or IP address (or empty for sip.host), got {value!r}")
    return value


def _is_host(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return _HOSTNAME.fullmatch(text) is not None


def sip_trusted_proxies(value: list[Any]) -> list[str]:
    if not all(isinstance(x, str) and x for x in value):
        raise ValueError(f"sip.trusted_proxies must list IP addresses or CIDRs (e.g. [10.20.0.5]), got {value!r}")
    try:
        parse_networks(value)
    except ValueError as exc:
        raise ValueError(f"sip.{exc}") from None
    return value


def _bounded(key: str, low: float, high: float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"sip.{key} must be {low:g}..{high:g}, got {value!r}")
        return value

    return check


# the checks of one key, run where the key is read so that an error names its line
SIP_KEY_CHECKS: dict[str, Callable[[Any], Any]] = {
    "sip.host": sip_host,
    "sip.port": sip_port,
    "sip.transports": sip_transports,
    "sip.domain": sip_domain,
    "sip.trusted_proxies": sip_trusted_proxies,
    "sip.calls_per_address": _bounded("calls_per_address", 1, 10_000),
    "sip.invite_rate": _bounded("invite_rate", 0.1, 10_000),
    "sip.invite_burst": _bounded("invite_burst", 1, 10_000),
}


def check_sip(sip: SipSettings, http_host: str, http_port: int) -> None:
    """Every key again (settings set in code or by the CLI skip the file's checks), then the pairs."""
    for key, check in SIP_KEY_CHECKS.items():
        name = key.removeprefix("sip.")
        setattr(sip, name, check(getattr(sip, name)))
    if bool(sip.tls_cert) != bool(sip.tls_key):
        raise ValueError("sip.tls_cert and sip.tls_key go together: set both or neither")
    if "tls" in sip.transports:
        if not sip.tls_cert:
            raise ValueError("sip.transports has tls: set sip.tls_cert and sip.tls_key (PEM files)")
        if sip.port == 65535:
            raise ValueError("sip.port 65535 leaves no port for tls (served on sip.port + 1)")
        if sip.enabled and sip.port + 1 == http_port and _same_address(sip.host, http_host):
            raise ValueError(f"sip.port + 1 = {http_port} (tls) is the HTTP port: move sip.port")
    if sip.enabled and "tcp" in sip.transports and sip.port == http_port and _same_address(sip.host, http_host):
        raise ValueError(f"sip.port {sip.port} is the HTTP port: SIP over tcp needs a port of its own")


def _same_address(a: str, b: str) -> bool:
    wildcard = ("0.0.0.0", "::", "")
    return a == b or a in wildcard or b in wildcard
