"""The error code a client's offer ends in (issue #13): "retry" only where offering again helps (a
crossed offer, a busy peer), "offer_refused" with the node's reason in words otherwise, so the join
page shows the refusal instead of offering in a loop."""

from __future__ import annotations

from mcu.peer.errors import Glare, PeerBusy
from mcu.peer.negotiation import NegotiationError
from signaling.errors import bad_request, offer_error, unavailable

REASON = "the offer's video codecs are VP8; this meeting takes H264"


def test_a_crossed_offer_or_a_busy_peer_is_retry():
    for exc in (Glare("the server's offer waits for its answer"), PeerBusy("queue full")):
        api = offer_error(exc)
        assert api is not None and (api.code, api.status) == ("retry", 409), api


def test_an_offer_the_node_cannot_serve_is_refused_with_its_reason_in_words():
    api = offer_error(NegotiationError(REASON))
    assert api is not None and (api.code, api.status, api.message) == ("offer_refused", 400, REASON)
    checked = offer_error(bad_request("the offer has no a=fingerprint", "sdp"))  # signaling's own check
    assert checked is not None and (checked.code, checked.message, checked.field) == (
        "offer_refused",
        "the offer has no a=fingerprint",
        "sdp",
    )


def test_other_errors_keep_their_code_and_a_server_fault_stays_unclassified():
    api = offer_error(unavailable("this server runs without a media node (media: none)"))
    assert api is not None and api.code == "unavailable"
    assert offer_error(RuntimeError("bug")) is None
