"""What a server advertises (#16): the media node's ICE host addresses and the join links' base
chosen from host, ice_host and the machine's interfaces (injected here), the ice_host setting's
forms, and the start-up lines and warnings of `giaoban serve`."""

from __future__ import annotations

import pytest

from signaling.addresses import routable, url_host
from signaling.cli import announce
from signaling.settings import Settings, SettingsError, load_settings
from signaling.sip_settings import SipSettings

LAN = ["127.0.0.1", "10.20.0.5", "fe80::1", "169.254.3.4", "192.168.1.7", "2001:db8::5", "::1"]


def resolved(interfaces=LAN, **settings) -> Settings:
    s = Settings(**settings)
    s.validate()
    return s.resolved(interfaces=list(interfaces))


def test_a_loopback_host_keeps_media_and_links_on_the_loopback():
    s = resolved(port=8080)
    assert (s.ice_host, s.public_url) == (["127.0.0.1"], "http://127.0.0.1:8080")


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_host_advertises_every_routable_address_and_links_to_the_first(host):
    s = resolved(host=host, port=8080)
    assert s.ice_host == ["10.20.0.5", "192.168.1.7", "2001:db8::5"]  # IPv4 first; no loopback or link-local
    assert s.public_url == "http://10.20.0.5:8080"


def test_a_machine_with_only_ipv6_links_in_brackets():
    s = resolved(interfaces=["::1", "2001:db8::5"], host="::", port=8080)
    assert s.public_url == "http://[2001:db8::5]:8080"


def test_a_machine_without_a_network_falls_back_to_the_loopback_never_the_wildcard():
    s = resolved(interfaces=["127.0.0.1", "fe80::1"], host="0.0.0.0", port=8080)
    assert (s.ice_host, s.public_url) == (["127.0.0.1"], "http://127.0.0.1:8080")


def test_one_listen_address_is_the_media_address_and_the_links_host():
    s = resolved(host="10.20.0.5", port=8080)
    assert (s.ice_host, s.public_url) == (["10.20.0.5"], "http://10.20.0.5:8080")


def test_ice_host_listed_wins_and_the_links_follow_its_first_address():
    s = resolved(host="0.0.0.0", port=8080, ice_host=["192.168.1.7"])
    assert (s.ice_host, s.public_url) == (["192.168.1.7"], "http://192.168.1.7:8080")


def test_a_public_url_set_is_kept():
    s = resolved(host="0.0.0.0", port=8080, public_url="https://giaoban.hagiang.gov.vn/")
    assert s.public_url == "https://giaoban.hagiang.gov.vn"


def test_routable_drops_loopback_link_local_unspecified_and_duplicates():
    assert routable(["0.0.0.0", "10.0.0.1", "10.0.0.1", "fe80::2", "not an address", "::"]) == ["10.0.0.1"]


@pytest.mark.parametrize(
    "text, want",
    [("ice_host: 10.20.0.5", ["10.20.0.5"]), ("ice_host: [10.20.0.5, 2001:db8::5]", ["10.20.0.5", "2001:db8::5"])],
)
def test_ice_host_is_an_address_or_a_list(tmp_path, text, want):
    path = tmp_path / "server.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    assert load_settings(path).ice_host == want


