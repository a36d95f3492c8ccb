"""Server settings: defaults -> YAML file (unknown keys rejected, with file:line) -> CLI -> validate."""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from mcu.api import VIDEO_CODECS
from signaling.addresses import (
    LOOPBACK_FALLBACK,
    default_public_url,
    ice_host_list,
    interface_addresses,
    is_wildcard,
    media_addresses,
    public_ip_list,
    routable,
)
from signaling.guard.client_address import parse_networks
from signaling.sip_settings import SIP_KEY_CHECKS, SipSettings, check_sip


ENCODE_CODECS = VIDEO_CODECS  # what a media node may encode: by default all it can


class SettingsError(ValueError):
    def __init__(self, file: str, line: int, message: str) -> None:
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


@dataclass
class Limits:
    ws_max_message_bytes: int = 64 * 1024  # an SDP offer with many candidates stays well below
    ws_rate_per_s: float = 20.0  # sustained messages per second per connection
    ws_burst: int = 60  # ICE trickle comes in bursts at join
    http_max_body_bytes: int = 256 * 1024
    hello_timeout_s: float = 10.0
    ws_max_json_depth: int = 32  # nesting of a WS message; deeper is refused before parsing
    # slow clients: a request's headers and its body must each arrive within these
    http_header_timeout_s: float = 10.0
    http_body_timeout_s: float = 30.0
    # open connections (HTTP and WebSocket) from one client address; a province behind one NAT
    # address has ~200 terminals with one WebSocket each, so the default leaves room for that
    connections_per_address: int = 400
    # failed logins from one client address within the failure window, across all usernames
    failed_logins_per_address: int = 50
    # WHIP publishers / WHEP viewers at once, per token and per meeting
    whip_sessions_per_token: int = 2
    whep_sessions_per_token: int = 4
    whip_sessions_per_meeting: int = 32
    # sources a media node transcodes at once for subscribers of another codec (each about 0.2 core
    # and 40 MiB at 720p, loadtests/README.md "Codecs"); past it such subscribers get no video from more
    transcodes_per_node: int = 16
    whep_sessions_per_meeting: int = 300


@dataclass
class TokenTtl:
    operator_s: int = 12 * 3600
    endpoint_s: int = 24 * 3600
    link_max_s: int = 7 * 24 * 3600


