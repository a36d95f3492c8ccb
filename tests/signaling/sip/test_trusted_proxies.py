"""Who calls behind a SIP proxy (#14): ``sip.trusted_proxies`` and the per-address limits as settings.

The caller's address is the packet's source, unless that source is a trusted proxy: then it is the
Via the proxy recorded below its own (``received``, else the host; ``rport``, else the port), read
on through further trusted proxies. Nobody else's Via is believed. Settings are checked at file:line.
"""

from __future__ import annotations

import pytest
from aiosipua.message import SipRequest

from signaling.guard.client_address import parse_networks
from signaling.settings import SettingsError, load_settings
from signaling.sip.limits import SipLimits
from signaling.sip.proxies import caller_address
from signaling.sip.wire import parse
from signaling.sip_settings import SipSettings

KAMAILIO = ("10.20.0.5", 5060)
TRUSTED = parse_networks(["10.20.0.0/29"])


def invite(*vias: str) -> SipRequest:
    text = (
        "INVITE sip:7001@10.20.0.2 SIP/2.0\r\n"
        + "".join(f"Via: {via}\r\n" for via in vias)
        + "From: <sip:room-a@192.0.2.10>;tag=1\r\nTo: <sip:7001@10.20.0.2>\r\nCall-ID: c@x\r\n"
        "CSeq: 1 INVITE\r\nMax-Forwards: 69\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse(text.encode())
    assert isinstance(message, SipRequest)
    return message


PROXY_VIA = "SIP/2.0/UDP 10.20.0.5;branch=z9hG4bKk1"


@pytest.mark.parametrize(
    "room_via, expected",
    [
        # Kamailio's force_rport(): the source it saw, whatever the room wrote
        ("SIP/2.0/UDP 192.168.1.20:5062;received=198.51.100.7;rport=40112;branch=z9hG4bKr", ("198.51.100.7", 40112)),
        ("SIP/2.0/UDP 198.51.100.7:5062;branch=z9hG4bKr", ("198.51.100.7", 5062)),  # host = source: no received
        ("SIP/2.0/TLS 198.51.100.7;branch=z9hG4bKr", ("198.51.100.7", 5061)),
        ("SIP/2.0/UDP [2001:db8::7]:5070;branch=z9hG4bKr", ("2001:db8::7", 5070)),
        ("SIP/2.0/UDP room.example.vn:5062;branch=z9hG4bKr", KAMAILIO),  # a name, no received: unknown
    ],
)
def test_behind_a_trusted_proxy_the_caller_is_the_via_it_recorded(room_via, expected):
    assert caller_address(invite(PROXY_VIA, room_via), KAMAILIO, TRUSTED) == expected


def test_a_chain_of_trusted_proxies_is_read_down_to_the_first_untrusted_hop():
    edge = "SIP/2.0/UDP 10.20.0.6;received=10.20.0.6;rport=5060;branch=z9hG4bKe"
    room = "SIP/2.0/UDP 198.51.100.7;received=198.51.100.9;rport=7000;branch=z9hG4bKr"
    assert caller_address(invite(PROXY_VIA, edge, room), KAMAILIO, TRUSTED) == ("198.51.100.9", 7000)
    liar = "SIP/2.0/UDP 203.0.113.66;received=203.0.113.66;branch=z9hG4bKl"  # below an untrusted hop: ignored
    assert caller_address(invite(PROXY_VIA, room, liar), KAMAILIO, TRUSTED) == ("198.51.100.9", 7000)


def test_an_untrusted_sender_is_its_packet_source_whatever_its_vias_say():
    forged = invite("SIP/2.0/UDP 10.20.0.5;branch=z9hG4bKf", "SIP/2.0/UDP 10.9.9.9;received=10.9.9.9;branch=z9hG4bKg")
    assert caller_address(forged, ("203.0.113.66", 5080), TRUSTED) == ("203.0.113.66", 5080)
    assert caller_address(forged, KAMAILIO, ()) == KAMAILIO  # no trusted proxies set (the default)


def test_a_proxy_s_own_request_is_the_proxy():
    assert caller_address(invite(PROXY_VIA), KAMAILIO, TRUSTED) == KAMAILIO


def test_the_limits_follow_the_settings():
    limits = SipLimits.of(SipSettings(calls_per_address=200, invite_rate=50.0, invite_burst=100))
    assert (limits.calls_per_address, limits.invite_rate, limits.invite_burst) == (200, 50.0, 100)
    assert SipLimits.of(SipSettings()) == SipLimits()  # the defaults agree


def test_a_file_sets_the_proxy_and_limit_keys(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text(
        "sip:\n  trusted_proxies: [10.20.0.5, 10.30.0.0/24]\n  calls_per_address: 60\n"
        "  invite_rate: 30\n  invite_burst: 60\n",
        encoding="utf-8",
    )
    sip = load_settings(path).sip
    assert (sip.trusted_proxies, sip.calls_per_address, sip.invite_rate, sip.invite_burst) == (
        ["10.20.0.5", "10.30.0.0/24"],
        60,
        30.0,
        60,
    )


@pytest.mark.parametrize(
    "line, words",
    [
        ("  trusted_proxies: [kamailio.local]", "sip.trusted_proxies: 'kamailio.local' is not an IP address or CIDR"),
        ("  trusted_proxies: [10.0.0.1, 5]", "sip.trusted_proxies must list IP addresses or CIDRs"),
        ("  trusted_proxies: 10.0.0.1", "sip.trusted_proxies must be list, got str"),
        ("  calls_per_address: 0", "sip.calls_per_address must be 1..10000, got 0"),
        ("  invite_rate: 0", "sip.invite_rate must be 0.1..10000, got 0.0"),
        ("  invite_burst: 100000", "sip.invite_burst must be 1..10000, got 100000"),
    ],
)
def test_a_wrong_proxy_or_limit_names_the_file_and_line(tmp_path, line, words):
    path = tmp_path / "server.yaml"
    path.write_text(f"port: 8080\nsip:\n  enabled: false\n{line}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}:4: ") and words in str(err.value), str(err.value)
