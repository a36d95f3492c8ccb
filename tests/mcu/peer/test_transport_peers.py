"""PeerTransport with real aiortc peers over UDP: what the far side decodes (#13).

DTLS in both roles against a peer with an ECDSA and with an RSA certificate.
Our answer to an ``actpass`` or ``passive`` offer says ``a=setup:active`` (we are the DTLS client);
to an ``active`` offer it says ``passive`` (we serve). aiortc as installed offers only ECDHE-ECDSA
suites as a client, which a server holding an RSA certificate cannot pick ("no shared cipher"):
``mcu.fence.offer_rsa_suites`` adds the ECDHE-RSA ones. The RSA peer here is an aiortc client
given an RSA certificate (and the RSA suites, without which it could not serve with it);
tests/interop has GStreamer's webrtcbin, a real one.

Routing without SSRCs or MID (RFC 8843 §9.2): a publisher whose offer has no ``a=ssrc`` and no
MID header extension is routed by its payload types.
"""

from __future__ import annotations

import datetime
import re
from typing import Callable

import pytest
from aiortc import RTCCertificate, RTCPeerConnection
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mcu.fence import offer_rsa_suites
from tests.support.media_clients import Client, PatternTrack, wait_for

pytestmark = pytest.mark.integration


def rsa_certificate() -> RTCCertificate:
    """A self-signed RSA 2048 certificate, as GStreamer's DTLS elements make."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rsa-peer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return RTCCertificate(key=key, cert=cert)  # type: ignore[arg-type]  # aiortc annotates EC keys only


def use_rsa_certificate(pc: RTCPeerConnection) -> None:
    """Give a test client an RSA certificate before it adds transceivers (aiortc has no public way)."""
    pc._RTCPeerConnection__certificates = [rsa_certificate()]  # type: ignore[attr-defined]


class RewrittenOffers:
    """The media node as seen by a client whose offers are rewritten on the way (what another
    client would have offered)."""

    def __init__(self, node, rewrite: Callable[[str], str]) -> None:
        self.node, self.rewrite = node, rewrite

    async def open_peer(self, spec, on_event):
        peer = await self.node.open_peer(spec, on_event)
        handle_offer = peer.handle_offer

        async def rewritten(sdp: str) -> str:
            return await handle_offer(self.rewrite(sdp))

        peer.handle_offer = rewritten
        return peer


def setup_active(sdp: str) -> str:
    """An offer that says ``a=setup:active``: we must serve (answer ``passive``)."""
    return sdp.replace("a=setup:actpass", "a=setup:active")


def without_ssrcs_or_mid(sdp: str) -> str:
    """An offer made before media flows, by a sender that does not stamp the MID extension."""
    return re.sub(
        r"a=(ssrc|ssrc-group|msid):[^\r\n]*\r\n|a=extmap:\d+ urn:ietf:params:rtp-hdrext:sdes:mid\r\n", "", sdp
    )


@pytest.mark.parametrize("our_role", ["active", "passive"])
@pytest.mark.parametrize("certificate", ["ecdsa", "rsa"])
async def test_media_flows_both_ways_in_either_dtls_role_with_either_certificate(
    local_media_node, our_role, certificate
):
    node = RewrittenOffers(local_media_node, setup_active) if our_role == "passive" else local_media_node
    peer = Client(node, "m-dtls", "peer", video=PatternTrack(200))
    if certificate == "rsa":
        use_rsa_certificate(peer.pc)
    other = Client(local_media_node, "m-dtls", "other", video=PatternTrack(40))
    try:
        await peer.join()
        if certificate == "rsa":  # before ICE completes: the suites it may serve with its certificate
            offer_rsa_suites(peer.pc.getTransceivers()[0].receiver.transport)
        await other.join()
        # each decodes the other's picture: SRTP keys from the handshake work in both directions
        assert await wait_for(lambda: len(other.video_frames()) >= 5, timeout=15), peer.pc.connectionState
        assert await wait_for(lambda: len(peer.video_frames()) >= 5, timeout=10)
        assert other.video_frames()[-1][1] > 150 and peer.video_frames()[-1][1] < 90
    finally:
        await peer.close()
        await other.close()


async def test_a_publisher_without_ssrcs_or_mid_is_routed_by_payload_type(local_media_node):
    publisher = Client(
        RewrittenOffers(local_media_node, without_ssrcs_or_mid),
        "m-pt",
        "pub",
        video=PatternTrack(210),
        recv_video=False,
    )
    viewer = Client(local_media_node, "m-pt", "viewer", publish=False)
    try:
        await publisher.join()
        offered = without_ssrcs_or_mid(publisher.pc.localDescription.sdp)
        assert "a=ssrc" not in offered and "sdes:mid" not in offered and "a=mid:" in offered
        await viewer.join()
        assert await wait_for(lambda: len(viewer.video_frames()) >= 5, timeout=15), "the viewer got no picture"
        assert viewer.video_frames()[-1][1] > 170  # the publisher's bright pattern
        transport = publisher.peer.transport
        assert all(stream.ssrc for stream in publisher.peer.streams.values())
        assert transport.unknown_packets <= 3  # one per SSRC learnt (audio, video, perhaps RTX)
    finally:
        await publisher.close()
        await viewer.close()