@pytest.mark.parametrize(
    "text, words",
    [
        ("ice_host: 0.0.0.0", "leave ice_host empty to advertise every interface"),
        ("ice_host: [10.20.0.5, may-chu]", "ice_host must list IP addresses"),
        ("ice_host: 5", "ice_host must be an IP address or a list of them"),
    ],
)
def test_a_wrong_ice_host_names_its_line(tmp_path, text, words):
    path = tmp_path / "server.yaml"
    path.write_text("port: 8080\n" + text + "\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=words) as caught:
        load_settings(path)
    assert caught.value.line == 2


def startup(capsys, interfaces=LAN, **settings) -> list[str]:
    announce(resolved(interfaces=interfaces, **settings), list(interfaces))
    return [line.removeprefix("giaoban: ") for line in capsys.readouterr().err.splitlines()]


def test_start_up_on_the_wildcard_prints_what_it_advertises_without_warnings(capsys):
    lines = startup(capsys, host="0.0.0.0", port=8080)
    assert lines == [
        "HTTP: listening on 0.0.0.0:8080; join links http://10.20.0.5:8080",
        "media: ICE host candidates on 10.20.0.5, 192.168.1.7, 2001:db8::5",
    ]


def test_start_up_on_the_loopback_warns_of_nothing(capsys):
    assert startup(capsys, port=8080) == [
        "HTTP: listening on 127.0.0.1:8080; join links http://127.0.0.1:8080",
        "media: ICE host candidates on 127.0.0.1",
    ]


def test_loopback_media_behind_a_wildcard_host_is_warned_vietnamese_first(capsys):
    warning = startup(capsys, host="0.0.0.0", port=8080, ice_host="127.0.0.1")[2]
    vietnamese, english = warning.split(" / ")
    assert vietnamese.startswith("Cảnh báo: máy khác không nhận được hình và tiếng: ice_host 127.0.0.1")
    assert english.startswith("Warning: media unreachable from other machines: ice_host 127.0.0.1 is loopback")


def test_a_loopback_join_link_on_a_served_network_is_warned(capsys):
    lines = startup(capsys, host="0.0.0.0", port=8080, public_url="http://0.0.0.0:8080")
    assert any("Warning: join links http://0.0.0.0:8080 only open on this machine" in line for line in lines)
    lines = startup(capsys, host="10.20.0.5", port=8080, public_url="http://localhost:8080")
    assert any("join links http://localhost:8080 only open on this machine" in line for line in lines)


def test_an_address_not_on_the_machine_and_no_network_at_all_are_warned(capsys):
    lines = startup(capsys, host="0.0.0.0", port=8080, ice_host="10.99.0.1")
    assert any("Warning: ice_host 10.99.0.1 is not an address of this machine" in line for line in lines)
    lines = startup(capsys, interfaces=["127.0.0.1"], host="0.0.0.0", port=8080)
    assert any("Warning: this machine has no address besides loopback" in line for line in lines)


def test_the_sip_gateway_is_listed_and_a_loopback_one_warned_on_a_served_network(capsys):
    sip = SipSettings(enabled=True, host="127.0.0.1", port=5060, transports=["udp", "tcp"])
    lines = startup(capsys, host="0.0.0.0", port=8080, sip=sip)
    assert "SIP: 127.0.0.1:5060 udp/tcp, domain 127.0.0.1" in lines
    assert any("Warning: SIP room systems on other machines cannot call in: sip.host is 127.0.0.1" in x for x in lines)


def test_url_host_reads_names_addresses_and_brackets():
    assert [url_host(u) for u in ("http://a.vn:80/x", "https://[2001:db8::5]:8443", "http://10.0.0.1")] == [
        "a.vn",
        "2001:db8::5",
        "10.0.0.1",
    ]


def test_public_ip_is_listed_beside_the_media_addresses(tmp_path, capsys):
    path = tmp_path / "server.yaml"
    path.write_text("public_ip: 203.0.113.7\n", encoding="utf-8")
    assert load_settings(path).public_ip == ["203.0.113.7"]
    lines = startup(capsys, host="0.0.0.0", port=8080, public_ip="203.0.113.7")
    assert (
        lines[1]
        == "media: ICE host candidates on 10.20.0.5, 192.168.1.7, 2001:db8::5; behind 1:1 NAT also on 203.0.113.7"
    )
    assert len(lines) == 2  # no warning


@pytest.mark.parametrize("value", ["127.0.0.1", "0.0.0.0", "giaoban.vn"])
def test_public_ip_must_be_reachable_from_another_network(tmp_path, value):
    path = tmp_path / "server.yaml"
    path.write_text(f"public_ip: [{value}]\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="public_ip lists the addresses a 1:1 NAT forwards"):
        load_settings(path)


def test_a_public_ip_of_a_family_without_media_address_is_warned(capsys):
    lines = startup(capsys, host="10.20.0.5", port=8080, public_ip="2001:db8::99")
    assert any("Warning: public_ip 2001:db8::99 has no media address of its family" in line for line in lines)
