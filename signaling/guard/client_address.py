"""The address a request comes from, for per-address limits (logins, connections).

The TCP peer is the client unless it is one of ``settings.trusted_proxies`` (the province's own
reverse proxy): then the client is the rightmost X-Forwarded-For entry that is not itself a
trusted proxy. X-Forwarded-For from anyone else is ignored, so a stranger cannot pick the
address their failures are counted against.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(trusted: Iterable[str]) -> tuple[Network, ...]:
    """Raises ValueError naming the entry that is not an address or CIDR (settings validation)."""
    out = []
    for item in trusted:
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"trusted_proxies: {item!r} is not an IP address or CIDR") from None
    return tuple(out)


_networks = lru_cache(maxsize=16)(parse_networks)  # per request: the settings' tuple, parsed once


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    """Is ``address`` (text) inside one of ``networks``? False for anything not an IP address."""
    if not networks:  # no trusted proxies (the usual case): nothing to parse
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_address(request: web.Request, trusted: Iterable[str]) -> str:
    peer = request.remote or "unknown"
    networks = _networks(tuple(trusted))
    if not networks or not is_trusted(peer, networks):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # a malformed entry: count against the proxy itself
    return peer  # every hop is one of ours
