"""The SIP stack as a hand-written peer sees it on 127.0.0.1 (#14): OPTIONS, refusals of malformed
and hostile input, per-address limits, digest, retransmission both ways, session-timer roles."""

from __future__ import annotations

import asyncio

import pytest
from aiosipua.auth import SipDigestAuth, build_credentials
from aiosipua.header_codec import parse_auth, stringify_auth

from signaling.sip import transport as sip_transport
from signaling.sip.digest import ha1
from signaling.sip.stack import DialFailed, SipLimits
from tests.signaling.sip.conftest import GENEROUS, audio_sdp
from tests.signaling.sip.raw import RawPeer, request

pytestmark = pytest.mark.integration


async def answer_all(call):
    await call.answer(audio_sdp())


async def options_ok(stack, name="udp") -> None:
    target = stack.addresses[name]
    peer = await (RawPeer.udp(target) if name == "udp" else RawPeer.stream(target))
    try:
        peer.send(request("OPTIONS", target, peer))
        answer = await peer.response()
        assert answer.status_code == 200
    finally:
        peer.close()
    return answer


@pytest.mark.parametrize("name", ["udp", "tcp"])
async def test_options_says_what_we_allow_accept_and_support(stacks, name):
    stack = await stacks()
    answer = await options_ok(stack, name)
    allow, accept, supported = (", ".join(answer.headers.get(n)) for n in ("allow", "accept", "supported"))
    assert all(m in allow for m in ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "INFO", "UPDATE", "PRACK"))
    assert "application/sdp" in accept and "application/media_control+xml" in accept
    assert "timer" in supported and "100rel" in supported


BASE = dict(call_id="bad", body=audio_sdp())