@dataclass
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # base of join links; default http://host:port (host 0.0.0.0: the first routable address)
    data_dir: str = "var"
    store: str = ""  # default sqlite:<data_dir>/giaoban.db; redis://host:port/db for several nodes
    # Redis store: connections for requests (subscriptions share one more of their own), and how
    # long a request waits for a free one before the client is told "busy, retry" (503, Retry-After)
    store_pool_size: int = 128
    store_pool_wait_s: float = 5.0
    directory: str = "config/hagiang.yaml"
    node_id: str = ""  # default <hostname>-<port>
    media: str = "local"  # local: an in-process aiortc media node; none: signaling only
    # the media node's ICE host candidates: an address or a list; "" = from host (loopback host: 127.0.0.1,
    # 0.0.0.0 or ::: every routable interface address, one address: that one); signaling/addresses.py.
    # Once resolved, the list of addresses advertised
    ice_host: str | list = ""
    # behind a 1:1 NAT: the public address(es) forwarded whole to this server, advertised beside the
    # host candidates (server-reflexive, same port) so clients outside reach the media node
    public_ip: str | list = ""
    # what the media node may ENCODE (composite renditions, transcodes for subscribers that cannot
    # decode a publisher's codec); forwarding needs none. VP8 and/or H264, upper case once loaded
    encode_codecs: list = field(default_factory=lambda: list(ENCODE_CODECS))
    # several nodes (Redis store): how other nodes reach this node's media API (default public_url),
    # how many peers it takes before it counts as full, and the directory subtrees it serves as a
    # cascade edge (e.g. a district's server: [hg-meo-vac]); [] = origin-only
    media_url: str = ""
    media_capacity: int = 300
    media_serves: list = field(default_factory=list)
    early_join_minutes: int = 10
    recording_retention_days: int = 30  # recordings older than this are deleted (hourly sweep)
    log_format: str = "json"  # json | text
    log_level: str = "info"
    admin_password: str = ""  # first start only: the operator 'admin' password (else generated)
    # addresses (or CIDRs) of reverse proxies whose X-Forwarded-For is believed for per-address limits
    trusted_proxies: list = field(default_factory=list)
    # key of node-to-node tokens (several nodes on Redis): the same on every node, never in the store
    node_key: str = ""
    limits: Limits = field(default_factory=Limits)
    tokens: TokenTtl = field(default_factory=TokenTtl)
    sip: SipSettings = field(default_factory=SipSettings)  # SIP gateway (#14): off by default

    def resolved(self, interfaces: list[str] | None = None) -> "Settings":
        """Defaults filled in; ``interfaces``: this machine's addresses (read when None)."""
        s = dataclasses.replace(self)
        ice = ice_host_list(s.ice_host)
        given = interfaces
        if interfaces is None:
            interfaces = interface_addresses() if is_wildcard(s.host) else []
        s.ice_host = media_addresses(s.host, ice, interfaces)
        s.public_ip = public_ip_list(s.public_ip)
        s.public_url = (s.public_url or default_public_url(s.host, s.port, s.ice_host, interfaces)).rstrip("/")
        s.store = s.store or f"sqlite:{Path(s.data_dir) / 'giaoban.db'}"
        s.node_id = s.node_id or f"{socket.gethostname()}-{s.port}"
        s.media_url = (s.media_url or s.public_url).rstrip("/")
        if not s.sip.domain and is_wildcard(s.sip.host):  # Contact/Via name an address rooms reach, never 0.0.0.0
            found = routable(interface_addresses() if given is None else given)
            s.sip = dataclasses.replace(s.sip, domain=found[0] if found else LOOPBACK_FALLBACK)
        s.sip = dataclasses.replace(s.sip, domain=s.sip.domain or s.sip.host)
        return s

    def validate(self, where: str = "settings") -> None:
        def bad(msg: str) -> SettingsError:
            return SettingsError(where, 0, msg)

        if not 0 < self.port < 65536:
            raise bad(f"port must be 1..65535, got {self.port}")
        if self.media not in ("local", "none"):
            raise bad(f"media must be 'local' or 'none', got {self.media!r}")
        if self.media_capacity < 1:
            raise bad(f"media_capacity must be >= 1, got {self.media_capacity}")
        if not 2 <= self.store_pool_size <= 10000:
            raise bad(f"store_pool_size must be 2..10000, got {self.store_pool_size}")
        if not 0 < self.store_pool_wait_s <= 60:
            raise bad(f"store_pool_wait_s must be > 0 and <= 60 s, got {self.store_pool_wait_s}")
        if not all(isinstance(x, str) and x for x in self.media_serves):
            raise bad("media_serves must be a list of endpoint ids")
        if self.log_format not in ("json", "text"):
            raise bad(f"log_format must be 'json' or 'text', got {self.log_format!r}")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise bad(f"log_level must be debug, info, warning or error, got {self.log_level!r}")
        if not 0 <= self.early_join_minutes <= 120:
            raise bad("early_join_minutes must be 0..120")
        if self.limits.ws_max_message_bytes < 1024 or self.limits.ws_rate_per_s <= 0:
            raise bad("limits.ws_max_message_bytes must be >= 1024 and limits.ws_rate_per_s > 0")
        for f in fields(self.limits):
            value = getattr(self.limits, f.name)
            if value <= 0:
                raise bad(f"limits.{f.name} must be > 0, got {value}")
        try:
            self.encode_codecs = encode_codecs(self.encode_codecs)
        except ValueError as exc:
            raise bad(str(exc)) from None
        if not all(isinstance(x, str) and x for x in self.trusted_proxies):
            raise bad("trusted_proxies must be a list of addresses or CIDRs")
        try:
            parse_networks(self.trusted_proxies)
        except ValueError as exc:
            raise bad(str(exc)) from None
        try:
            self.ice_host = ice_host_list(self.ice_host)
            self.public_ip = public_ip_list(self.public_ip)
        except ValueError as exc:
            raise bad(str(exc)) from None
        try:
            check_sip(self.sip, self.host, self.port)
        except ValueError as exc:
            raise bad(str(exc)) from None

    def check_against(self, directory) -> None:
        """Settings that name endpoints must name ones in the directory."""
        unknown = [ep for ep in self.media_serves if ep not in directory]
        if unknown:
            raise SettingsError(
                "settings", 0, f"media_serves names endpoints not in {self.directory}: {', '.join(unknown)}"
            )


