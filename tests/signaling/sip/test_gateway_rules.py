"""The gateway's rules without sockets (#14): who a caller is, what INFO bodies say, the PIN
entry, the SIP digest HA1s stored with a secret (unit layer)."""

from __future__ import annotations

import asyncio
import hashlib

from endpoints.directory import parse_directory
from signaling.auth.sip_digest import SIP_REALM, ha1_fields, stored_ha1
from signaling.errors import forbidden
from signaling.sip import info
from signaling.sip.admission import SipAddress, Target, claim_of, from_api_error, source_allowed

DIRECTORY = parse_directory(
    """
version: 1
name: T
defaults:
  province: {kind: room_terminal, link: fibre}
endpoints:
  - {id: tw, name: TW, tier: central, kind: studio, link: fibre}
  - id: room-a
    parent: tw
    tier: province
    name: A
    sip: {uri: "sip:room-a@10.1.1.5:5070;transport=tcp", allowed_sources: [10.1.1.0/24]}
  - id: room-open
    parent: tw
    tier: province
    name: O
    sip: {uri: "sip:room-open@10.1.1.9"}
  - id: room-d
    parent: tw
    tier: province
    name: D
    sip: {uri: "sip:room-d@10.1.1.7", auth_user: room-d}
"""
)
MEETING_TARGET = Target(meeting=None)  # type: ignore[arg-type]  # a dial number: no endpoint dialled


def test_sip_addresses_parse_bare_and_in_headers():
    assert SipAddress.parse('"Phòng A" <sip:Room-A@10.1.1.5:5070>;tag=x') == SipAddress("Room-A", "10.1.1.5")
    assert SipAddress.parse("sip:room-a@EXAMPLE.vn") == SipAddress("room-a", "example.vn")
    assert SipAddress.parse("not a uri") is None


def test_a_caller_claims_its_endpoint_by_from_uri_and_proves_it_by_source():
    claim = claim_of(DIRECTORY, "<sip:room-a@10.1.1.5>", "10.1.1.5", MEETING_TARGET)
    assert claim is not None and claim.endpoint.id == "room-a" and claim.provable and claim.source_ok
    elsewhere = claim_of(DIRECTORY, "<sip:room-a@10.1.1.5>", "192.0.2.1", MEETING_TARGET)
    assert elsewhere is not None and not elsewhere.source_ok
    assert claim_of(DIRECTORY, "<sip:someone@10.1.1.5>", "10.1.1.5", MEETING_TARGET) is None


def test_a_claim_that_nothing_can_prove_counts_for_nothing():
    unprovable = claim_of(DIRECTORY, "sip:room-open@10.1.1.9", "10.1.1.9", MEETING_TARGET)
    assert unprovable is not None and not unprovable.provable
    digest = claim_of(DIRECTORY, "sip:room-d@10.1.1.7", "203.0.113.4", MEETING_TARGET)
    assert digest is not None and digest.provable and digest.auth_user == "room-d"


def test_dialling_an_endpoint_id_claims_that_endpoint():
    target = Target(meeting=None, endpoint=DIRECTORY.get("room-d"))  # type: ignore[arg-type]
    claim = claim_of(DIRECTORY, "sip:anything@192.0.2.9", "192.0.2.9", target)
    assert claim is not None and claim.endpoint.id == "room-d"


def test_source_lists():
    assert source_allowed((), "192.0.2.1")
    assert source_allowed(("10.1.1.0/24", "10.2.0.5/32"), "10.2.0.5")
    assert not source_allowed(("10.1.1.0/24",), "10.1.2.1")
    assert not source_allowed(("10.1.1.0/24",), "garbage")


def test_rest_errors_become_sip_refusals_with_their_text():
    no = from_api_error(forbidden("the chair removed this endpoint from the meeting"))
    assert (no.code, no.reason) == (403, "Forbidden") and "removed" in no.warning


def test_info_bodies():
    assert info.dtmf_digit("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n") == "5"
    assert info.dtmf_digit("Application/DTMF-Relay; charset=x", "signal= #\r\n") == "#"
    assert info.dtmf_digit("application/dtmf", "7") == "7"
    assert info.dtmf_digit("application/dtmf", "x") is None
    assert info.dtmf_digit("text/plain", "5") is None
    assert info.wants_keyframe(info.MEDIA_CONTROL, info.PICTURE_FAST_UPDATE)
    assert not info.wants_keyframe("application/dtmf", "picture_fast_update")


def test_pin_entry_ends_at_hash_pause_or_eight_digits_never_at_the_pins_length():
    async def keyed(keys: str, timeout_s: float = 0.5) -> str | None:
        entry = info.PinEntry()
        for key in keys:
            entry.key(key)
        return await entry.read(timeout_s=timeout_s, pause_s=0.1)

    assert asyncio.run(keyed("12#")) == "12"
    assert asyncio.run(keyed("9*2468#")) == "2468"
    assert asyncio.run(keyed("246813")) == "246813"  # a pause ends it: the PIN's length plays no part
    assert asyncio.run(keyed("1234567890")) == "12345678"  # at most MAX_DIGITS
    assert asyncio.run(keyed("", timeout_s=0.2)) is None  # nothing keyed in time


def test_ha1_for_sip_digest_is_stored_beside_the_secret():
    fields = ha1_fields("room-d", "s3cret")
    expect_md5 = hashlib.md5(f"room-d:{SIP_REALM}:s3cret".encode()).hexdigest()
    assert fields["sip_ha1_md5"] == expect_md5
    assert fields["sip_ha1_sha256"] == hashlib.sha256(f"room-d:{SIP_REALM}:s3cret".encode()).hexdigest()
    doc = {"hash": "scrypt...", **fields}
    assert stored_ha1(doc, "room-d", "MD5") == expect_md5
    assert stored_ha1(doc, "room-d", "sha-256") == fields["sip_ha1_sha256"]
    assert stored_ha1(doc, "room-x", "MD5") is None  # another user
    assert stored_ha1({"hash": "scrypt..."}, "room-d") is None  # issued before the endpoint had auth_user
