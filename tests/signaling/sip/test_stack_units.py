"""The SIP stack's pure parts (#14): the strict parser, digest verdicts, token buckets, Warning text."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from aiosipua.dialog import Dialog, DialogState
from aiosipua.auth import SipDigestAuth, build_credentials
from aiosipua.header_codec import parse_auth, stringify_auth
from aiosipua.message import SipRequest

from signaling.sip.digest import DigestServer, ha1
from signaling.sip.outgoing import CSEQ_GAP, dialog_parts, orphan_dialog
from signaling.sip.limits import TokenBuckets
from signaling.sip.transport import FramingError, content_length
from signaling.sip.wire import BadMessage, parse, warning_value

GOOD = (
    "INVITE sip:7001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKx;rport\r\n"
    'From: "Phòng họp" <sip:room@10.0.0.5>;tag=1\r\nTo: <sip:7001@127.0.0.1>\r\nCall-ID: x@y\r\n'
    "CSeq: 1 INVITE\r\nContent-Length: 4\r\n\r\nabcd"
)


@pytest.mark.parametrize(
    "old, new, reason, answerable",
    [
        ("INVITE sip:7001@127.0.0.1 SIP/2.0", "INVITE sip:7001@127.0.0.1 SIP/3.0", "Bad Request Line", True),
        ("INVITE sip:7001@127.0.0.1 SIP/2.0", "\x00\xff junk", "Bad Request Line", True),
        ("Call-ID: x@y\r\n", "", "Missing Call-ID", True),
        ("To: <sip:7001@127.0.0.1>\r\n", "", "Missing To", True),
        ("CSeq: 1 INVITE\r\n", "", "Missing CSeq", False),
        ("Via: SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKx;rport\r\n", "", "Missing Via", False),
        ("Via: SIP/2.0/UDP 127.0.0.1:5090", "Via: junk", "Bad Via", False),
        ("CSeq: 1 INVITE", "CSeq: one INVITE", "Bad CSeq", False),
        ("CSeq: 1 INVITE", "CSeq: 1 BYE", "CSeq Method Mismatch", True),
        ("Content-Length: 4", "Content-Length: 40", "Content-Length Mismatch", True),
        ("Content-Length: 4", "Content-Length: four", "Bad Content-Length", True),
        ("To: <sip:7001@127.0.0.1>", "To: <<sip:7001@127.0.0.1>", "Bad To", True),
        ("Call-ID: x@y", "Subject: " + "x" * 5000 + "\r\nCall-ID: x@y", "Header Too Long", True),
    ],
)
def test_the_parser_names_the_fault(old, new, reason, answerable):
    assert old in GOOD
    with pytest.raises(BadMessage) as refused:
        parse(GOOD.replace(old, new).encode("utf-8", "surrogateescape"))
    assert refused.value.reason == reason and (refused.value.request is not None) == answerable


def test_a_good_request_parses_with_its_body_and_display_name():
    request = parse(GOOD.encode())
    assert request.method == "INVITE" and request.body == b"abcd" and request.call_id == "x@y"


def test_stream_framing_needs_a_content_length_within_the_cap():
    assert content_length(b"OPTIONS sip:x SIP/2.0\r\nl: 12\r\n\r\n") == 12
    for head, reason in ((b"X\r\n\r\n", "Missing Content-Length"), (b"X\r\nContent-Length: -1\r\n\r\n", "Bad Content-Length"),
                         (b"X\r\nContent-Length: 99999999\r\n\r\n", "Message Too Large")):  # fmt: skip
        with pytest.raises(FramingError, match=reason):
            content_length(head)


def test_token_bucket_allows_the_burst_then_the_rate_and_forgets_idle_addresses():
    buckets = TokenBuckets(rate=10, burst=20, max_keys=4)
    assert sum(buckets.take("a", now=0.0) for _ in range(25)) == 20
    assert buckets.take("a", now=0.05) is False and buckets.take("a", now=0.1) is True
    for i, key in enumerate("bcd"):
        buckets.take(key, now=1.0 + i)
    buckets.take("e", now=10.0)  # full table: the buckets full again by now are dropped
    assert len(buckets) <= 4 and buckets.take("a", now=10.0)


def test_warning_text_is_quoted_and_coded_for_488():
    assert warning_value(488, "gw.example", 'no "common"\r\ncodec') == '305 gw.example "no \\"common\\"  codec"'
    assert warning_value(403, "gw", "x").startswith("399 gw ")


def signed(challenge: str, password: str = "pw", *, method: str = "INVITE", uri: str = "sip:7001@gw", nc: int = 1):
    """A request carrying the answer of room1 to ``challenge`` (signed for ``uri`` with count ``nc``)."""
    creds = build_credentials(SipDigestAuth("room1", password), parse_auth(challenge), "INVITE", uri, nonce_count=nc)
    text = GOOD.replace("INVITE sip:7001@127.0.0.1", f"{method} sip:7001@gw").replace("1 INVITE", f"1 {method}")
    return parse(text.replace("Content-Length", f"Authorization: {stringify_auth(creds)}\r\nContent-Length").encode())


def verdict_of(server: DigestServer, request, lookup, source: str = "10.0.0.5"):
    return asyncio.run(server.check(request, source, "realm", lookup))


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_digest_accepts_the_right_password_and_refuses_the_rest_alike(algorithm):
    server = DigestServer(secret=b"k" * 32)
    [offer] = [c for c in server.challenges("realm", "10.0.0.5") if f"algorithm={algorithm}" in c]
    stored = {("room1", algorithm): ha1("room1", "realm", "pw", algorithm)}.get

    def lookup(u, r, a):
        return stored((u, a))

    assert verdict_of(server, signed(offer), lookup).user == "room1"
    wrong = verdict_of(server, signed(offer, "nope", nc=2), lookup)
    unknown = verdict_of(server, signed(offer, nc=3), lambda u, r, a: None)
    assert (
        (wrong.user, wrong.code, wrong.reason)
        == (None, 403, "Forbidden")
        == (unknown.user, unknown.code, unknown.reason)
    )
    other_method = verdict_of(server, signed(offer, method="BYE", nc=4), lookup)
    assert other_method.code == 403  # the response covers the method


def test_digest_refuses_a_replayed_count_another_uri_and_another_address():
    server = DigestServer(secret=b"k" * 32)
    offer = server.challenges("realm", "10.0.0.5")[0]
    lookup = {("room1", "SHA-256"): ha1("room1", "realm", "pw", "SHA-256")}

    def verdict(request, source="10.0.0.5"):
        return verdict_of(server, request, lambda u, r, a: lookup.get((u, a)), source)

    assert verdict(signed(offer, nc=1)).user == "room1"
    replay = verdict(signed(offer, nc=1))
    assert (replay.user, replay.code, replay.stale) == (None, 401, False)  # challenged again
    assert verdict(signed(offer, nc=3)).user == "room1" and verdict(signed(offer, nc=2)).code == 401
    moved = verdict(signed(offer, uri="sip:7002@gw", nc=4))
    assert (moved.user, moved.code) == (None, 400)
    assert verdict(signed(offer, nc=5), source="10.0.0.6").code == 401  # the nonce was given to 10.0.0.5
    assert verdict(signed(offer, nc=5)).user == "room1"


def test_digest_nonces_are_ours_fresh_or_stale():
    server, other = DigestServer(secret=b"a" * 32), DigestServer(secret=b"b" * 32)
    assert server.nonce_state(server.nonce("10.0.0.5"), "10.0.0.5") == "fresh"
    assert server.nonce_state(server.nonce("10.0.0.5"), "10.0.0.9") == "bad"
    assert server.nonce_state(server.nonce("10.0.0.5", now=1000), "10.0.0.5") == "stale"
    assert server.nonce_state(other.nonce("10.0.0.5"), "10.0.0.5") == "bad"
    assert server.nonce_state("junk", "10.0.0.5") == "bad"
    offer = server.challenges("realm", "10.0.0.5")[0]
    stale = offer.replace(offer.split('nonce="')[1].split('"')[0], server.nonce("10.0.0.5", now=1000))
    lookup = {("room1", "SHA-256"): ha1("room1", "realm", "pw", "SHA-256")}
    verdict = verdict_of(server, signed(stale), lambda u, r, a: lookup.get((u, a)))
    assert (verdict.user, verdict.code, verdict.stale) == (None, 401, True)


def test_a_stored_dialog_gives_the_bye_the_room_matches():
    """dial-out takeover (#14 review 16): the dialog kept in the store (JSON) rebuilds an in-dialog BYE."""
    dialog = Dialog(
        call_id="abc@giaoban", local_tag="ours", remote_tag="theirs", local_uri="sip:7001@giaoban",
        remote_uri="sip:room@10.0.0.5", remote_target="sip:room@10.0.0.5:5062", route_set=["<sip:10.0.0.1;lr>"],
        local_cseq=3, state=DialogState.CONFIRMED,
    )  # fmt: skip
    call = SimpleNamespace(dialog=dialog, link=SimpleNamespace(transport="udp", peer=("10.0.0.5", 5062)))
    parts = json.loads(json.dumps(dialog_parts(call)))  # as the store keeps it
    assert parts["peer"] == ["10.0.0.5", 5062] and parts["transport"] == "udp"
    bye = parse(bytes(orphan_dialog(parts).create_request("BYE", via_host="10.0.0.9", via_port=5060)))
    assert isinstance(bye, SipRequest) and bye.method == "BYE" and bye.uri == "sip:room@10.0.0.5:5062"
    assert bye.call_id == "abc@giaoban" and bye.from_addr.tag == "ours" and bye.to_addr.tag == "theirs"
    assert bye.headers.get("route") == ["<sip:10.0.0.1;lr>"] and bye.cseq.seq == 3 + CSEQ_GAP + 1
