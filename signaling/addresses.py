"""Which addresses a server advertises (#16): the media node's ICE host addresses, the default base
of join links, and the warnings for settings that leave media or links unreachable from outside.

The choice is a pure function of the settings and the machine's interface addresses, which
``interface_addresses()`` reads (ifaddr, already installed with aioice); tests inject lists.

- host loopback (the default 127.0.0.1): media on 127.0.0.1, as before;
- host a wildcard (0.0.0.0, ::): every routable interface address (no loopback, no link-local);
- host one address: that address;
- ``ice_host`` set (an address or a list): exactly those, whatever the host.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Sequence

WILDCARDS = ("", "0.0.0.0", "::")
LOOPBACK_FALLBACK = "127.0.0.1"


def interface_addresses() -> list[str]:
    """Every address of this machine's interfaces (IPv4 and unscoped IPv6), in interface order."""
    import ifaddr  # imported here: only a server that has to choose reads the interfaces

    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(ip.ip)
            elif ip.ip[2] == 0:  # a scoped IPv6 (link-local) address cannot be a host candidate
                found.append(ip.ip[0])
    return found


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def is_wildcard(address: str) -> bool:
    return address in WILDCARDS


def routable(addresses: Sequence[str]) -> list[str]:
    """The addresses another machine could reach: no loopback, link-local or unspecified ones;
    IPv4 first (the usual office LAN), each once, in the order given."""
    kept = []
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            continue
        if ip.is_loopback or ip.is_link_local or ip.is_unspecified or ip.is_multicast:
            continue
        if text not in kept:
            kept.append(text)
    return [a for a in kept if ":" not in a] + [a for a in kept if ":" in a]


