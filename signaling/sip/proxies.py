"""Who really calls when a SIP proxy relays the call (#14): the caller's address behind ``sip.trusted_proxies``.

With Kamailio in front (deploy/kamailio/kamailio.cfg) every call arrives from Kamailio's address.
For a request whose packet comes from a trusted proxy, the caller is the hop the proxy recorded:
the Via below the proxy's own, its ``received`` parameter (the source address the proxy saw;
kamailio.cfg's ``force_rport()`` makes Kamailio always write it, with ``rport``), else its host
(a proxy writes ``received`` whenever the host is not the source, RFC 3261 18.2.1). If that hop is
a trusted proxy too, the next Via below it is read, and so on. A request from any other address is
its packet's source: its Via and headers are never believed. The per-address limits
(inbound.py) and the ``allowed_sources`` check (admission.py) use the address found here; the
proxy's own address is held to the stack's totals (max_calls, the message rate).
"""

from __future__ import annotations

import ipaddress

from aiosipua.message import SipRequest

from signaling.guard.client_address import Network


def is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted)


def caller_address(request: SipRequest, source: tuple[str, int], trusted: tuple[Network, ...]) -> tuple[str, int]:
    """The (ip, port) of who sent ``request``: ``source`` unless a trusted proxy relayed it."""
    if not trusted or not is_trusted(source[0], trusted):
        return source
    try:
        vias = request.via
    except (ValueError, IndexError):  # the stack's parser checked only the top Via
        return source
    address = source
    for via in vias[1:]:  # vias[0]: the proxy's own
        hop = _recorded(via.received or via.host, via.rport, via.port, via.transport)
        if hop is None:
            break  # a host name with no received: nothing we can count or match
        address = hop
        if not is_trusted(address[0], trusted):
            break
    return address


def _recorded(host: str, rport: str | None, port: int | None, transport: str) -> tuple[str, int] | None:
    host = (host or "").strip("[]")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return None
    if rport and rport.isdigit():
        return host, int(rport)
    return host, port or (5061 if transport.upper() == "TLS" else 5060)
