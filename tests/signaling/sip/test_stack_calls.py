"""Two SIP stacks call each other over UDP, TCP and TLS on 127.0.0.1 (#14): what each side observes."""

from __future__ import annotations

import asyncio
import datetime
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mcu.api import OfferRefused
from signaling.sip.stack import DialFailed, Refusal
from tests.signaling.sip.conftest import audio_sdp

pytestmark = pytest.mark.integration


def uri_of(stack, transport: str, user: str = "7001") -> str:
    host, port = stack.addresses[transport]
    if transport == "tls":
        return f"sips:{user}@{host}:{port}"
    return f"sip:{user}@{host}:{port}" + ("" if transport == "udp" else f";transport={transport}")


class Answering:
    """on_invite of a UAS that rings, answers with ``sdp`` (or its offer when the INVITE had none)."""

    def __init__(self, sdp: str | None = None) -> None:
        self.calls = []
        self.sdp = sdp or audio_sdp(42000)
        self.got = asyncio.Event()

    async def __call__(self, call) -> None:
        self.calls.append(call)
        self.got.set()
        await call.ringing()
        await call.answer(self.sdp)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_offer_answer_call_and_bye_from_either_side(stacks, transport):
    uas_side = Answering()
    uas = await stacks(uas_side)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, transport), from_user="gw", sdp=audio_sdp(43000))
    answer = await out.wait_answered(timeout=5)
    assert answer == uas_side.sdp and out.ringing.is_set()
    call = uas_side.calls[0]
    assert call.transport == transport and call.offer_sdp == audio_sdp(43000) and call.request_uri_user == "7001"
    assert call.from_user == "gw" and call.source[0] == "127.0.0.1"
    assert await call.wait_ack(5) is None
    await call.hangup()  # the UAS hangs up: the dialer sees the BYE
    await asyncio.wait_for(out.ended.wait(), 5)
    assert (out.end_reason, call.end_reason) == ("bye", "hangup")
    assert not uas.calls and not uac.calls


async def test_delayed_offer_between_stacks_the_200_offers_and_the_ack_answers(stacks):
    uas_side = Answering()
    uas = await stacks(uas_side)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "udp"), from_user="gw")
    offer = await out.wait_answered(timeout=5)
    call = uas_side.calls[0]
    assert call.offer_sdp is None and offer == uas_side.sdp
    await out.ack(audio_sdp(43010))
    assert await call.wait_ack(5) == audio_sdp(43010)
    await out.hangup()
    await asyncio.wait_for(call.ended.wait(), 5)
    assert call.end_reason == "bye"


async def test_reject_with_warning_reaches_the_dialer(stacks):
    async def refuse(call):
        call.reject(488, "Not Acceptable Here", warning='no common codec: offered G729; we take PCMU "or" PCMA')

    uas = await stacks(refuse)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "tcp"), from_user="gw", sdp=audio_sdp())
    with pytest.raises(DialFailed) as failed:
        await out.wait_answered(timeout=5)
    assert (failed.value.code, failed.value.reason) == (488, "Not Acceptable Here")
    warning = out.final.headers.get_first("warning")
    assert warning.startswith("305 127.0.0.1 ") and 'we take PCMU \\"or\\" PCMA' in warning
    assert out.end_reason == "failed" and not uac.calls and not uas.calls


async def test_cancel_while_ringing_gives_487_and_ends_both_sides(stacks):
    ringing = []

    async def ring(call):
        ringing.append(call)
        await call.ringing()

    uas = await stacks(ring)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "udp"), from_user="gw")
    await asyncio.wait_for(out.ringing.wait(), 5)
    await out.cancel()
    with pytest.raises(DialFailed) as failed:
        await out.wait_answered(timeout=5)
    assert failed.value.code == 487
    await asyncio.wait_for(ringing[0].ended.wait(), 5)
    assert (ringing[0].end_reason, out.end_reason) == ("cancel", "cancel")
    assert not uas.calls and not uac.calls


async def test_reinvite_goes_to_on_reinvite_and_a_refusal_keeps_the_call(stacks):
    uas_side = Answering()
    uas = await stacks(uas_side)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "udp"), from_user="gw", sdp=audio_sdp(43020))
    await out.wait_answered(timeout=5)
    call = uas_side.calls[0]
    offers = []

    async def on_reinvite(offer):
        offers.append(offer)
        if "sendonly" in offer:
            return audio_sdp(42000).replace("sendrecv", "recvonly")
        raise Refusal(488, "Not Acceptable Here", "no video codec in common")

    call.on_reinvite = on_reinvite
    held = await out.reinvite(audio_sdp(43020).replace("sendrecv", "sendonly"))
    assert "a=recvonly" in held and "a=sendonly" in offers[0]
    with pytest.raises(Refusal) as refused:
        await out.reinvite(audio_sdp(43020) + "m=video 43022 RTP/AVP 96\r\n")
    assert refused.value.code == 488
    call.on_reinvite = lambda offer: refuse_offer()
    with pytest.raises(Refusal) as refused:
        await out.reinvite(audio_sdp(43020))
    assert refused.value.code == 488 and refused.value.warning.startswith('305 127.0.0.1 "offered G729 only; we take')
    assert not call.ended.is_set() and not out.ended.is_set()
    await out.hangup()


async def refuse_offer():
    raise OfferRefused("offered G729 only; we take PCMU, PCMA, G722, OPUS")


