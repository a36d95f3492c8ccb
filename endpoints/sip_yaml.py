"""Reads an endpoint's optional ``sip:`` block (#14), reporting mistakes with file:line.

Format (inside one endpoint item)::

    sip:
      uri: "sip:hg-ubnd@10.20.0.15"          # required: sip: or sips:, [user@]host[:port][;params]
      auth_user: hg-ubnd                     # optional: the SIP digest user name (no password here)
      allowed_sources: [10.20.0.15, 10.20.8.0/24]  # optional: addresses or CIDR networks
      codecs: [H264, OPUS, G722]             # optional: preferred codecs, first = most preferred

The password of ``auth_user`` is never written in the directory: it lives in the credential store.
"""

from __future__ import annotations

import ipaddress
import re

from yaml.nodes import Node

from endpoints.model import SIP_CODECS, SipAccess, allowed
from endpoints.yaml_lines import Problems, as_list, as_mapping, as_str, entries, line_of

SIP_KEYS = ("uri", "auth_user", "allowed_sources", "codecs")
MAX_URI = 255
# host: a DNS name, an IPv4 address or a bracketed IPv6 address; the port is checked apart
SIP_URI = re.compile(
    r"(?P<scheme>sips?):(?:(?P<user>[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+)@)?"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<params>(?:;[A-Za-z0-9\-_.!~*'()%=+]+)*)",
    re.ASCII,
)
URI_RULE = "sip:[user@]host[:port] or sips:..., e.g. sip:hg-ubnd@10.20.0.15"
AUTH_USER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", re.ASCII)
AUTH_USER_RULE = "1-64 characters from A-Z, a-z, 0-9 and '._-', starting with a letter or digit"
MAX_SOURCES = 64


def read_sip(node: Node, key_line: int, where: str, problems: Problems) -> SipAccess | None:
    """The block under an endpoint's ``sip`` key (on ``key_line``); None, with problems added, if
    it has mistakes."""
    what = f"'sip' of {where}"
    mapping = as_mapping(node, what, problems)
    if mapping is None:
        return None
    before = len(problems.found)
    fields = {key: value for key, _, value in entries(mapping, SIP_KEYS, what, problems)}
    if "uri" not in fields:
        problems.add(key_line, f"missing required key 'uri' in {what}")
    uri = _uri(fields["uri"], f"'sip.uri' of {where}", problems) if "uri" in fields else None
    user = _auth_user(fields["auth_user"], f"'sip.auth_user' of {where}", problems) if "auth_user" in fields else None
    sources = _sources(fields.get("allowed_sources"), f"'sip.allowed_sources' of {where}", problems)
    codecs = _codecs(fields.get("codecs"), f"'sip.codecs' of {where}", problems)
    if uri is None or len(problems.found) != before:
        return None
    return SipAccess(uri, user, sources, codecs)


def _uri(node: Node, what: str, problems: Problems) -> str | None:
    text = as_str(node, what, problems)
    if text is None:
        return None
    match = SIP_URI.fullmatch(text) if len(text) <= MAX_URI else None
    if match is None:
        problems.add(line_of(node), f"{what}: {text[:80]!r} is not a SIP URI: use {URI_RULE}")
        return None
    port = match["port"]
    if port is not None and not 0 < int(port) < 65536:
        problems.add(line_of(node), f"{what}: port {port} is outside 1..65535")
        return None
    host = match["host"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            problems.add(line_of(node), f"{what}: {host!r} is not an IPv6 address")
            return None
    return text


def _auth_user(node: Node, what: str, problems: Problems) -> str | None:
    text = as_str(node, what, problems)
    if text is not None and AUTH_USER.fullmatch(text) is None:
        problems.add(line_of(node), f"{what}: bad user name {text[:80]!r}: use {AUTH_USER_RULE}")
        return None
    return text


def _texts(node: Node | None, what: str, limit: int, problems: Problems) -> list[tuple[Node, str]]:
    """(node, text) of each string in a non-empty list of at most ``limit`` items."""
    if node is None:
        return []
    seq = as_list(node, what, problems)
    if seq is None:
        return []
    if not seq.value or len(seq.value) > limit:
        problems.add(line_of(seq), f"{what} must list 1 to {limit} items (leave the key out for none)")
        return []
    out = []
    for item in seq.value:
        text = as_str(item, f"an item of {what}", problems)
        if text is not None:
            out.append((item, text))
    return out


def _sources(node: Node | None, what: str, problems: Problems) -> tuple[str, ...]:
    networks: list[str] = []
    for item, text in _texts(node, what, MAX_SOURCES, problems):
        try:
            network = ipaddress.ip_network(text.strip(), strict=True)
        except ValueError as exc:
            hint = " (host bits set after the '/')" if "host bits" in str(exc) else ""
            problems.add(line_of(item), f"{what}: {text[:80]!r} is not an IP address or CIDR network{hint}")
            continue
        networks.append(str(network))
    return tuple(networks)


def _codecs(node: Node | None, what: str, problems: Problems) -> tuple[str, ...]:
    codecs: list[str] = []
    for item, text in _texts(node, what, len(SIP_CODECS), problems):
        codec = text.strip().upper()
        if codec not in SIP_CODECS:
            problems.add(line_of(item), f"{what}: unknown codec {text[:40]!r}: use {allowed(SIP_CODECS)}")
        elif codec in codecs:
            problems.add(line_of(item), f"{what}: {codec} is listed twice")
        else:
            codecs.append(codec)
    return tuple(codecs)
