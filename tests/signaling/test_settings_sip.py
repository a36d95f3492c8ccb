"""The ``sip.*`` server settings (#14): off by default, each key checked where it is written
(file:line), the pairs checked together, and the same checks for settings made in code."""

from __future__ import annotations

import pytest

from signaling.settings import Settings, SettingsError, load_settings
from signaling.sip_settings import SipSettings


def test_the_defaults_leave_the_gateway_off_on_the_loopback():
    sip = load_settings(None).sip
    assert (sip.enabled, sip.host, sip.port, sip.transports) == (False, "127.0.0.1", 5060, ["udp", "tcp"])
    assert (sip.tls_cert, sip.tls_key) == ("", "")
    assert sip.domain == "127.0.0.1"  # empty domain: the host


def test_a_file_sets_every_key(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text(
        "sip:\n  enabled: true\n  host: 0.0.0.0\n  port: 5070\n  transports: [UDP]\n"
        "  tls_cert: /etc/giaoban/sip.pem\n  tls_key: /etc/giaoban/sip.key\n  domain: hop.hagiang.gov.vn\n",
        encoding="utf-8",
    )
    sip = load_settings(path).sip
    assert sip == SipSettings(
        True, "0.0.0.0", 5070, ["udp"], "/etc/giaoban/sip.pem", "/etc/giaoban/sip.key", "hop.hagiang.gov.vn"
    )


@pytest.mark.parametrize(
    "line, words",
    [
        ("  port: 0", "sip.port must be 1..65535, got 0"),
        ("  port: '5060'", "sip.port must be int, got str"),
        ("  enabled: yes please", "sip.enabled must be bool, got str"),
        ("  host: giaoban.local", "sip.host must be an IP address"),
        ("  transports: [udp, sctp]", "udp, tcp and/or tls"),
        ("  transports: [udp, udp]", "each once"),
        ("  transports: []", "udp, tcp and/or tls"),
        ("  transports: udp", "sip.transports must be list, got str"),
        ("  domain: 'bad domain'", "sip.domain must be a DNS name or IP address"),
        ("  listen: 5060", "unknown key sip.'listen'"),
    ],
)
def test_a_wrong_value_names_the_file_and_line(tmp_path, line, words):
    path = tmp_path / "server.yaml"
    path.write_text(f"port: 8080\nsip:\n  enabled: false\n{line}\n", encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings(path)
    assert str(err.value).startswith(f"{path}:4: ") and words in str(err.value), str(err.value)


def test_sip_must_be_a_mapping(tmp_path):
    path = tmp_path / "server.yaml"
    path.write_text("sip: true\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r":1: sip must be a mapping"):
        load_settings(path)


@pytest.mark.parametrize(
    "sip, words",
    [
        (SipSettings(tls_cert="/etc/sip.pem"), "sip.tls_cert and sip.tls_key go together"),
        (SipSettings(tls_key="/etc/sip.key"), "sip.tls_cert and sip.tls_key go together"),
        (SipSettings(enabled=True, port=8080), "sip.port 8080 is the HTTP port"),
        (SipSettings(enabled=True, host="0.0.0.0", port=8080), "sip.port 8080 is the HTTP port"),
        (SipSettings(port=70000), "sip.port must be 1..65535"),
        (SipSettings(transports=["sctp"]), "udp, tcp and/or tls"),
        (SipSettings(transports=["udp", "tls"]), "has tls: set sip.tls_cert and sip.tls_key"),
        (SipSettings(transports=["tls"], tls_cert="/c", tls_key="/k", port=65535), "no port for tls"),
        (
            SipSettings(enabled=True, transports=["tls"], tls_cert="/c", tls_key="/k", port=8079),
            "tls\\) is the HTTP port",
        ),
    ],
)
def test_settings_made_in_code_are_checked_too(sip, words):
    with pytest.raises(SettingsError, match=words):
        Settings(port=8080, sip=sip).validate()


def test_the_http_port_is_free_for_sip_over_udp_only_or_while_off():
    Settings(port=8080, sip=SipSettings(enabled=True, port=8080, transports=["udp"])).validate()
    Settings(port=8080, sip=SipSettings(port=8080)).validate()
    Settings(host="127.0.0.1", port=8080, sip=SipSettings(enabled=True, host="127.0.0.2", port=8080)).validate()


def test_tls_with_a_certificate_is_offered_beside_udp_and_tcp():
    sip = SipSettings(enabled=True, transports=["UDP", "tcp", "TLS"], tls_cert="/etc/sip.pem", tls_key="/etc/sip.key")
    Settings(port=8080, sip=sip).validate()
    assert sip.transports == ["udp", "tcp", "tls"]
