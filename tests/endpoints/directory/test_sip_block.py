"""An endpoint's optional ``sip:`` block (#14): what a valid block gives, and each kind of mistake
with the file, exact line and key words of its message."""

from __future__ import annotations

from pathlib import Path

import pytest

from endpoints.directory import parse_directory
from endpoints.model import SipAccess
from tests.endpoints.directory.test_validation import edited, mistake

# inserted after the province item (GOOD line 14, its last key), so the block belongs to hg-ubnd
SIP = """\
    sip:
      uri: "sips:hg-ubnd@10.20.0.15:5061;transport=tls"
      auth_user: hg-ubnd
      allowed_sources: [10.20.0.15, 10.20.8.0/24, "fd00::/8"]
      codecs: [h264, OPUS, G722]"""
FIRST = 15  # line of the 'sip:' key; uri on 16, auth_user 17, allowed_sources 18, codecs 19


def with_sip(**lines: str) -> str:
    """GOOD with the SIP block, some of its lines (by key) replaced, or dropped when given ''."""
    block = SIP.splitlines()
    keys = [line.strip().split(":", 1)[0] for line in block]
    out = [lines.get(key, line) if key in lines else line for key, line in zip(keys, block, strict=True)]
    return edited(insert={FIRST: "\n".join(line for line in out if line)})


def test_a_valid_block_is_read_normalised() -> None:
    ep = parse_directory(with_sip()).get("hg-ubnd")
    assert ep.sip == SipAccess(
        uri="sips:hg-ubnd@10.20.0.15:5061;transport=tls",
        auth_user="hg-ubnd",
        allowed_sources=("10.20.0.15/32", "10.20.8.0/24", "fd00::/8"),
        codecs=("H264", "OPUS", "G722"),
    )
    assert ep.to_dict()["sip"] == {
        "uri": "sips:hg-ubnd@10.20.0.15:5061;transport=tls",
        "auth_user": "hg-ubnd",
        "allowed_sources": ["10.20.0.15/32", "10.20.8.0/24", "fd00::/8"],
        "codecs": ["H264", "OPUS", "G722"],
    }
    assert "sip" not in ep.to_dict(with_sip=False)


def test_only_the_uri_is_required_and_other_endpoints_have_none() -> None:
    d = parse_directory(with_sip(auth_user="", allowed_sources="", codecs=""))
    assert d.get("hg-ubnd").sip == SipAccess("sips:hg-ubnd@10.20.0.15:5061;transport=tls")
    assert d.get("hg-meo-vac").sip is None and "sip" not in d.get("hg-meo-vac").to_dict()


@pytest.mark.parametrize(
    "uri",
    ["sip:10.20.0.15", "sip:room@hg.gov.vn", "sip:room@[2001:db8::1]:5060", "sip:1001@pbx.local;user=phone"],
)
def test_uri_forms_a_room_system_uses(uri: str) -> None:
    assert parse_directory(with_sip(uri=f'      uri: "{uri}"')).get("hg-ubnd").sip.uri == uri  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "changes, line, words",
    [
        ({"uri": '      uri: "http://hg-ubnd@10.20.0.15"'}, 16, ("'sip.uri' of endpoint 'hg-ubnd'", "not a SIP URI")),
        ({"uri": '      uri: "sip:"'}, 16, ("not a SIP URI",)),
        ({"uri": '      uri: "sip:a@b c"'}, 16, ("not a SIP URI",)),
        ({"uri": '      uri: "sip:a@10.0.0.1:99999"'}, 16, ("port 99999 is outside 1..65535",)),
        ({"uri": '      uri: "sip:a@[::g]"'}, 16, ("not a SIP URI",)),
        ({"uri": '      uri: "sip:a@[1:2]"'}, 16, ("is not an IPv6 address",)),
        ({"uri": "      uri: 5060"}, 16, ("must be a string",)),
        ({"uri": ""}, FIRST, ("missing required key 'uri'", "'sip' of endpoint 'hg-ubnd'")),
        ({"auth_user": "      auth_user: 'a b'"}, 17, ("'sip.auth_user'", "bad user name")),
        (
            {"auth_user": "      password: secret"},
            17,
            ("unknown key 'password'", "uri, auth_user, allowed_sources or codecs"),
        ),
        ({"allowed_sources": "      allowed_sources: [10.20.0.300]"}, 18, ("'10.20.0.300' is not an IP address",)),
        ({"allowed_sources": "      allowed_sources: [10.20.8.1/24]"}, 18, ("host bits set",)),
        ({"allowed_sources": "      allowed_sources: []"}, 18, ("must list 1 to 64 items",)),
        ({"allowed_sources": "      allowed_sources: 10.0.0.1"}, 18, ("must be a list",)),
        ({"codecs": "      codecs: [H264, AV1]"}, 19, ("unknown codec 'AV1'", "PCMU, PCMA, G722, OPUS, H264 or VP8")),
        ({"codecs": "      codecs: [H264, h264]"}, 19, ("H264 is listed twice",)),
        ({"codecs": "      codecs: [H264, 8]"}, 19, ("must be a string",)),
    ],
)
def test_each_mistake_names_its_line(
    tmp_path: Path, changes: dict[str, str], line: int, words: tuple[str, ...]
) -> None:
    mistake(tmp_path, with_sip(**changes), line, *words)


def test_a_block_that_is_not_a_mapping(tmp_path: Path) -> None:
    mistake(
        tmp_path,
        edited(insert={FIRST: "    sip: sip:hg-ubnd@10.20.0.15"}),
        FIRST,
        "'sip' of endpoint 'hg-ubnd' must be a mapping",
    )


def test_a_bad_block_reports_every_mistake(tmp_path: Path) -> None:
    err = mistake(
        tmp_path,
        with_sip(uri='      uri: "tel:1001"', codecs="      codecs: [AV1]"),
        16,
        "not a SIP URI",
    )
    assert [e.line for e in err.errors] == [16, 19]


def test_the_sample_directory_has_a_room_system_at_the_province() -> None:
    from endpoints.directory import load_directory
    from tests.support.harness import HAGIANG

    sip = load_directory(HAGIANG).get("hg-ubnd").sip
    assert sip is not None and sip.uri.startswith("sip:hg-ubnd@") and sip.codecs[0] == "H264"