def encode_codecs(value: list) -> list[str]:
    """The codecs a media node may encode, upper case; ValueError naming the setting."""
    known = " and ".join(ENCODE_CODECS)
    codecs = [c.upper() if isinstance(c, str) else c for c in value]
    if not codecs or any(c not in ENCODE_CODECS for c in codecs) or len(set(codecs)) != len(codecs):
        raise ValueError(
            f"encode_codecs names what the media node may encode: one or both of {known}, each once "
            f"(e.g. [VP8, H264]); got {value!r}"
        )
    return codecs


# checks of one key that can name the line it is on (validate() checks them again for the CLI)
_KEY_CHECKS = {"encode_codecs": encode_codecs, "ice_host": ice_host_list, "public_ip": public_ip_list, **SIP_KEY_CHECKS}
# keys whose check takes more than one type (one address or a list)
_ANY_TYPE = {"ice_host", "public_ip"}


def _section_types() -> dict[str, type]:
    return {"limits": Limits, "tokens": TokenTtl, "sip": SipSettings}


def _apply(target: Any, node: yaml.MappingNode, file: str, prefix: str) -> None:
    known = {f.name: f for f in fields(target)}
    for key_node, value_node in node.value:
        key, line = key_node.value, key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):  # '? [a, b]' would be an unhashable key
            raise SettingsError(file, line, f"a key in {prefix or 'the settings'} is not a plain name")
        if key not in known:
            raise SettingsError(file, line, f"unknown key {prefix}{key!r}; allowed: {', '.join(sorted(known))}")
        section = _section_types().get(key) if not prefix else None
        if section is not None:
            if not isinstance(value_node, yaml.MappingNode):
                raise SettingsError(file, line, f"{key} must be a mapping")
            _apply(getattr(target, key), value_node, file, f"{key}.")
            continue
        try:  # the node itself, not a text round trip: an empty value re-read as text was a parser error
            value = yaml.SafeLoader("").construct_object(value_node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
            raise SettingsError(file, line, f"{prefix}{key}: unreadable value ({type(exc).__name__})") from None
        current = getattr(target, key)
        want = type(current)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        typed = isinstance(value, want) and not (want is int and isinstance(value, bool))
        if not typed and f"{prefix}{key}" not in _ANY_TYPE:
            raise SettingsError(file, line, f"{prefix}{key} must be {want.__name__}, got {type(value).__name__}")
        check = _KEY_CHECKS.get(f"{prefix}{key}")
        if check is not None:
            try:
                value = check(value)
            except ValueError as exc:
                raise SettingsError(file, line, str(exc)) from None
        setattr(target, key, value)


def load_settings(path: str | os.PathLike | None, overrides: dict[str, Any] | None = None) -> Settings:
    settings = Settings()
    if path is not None:
        file = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
            root = yaml.compose(text)
        except OSError as exc:
            raise SettingsError(file, 0, f"cannot read settings: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise SettingsError(file, 0, f"the file is not valid UTF-8 (byte {exc.start}); save it as UTF-8") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise SettingsError(file, (mark.line + 1) if mark else 0, f"malformed YAML: {exc}") from None
        if root is not None:
            if not isinstance(root, yaml.MappingNode):
                raise SettingsError(file, root.start_mark.line + 1, "settings must be a mapping")
            _apply(settings, root, file, "")
    for key, value in (overrides or {}).items():
        if value is not None:
            setattr(settings, key, value)
    settings.validate(str(path or "settings"))
    return settings.resolved()