def ice_host_list(value: str | list) -> list[str]:
    """The ``ice_host`` setting as a list of IP addresses ("" or [] = chosen from host); a
    ValueError names the setting."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ValueError(f"ice_host must be an IP address or a list of them, got {value!r}")
    addresses = [x.strip() for x in items if x.strip()]
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(
                f"ice_host must list IP addresses of this machine (e.g. 10.20.0.5), got {text!r}"
            ) from None
        if ip.is_unspecified:
            raise ValueError(
                f"ice_host {text} is no address to advertise: leave ice_host empty to advertise every interface"
            )
    return addresses


def public_ip_list(value: str | list) -> list[str]:
    """The ``public_ip`` setting (a 1:1 NAT's public addresses of this server) as a list; each must
    be an address another network can reach. A ValueError names the setting."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise ValueError(f"public_ip must be an IP address or a list of them, got {value!r}")
    addresses = [x.strip() for x in items if x.strip()]
    for text in addresses:
        if routable([text]) != [text]:
            raise ValueError(
                f"public_ip lists the addresses a 1:1 NAT forwards to this server (e.g. 203.0.113.7), got {text!r}"
            )
    return addresses


def media_addresses(host: str, ice_host: Sequence[str], interfaces: Sequence[str]) -> list[str]:
    """The media node's ICE host addresses for these settings on a machine with ``interfaces``."""
    if ice_host:
        return list(ice_host)
    if is_loopback(host):
        return [LOOPBACK_FALLBACK]
    if is_wildcard(host):
        return routable(interfaces) or [LOOPBACK_FALLBACK]  # no network at all: still serves itself
    return [host]


def default_public_url(host: str, port: int, media: Sequence[str], interfaces: Sequence[str]) -> str:
    """The base of join links when public_url is not set: the host itself, or for a wildcard host
    the first routable media address (else interface address), never 0.0.0.0."""
    address = host
    if is_wildcard(host):
        choices = routable(media) or routable(interfaces)
        address = choices[0] if choices else LOOPBACK_FALLBACK
    if ":" in address:
        address = f"[{address}]"
    return f"http://{address}:{port}"


@dataclass(frozen=True)
class Advertised:
    """What a resolved server advertises, for its start-up lines and warnings."""

    host: str
    port: int
    public_url: str
    media: Sequence[str]  # ICE host addresses; empty: a signaling-only node
    public_ip: Sequence[str] = ()  # also advertised (server-reflexive) behind a 1:1 NAT
    sip: str = ""  # "host:port transports" when the SIP gateway is on
    sip_host: str = ""


def url_host(url: str) -> str:
    rest = url.split("://", 1)[-1].split("/", 1)[0]
    if rest.startswith("["):
        return rest[1:].split("]", 1)[0]
    return rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest


def describe(adv: Advertised) -> list[str]:
    """The start-up lines: where the server listens and what it advertises."""
    lines = [f"HTTP: listening on {adv.host or '0.0.0.0'}:{adv.port}; join links {adv.public_url}"]
    if adv.media:
        public = f"; behind 1:1 NAT also on {', '.join(adv.public_ip)}" if adv.public_ip else ""
        lines.append(f"media: ICE host candidates on {', '.join(adv.media)}{public}")
    if adv.sip:
        lines.append(f"SIP: {adv.sip}")
    return lines


def warnings(adv: Advertised, interfaces: Sequence[str]) -> list[str]:
    """One line per setting that leaves media or join links unreachable from other machines,
    Vietnamese first, then English."""
    out = []
    outside = not is_loopback(adv.host)  # the server was asked to serve other machines
    loop_media = [a for a in adv.media if is_loopback(a)]
    if outside and loop_media:
        out.append(
            f"Cảnh báo: máy khác không nhận được hình và tiếng: ice_host {', '.join(loop_media)} là địa chỉ "
            f"nội bộ (loopback) trong khi host là {adv.host or '0.0.0.0'}; để trống ice_host hoặc ghi địa chỉ "
            f"mạng LAN. / Warning: media unreachable from other machines: ice_host {', '.join(loop_media)} is "
            f"loopback while host is {adv.host or '0.0.0.0'}; leave ice_host empty or set the LAN address."
        )
    if outside and is_wildcard(adv.host) and not routable(interfaces):
        out.append(
            "Cảnh báo: máy chủ không có địa chỉ mạng nào ngoài loopback; máy khác không kết nối được. / "
            "Warning: this machine has no address besides loopback; no other machine can connect."
        )
    missing = [a for a in adv.media if not is_loopback(a) and interfaces and a not in interfaces]
    if missing:
        out.append(
            f"Cảnh báo: ice_host {', '.join(missing)} không phải địa chỉ của máy này; không gửi được hình "
            f"qua địa chỉ đó. / Warning: ice_host {', '.join(missing)} is not an address of this machine; "
            f"no media can flow through it."
        )
    unmatched = [p for p in adv.public_ip if not any((":" in p) == (":" in a) for a in adv.media)]
    if unmatched:
        out.append(
            f"Cảnh báo: public_ip {', '.join(unmatched)} không có địa chỉ media cùng loại (IPv4/IPv6) để ánh xạ. / "
            f"Warning: public_ip {', '.join(unmatched)} has no media address of its family (IPv4/IPv6) to map."
        )
    link = url_host(adv.public_url)
    if outside and (is_loopback(link) or is_wildcard(link)):
        out.append(
            f"Cảnh báo: đường dẫn tham dự {adv.public_url} chỉ mở được trên chính máy này; đặt public_url "
            f"(ví dụ http://10.20.0.5:{adv.port}). / Warning: join links {adv.public_url} only open on this "
            f"machine; set public_url (e.g. http://10.20.0.5:{adv.port})."
        )
    if adv.sip and outside and is_loopback(adv.sip_host):
        out.append(
            f"Cảnh báo: phòng họp SIP ở máy khác không gọi vào được: sip.host là {adv.sip_host}. / "
            f"Warning: SIP room systems on other machines cannot call in: sip.host is {adv.sip_host}."
        )
    return out