async def test_offerless_reinvite_the_room_offers_in_its_200_and_our_answer_goes_in_the_ack(stacks):
    uas_side = Answering()
    uas = await stacks(uas_side)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "tcp"), from_user="gw", sdp=audio_sdp(43030))
    await out.wait_answered(timeout=5)
    call = uas_side.calls[0]
    asked = []

    async def offer_again(offer):
        asked.append(offer)
        return audio_sdp(42002)

    call.on_reinvite = offer_again

    async def answer_of(offer):
        assert offer == audio_sdp(42002)
        return audio_sdp(43032)

    await out.reinvite_for_offer(answer_of)
    assert asked == [None] and await call.wait_ack(5) == audio_sdp(43032) and out.local_sdp == audio_sdp(43032)
    await out.hangup()


async def test_info_both_ways_reaches_on_info(stacks):
    uas_side = Answering()
    uas = await stacks(uas_side)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "tcp"), from_user="gw", sdp=audio_sdp())
    await out.wait_answered(timeout=5)
    call = uas_side.calls[0]
    seen = []
    out.on_info = lambda ctype, body: seen.append(("uac", ctype, body))
    call.on_info = lambda ctype, body: seen.append(("uas", ctype, body))
    xml = '<?xml version="1.0"?><media_control><vc_primitive><to_encoder><picture_fast_update/></to_encoder></vc_primitive></media_control>'
    assert await call.send_info("application/media_control+xml", xml) == 200
    assert await out.send_info("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n") == 200
    assert seen == [
        ("uac", "application/media_control+xml", xml),
        ("uas", "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n"),
    ]
    await call.hangup()


async def test_reliable_ringing_is_pracked_before_the_answer(stacks):
    uas_side = Answering()
    uas = await stacks(uas_side)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "udp"), from_user="gw", sdp=audio_sdp())
    await out.wait_answered(timeout=5)
    assert uas.counts["PRACK"] == 1  # our INVITE says Supported: 100rel, so the 180 was reliable
    await out.hangup()


async def test_session_timer_refreshes_keep_a_call_and_a_missing_refresh_ends_it(stacks):
    uas_side = Answering()
    uas = await stacks(uas_side, session_expires=2, min_se=1)
    uac = await stacks(session_expires=2, min_se=1)
    out = await uac.dial(uri_of(uas, "udp"), from_user="gw", sdp=audio_sdp())
    await out.wait_answered(timeout=5)
    call = uas_side.calls[0]
    assert out._session == (2, True)  # we asked, the UAS says refresher=uac
    await asyncio.sleep(3.5)
    assert uas.counts["UPDATE"] >= 2 and not call.ended.is_set()
    out._timer.cancel()  # the dialer stops refreshing: the UAS ends the call (RFC 4028 §10)
    await asyncio.wait_for(call.ended.wait(), 4)
    assert call.end_reason == "session_expired"
    await asyncio.wait_for(out.ended.wait(), 2)
    assert out.end_reason == "bye"


def self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]), False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "sip.crt", tmp_path / "sip.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


async def test_tls_call_with_a_self_signed_certificate(stacks, tmp_path):
    cert, key = self_signed(tmp_path)
    uas_side = Answering()
    uas = await stacks(uas_side, transports=("udp", "tls"), tls={"tls_cert": cert, "tls_key": key})
    trusting = ssl.create_default_context(cafile=cert)
    uac = await stacks(transports=("tls",), tls_client=trusting, tls={"tls_cert": cert, "tls_key": key})
    out = await uac.dial(uri_of(uas, "tls"), from_user="gw", sdp=audio_sdp())
    assert await out.wait_answered(timeout=5) == uas_side.sdp
    call = uas_side.calls[0]
    assert call.transport == "tls" and "transport=tls" in call.invite.headers.get_first("contact")
    await out.hangup()
    await asyncio.wait_for(call.ended.wait(), 5)
    assert call.end_reason == "bye"
    untrusting = await stacks(transports=("tls",), tls={"tls_cert": cert, "tls_key": key})
    with pytest.raises(DialFailed) as failed:  # the default context checks the certificate
        await untrusting.dial(uri_of(uas, "tls"), from_user="gw")
    assert failed.value.code == 503 and "SSL" in failed.value.reason


async def test_a_cancel_while_we_set_up_media_is_no_error(stacks, caplog):
    slow = []

    async def on_invite(call):
        slow.append(call)
        await call.ringing()
        await asyncio.sleep(0.5)  # opening the media leg
        await call.answer(audio_sdp())  # CallGone: the room cancelled meanwhile

    uas = await stacks(on_invite)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "udp"), from_user="gw", sdp=audio_sdp())
    await asyncio.wait_for(out.ringing.wait(), 5)
    await out.cancel()
    await asyncio.sleep(0.7)
    assert slow[0].end_reason == "cancel" and not uas.calls
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize(
    "raised, expected",
    [
        (OfferRefused("offered G729 only; we take PCMU, PCMA"), (488, "Not Acceptable Here", "offered G729 only")),
        (Refusal(403, "Forbidden", "Sai mã PIN (wrong PIN)"), (403, "Forbidden", "Sai mã PIN (wrong PIN)")),
        (RuntimeError("a bug of ours"), (500, "Server Internal Error", None)),
    ],
)
async def test_what_on_invite_raises_is_the_answer_the_dialer_gets(stacks, raised, expected):
    async def refuse(call):
        raise raised

    uas = await stacks(refuse)
    uac = await stacks()
    out = await uac.dial(uri_of(uas, "udp"), from_user="gw", sdp=audio_sdp(43000))
    with pytest.raises(DialFailed) as failed:
        await out.wait_answered(timeout=5)
    code, reason, warning = expected
    assert (failed.value.code, failed.value.reason) == (code, reason)
    got = out.final.headers.get_first("warning")
    assert (got is None) if warning is None else (warning in got)