def mangle(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


MALFORMED = [
    ("Bad Request Line", lambda t: mangle(t, "INVITE sip:", "INVITE  sip:"), 400),
    ("Missing Call-ID", lambda t: mangle(t, "Call-ID: bad@test\r\n", ""), 400),
    ("Missing From", lambda t: mangle(t, "From: ", "X-From: "), 400),
    ("CSeq Method Mismatch", lambda t: mangle(t, "CSeq: 1 INVITE", "CSeq: 1 BYE"), 400),
    ("Content-Length Mismatch", lambda t: mangle(t, "Content-Length: ", "Content-Length: 9"), 400),
    ("Bad To", lambda t: mangle(t, "To: <sip:", "To: <<<sip:"), 400),
    ("Header Too Long", lambda t: mangle(t, "Max-Forwards: 70", "Subject: " + "x" * 5000), 513),
    ("Too Many Headers", lambda t: mangle(t, "Max-Forwards: 70", "\r\n".join(f"X-H{i}: {i}" for i in range(150))), 513),
]


async def test_malformed_requests_get_400_naming_the_fault_and_the_listener_goes_on(stacks):
    stack = await stacks(answer_all)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    for reason, change, code in MALFORMED:
        peer.send(change(request("INVITE", target, peer, **BASE)))
        answer = await peer.response()
        assert (answer.status_code, answer.reason_phrase) == (code, reason)
    for junk in (
        b"\x00\xff" * 100,
        b"SIP/2.0 abc\r\n\r\n",
        b"INVITE sip:x SIP/2.0\r\n\r\n",
        b"\r\n\r\n\r\n",
        b"A" * 60000,
    ):
        peer.send(junk)  # nothing to answer to: dropped
    await options_ok(stack)
    assert peer.queue.empty() and not stack.calls and stack.counts["error"] == 0
    assert stack.counts["refused:Missing Call-ID"] == 1


async def test_tcp_framing_faults_close_the_connection_after_a_refusal(stacks, monkeypatch):
    monkeypatch.setattr(sip_transport, "MESSAGE_DEADLINE_S", 0.5)
    stack = await stacks(answer_all)
    target = stack.addresses["tcp"]
    peer = await RawPeer.stream(target)
    peer.send(mangle(request("OPTIONS", target, peer), "Content-Length: 0\r\n", ""))
    answer = await peer.response()
    assert (answer.status_code, answer.reason_phrase) == (400, "Missing Content-Length")
    await asyncio.wait_for(peer._reader_task, 2)  # closed by the stack
    big = await RawPeer.stream(target)
    big.send(mangle(request("OPTIONS", target, big), "Content-Length: 0", "Content-Length: 10000000"))
    answer = await big.response()
    assert (answer.status_code, answer.reason_phrase) == (513, "Message Too Large")
    slow = await RawPeer.stream(target)
    slow.send("OPTIONS sip:7001@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKs\r\n")
    await asyncio.wait_for(slow._reader_task, 2)  # slowloris: the rest never came within the deadline
    await options_ok(stack, "tcp")
    assert stack.counts["error"] == 0


async def test_connections_from_one_address_are_capped_and_the_first_still_served(stacks):
    stack = await stacks(limits=SipLimits(max_conns_per_address=2))
    target = stack.addresses["tcp"]
    peers = [await RawPeer.stream(target) for _ in range(3)]
    await asyncio.wait_for(peers[2]._reader_task, 2)  # the third is closed at once
    peers[0].send(request("OPTIONS", target, peers[0]))
    assert (await peers[0].response()).status_code == 200
    for peer in peers:
        peer.close()


async def test_an_invite_flood_from_one_address_gets_503_with_retry_after(stacks):
    limits = SipLimits(invite_rate=0.1, invite_burst=3, calls_per_address=100)
    stack = await stacks(lambda call: None, limits=limits)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    for i in range(6):
        peer.send(request("INVITE", target, peer, call_id=f"flood{i}", body=audio_sdp()))
    answers = [await peer.response(skip_provisional=False) for _ in range(6)]
    codes = sorted(a.status_code for a in answers)
    assert codes == [100, 100, 100, 503, 503, 503]
    refused = [a for a in answers if a.status_code == 503]
    assert all(a.reason_phrase == "Too Many INVITEs From Your Address" for a in refused)
    assert all(a.headers.get_first("retry-after") == "5" for a in refused)
    warning = refused[0].headers.get_first("warning") or ""  # Vietnamese first, the English after
    assert warning.index("Máy chủ đang quá tải") < warning.index("too many INVITEs from your address"), warning
    await options_ok(stack)  # other requests still answered


async def test_calls_per_address_and_overall_are_capped(stacks):
    stack = await stacks(
        lambda call: None, limits=SipLimits(invite_rate=100, invite_burst=100, calls_per_address=2, max_calls=3)
    )
    target = stack.addresses["udp"]
    first, second = await RawPeer.udp(target), await RawPeer.udp(target)
    for i in range(3):
        first.send(request("INVITE", target, first, call_id=f"c{i}", body=audio_sdp()))
    codes = [(await first.response(skip_provisional=False)) for _ in range(3)]
    assert [(a.status_code, a.reason_phrase) for a in codes][2] == (503, "Too Many Calls From Your Address")
    # the same address is 127.0.0.1 for every peer here: the overall cap is checked first
    stack.limits = SipLimits(invite_rate=100, invite_burst=100, calls_per_address=10, max_calls=2)
    second.send(request("INVITE", target, second, call_id="c9", body=audio_sdp()))
    answer = await second.response()
    assert (answer.status_code, answer.reason_phrase) == (503, "Too Many Calls")


async def test_digest_challenge_then_the_right_answer_is_admitted(stacks):
    realm = "hagiang.gov.vn"
    stored = {
        ("room1", "SHA-256"): ha1("room1", realm, "s3cret", "SHA-256"),
        ("room1", "MD5"): ha1("room1", realm, "s3cret"),
    }
    admitted = []

    async def on_invite(call):
        user = await stack.challenge(call, realm, lambda u, r, a: stored.get((u, a)))
        if user is not None:
            admitted.append(user)
            await call.answer(audio_sdp())

    stack = await stacks(on_invite)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    peer.send(request("INVITE", target, peer, call_id="auth", body=audio_sdp()))
    challenge = await peer.response()
    offers = challenge.headers.get("www-authenticate")
    assert challenge.status_code == 401 and "algorithm=SHA-256" in offers[0] and "algorithm=MD5" in offers[1]
    assert all('qop="auth"' in o and f'realm="{realm}"' in o for o in offers)
    warning = challenge.headers.get_first("warning") or ""
    assert warning.index("Thiết bị cần đăng nhập SIP") < warning.index("digest authentication required"), warning

    async def attempt(password: str, offer: str, cseq: int, *, user="room1", call_id="auth", nc=1, uri=""):
        uri = uri or f"sip:7001@{target[0]}:{target[1]}"
        creds = build_credentials(SipDigestAuth(user, password), parse_auth(offer), "INVITE", uri, nonce_count=nc)
        auth = {"Authorization": stringify_auth(creds)}
        peer.send(request("INVITE", target, peer, call_id=call_id, cseq=cseq, headers=auth, body=audio_sdp()))
        answer = await peer.response()
        return answer.status_code, answer.reason_phrase

    wrong, unknown = await attempt("wrong", offers[0], 2), await attempt("s3cret", offers[0], 3, user="room9")
    assert wrong == unknown == (403, "Forbidden")  # which auth_user exists is not told
    assert (await attempt("s3cret", offers[0], 4, uri="sip:7002@elsewhere"))[0] == 400  # uri must be the R-URI
    assert await attempt("s3cret", offers[1], 5) == (200, "OK")  # MD5
    assert admitted == ["room1"]
    assert (await attempt("s3cret", offers[1], 1, call_id="replay"))[0] == 401  # the same nc again: a replay
    assert await attempt("s3cret", offers[1], 2, call_id="replay", nc=2) == (200, "OK")
    stale = offers[0].replace(
        offers[0].split('nonce="')[1].split('"')[0], stack.digest.nonce("127.0.0.1", now=1_000_000)
    )
    # an old nonce of ours, answered rightly, on a new call: challenged again with stale=true
    peer.send(
        request(
            "INVITE",
            target,
            peer,
            call_id="auth2",
            body=audio_sdp(),
            headers={
                "Authorization": stringify_auth(
                    build_credentials(
                        SipDigestAuth("room1", "s3cret"),
                        parse_auth(stale),
                        "INVITE",
                        f"sip:7001@{target[0]}:{target[1]}",
                    )
                )
            },
        )
    )
    again = await peer.response()
    assert again.status_code == 401 and "stale=true" in again.headers.get_first("www-authenticate")


async def test_our_invite_is_retransmitted_over_udp_and_a_486_is_acked(stacks):
    stack = await stacks()
    room = await RawPeer.udp(stack.addresses["udp"])
    out = await stack.dial(f"sip:room@127.0.0.1:{room.port}", from_user="gw", sdp=audio_sdp())
    await asyncio.sleep(1.8)  # T1 = 0.5 s: sent at 0, 0.5 and 1.5 s
    invites = [m for m in (room.queue.get_nowait() for _ in range(room.queue.qsize())) if m.method == "INVITE"]
    assert len(invites) == 3 and len({i.headers.get_first("via") for i in invites}) == 1
    invite = invites[0]
    lines = ["SIP/2.0 486 Busy Here"] + [
        f"{n}: {invite.headers.get_first(n)}" for n in ("Via", "From", "Call-ID", "CSeq")
    ]
    lines += [f"To: {invite.headers.get_first('to')};tag=busy", "Content-Length: 0", "", ""]
    room.send("\r\n".join(lines))
    ack = await room.request("ACK")
    assert ack.headers.get_first("via") == invite.headers.get_first("via") and "tag=busy" in ack.headers.get_first("to")
    room.send("\r\n".join(lines))  # the 486 again (as if our ACK was lost): ACKed again
    await room.request("ACK")
    with pytest.raises(DialFailed) as failed:
        await out.wait_answered(1)
    assert failed.value.code == 486


async def test_our_200_is_retransmitted_until_the_ack_and_a_repeated_invite_is_absorbed(stacks):
    seen = []

    async def on_invite(call):
        seen.append(call)
        await call.answer(audio_sdp())

    stack = await stacks(on_invite)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    invite = request("INVITE", target, peer, call_id="r", body=audio_sdp())
    peer.send(invite)
    first = await peer.response()
    peer.send(invite)  # a retransmission of the same INVITE
    await asyncio.sleep(1.7)
    oks = [
        m for m in (peer.queue.get_nowait() for _ in range(peer.queue.qsize())) if getattr(m, "status_code", 0) == 200
    ]
    assert len(seen) == 1 and len(oks) >= 2  # the 200 again: for the retransmitted INVITE and by Timer G's schedule
    tag = first.to_addr.tag
    peer.send(request("ACK", target, peer, call_id="r", to_tag=tag))
    await asyncio.sleep(1.2)
    assert peer.queue.empty()  # retransmission stopped
    await seen[0].hangup()


async def test_a_uac_without_timer_support_makes_us_the_refresher(stacks):
    async def on_invite(call):
        await call.answer(audio_sdp())

    stack = await stacks(on_invite, session_expires=2, min_se=1)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    peer.send(
        request("INVITE", target, peer, call_id="t", body=audio_sdp(), headers={"Session-Expires": "2;refresher=uac"})
    )
    ok = await peer.response()
    assert ok.headers.get_first("session-expires") == "2;refresher=uas" and ok.headers.get_first("require") is None
    peer.send(request("ACK", target, peer, call_id="t", to_tag=ok.to_addr.tag))
    refresh = await peer.request("INVITE", timeout=3)  # no UPDATE in its Allow: a re-INVITE with our SDP
    assert refresh.body.decode() == audio_sdp() and "refresher=uas" in refresh.headers.get_first("session-expires")


async def test_a_session_interval_below_min_se_gets_422(stacks):
    stack = await stacks(answer_all)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    peer.send(
        request("INVITE", target, peer, body=audio_sdp(), headers={"Session-Expires": "30", "Supported": "timer"})
    )
    answer = await peer.response()
    assert (answer.status_code, answer.headers.get_first("min-se")) == (422, "90")
    assert GENEROUS.max_calls == 500


async def test_a_bye_on_a_new_tcp_connection_is_answered_on_that_connection(stacks):
    calls = []

    async def on_invite(call):
        calls.append(call)
        await call.answer(audio_sdp())

    stack = await stacks(on_invite)
    target = stack.addresses["tcp"]
    first = await RawPeer.stream(target)
    first.send(request("INVITE", target, first, call_id="moved", body=audio_sdp()))
    ok = await first.response()
    first.send(request("ACK", target, first, call_id="moved", to_tag=ok.to_addr.tag))
    first.close()
    second = await RawPeer.stream(target)
    second.send(request("BYE", target, second, call_id="moved", cseq=2, to_tag=ok.to_addr.tag))
    assert (await second.response()).status_code == 200
    await asyncio.wait_for(calls[0].ended.wait(), 2)
    assert calls[0].end_reason == "bye"


async def test_messages_over_the_address_rate_are_dropped_unread(stacks):
    stack = await stacks(limits=SipLimits(message_rate=5, message_burst=5))
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    for _ in range(20):
        peer.send(request("OPTIONS", target, peer))
    await asyncio.sleep(0.3)
    assert peer.queue.qsize() <= 7 and stack.counts["dropped:message rate"] >= 13
    await asyncio.sleep(1.0)  # the bucket refills: answered again
    await options_ok(stack)


async def test_an_update_with_an_offer_goes_to_on_reinvite_and_its_answer_comes_back(stacks):
    calls = []

    async def on_invite(call):
        calls.append(call)

        async def on_reinvite(offer):
            return audio_sdp(42010) if "a=sendonly" in offer else audio_sdp()

        call.on_reinvite = on_reinvite
        await call.answer(audio_sdp())

    stack = await stacks(on_invite)
    target = stack.addresses["udp"]
    peer = await RawPeer.udp(target)
    peer.send(request("INVITE", target, peer, call_id="u", body=audio_sdp(44000)))
    ok = await peer.response()
    peer.send(request("ACK", target, peer, call_id="u", to_tag=ok.to_addr.tag))
    held = audio_sdp(44000).replace("sendrecv", "sendonly")
    peer.send(request("UPDATE", target, peer, call_id="u", cseq=2, to_tag=ok.to_addr.tag, body=held))
    answer = await peer.response()
    assert answer.status_code == 200 and answer.body.decode() == audio_sdp(42010)
    peer.send(request("UPDATE", target, peer, call_id="u", cseq=2, to_tag=ok.to_addr.tag, body=held))
    assert (await peer.response()).status_code == 500  # CSeq not above the last: refused in words
    assert not calls[0].ended.is_set()
