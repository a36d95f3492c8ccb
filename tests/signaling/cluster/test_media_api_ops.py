"""The node API's per-peer operations reach the MediaPeer: the SIP gateway's key frame request
(SIP INFO picture_fast_update) crosses a cluster as op "keyframe"."""

from __future__ import annotations

import pytest

from signaling.cluster.media_api import _serve

pytestmark = pytest.mark.unit


class Peer:
    def __init__(self) -> None:
        self.keyframes = 0

    async def request_keyframe(self) -> None:
        self.keyframes += 1


async def events(event: dict) -> None:  # pragma: no cover - no event in these calls
    pass


async def test_keyframe_op_asks_the_peer_for_a_key_frame():
    peer = Peer()
    assert await _serve(None, peer, {"op": "keyframe", "id": 1}, events) == {}  # type: ignore[arg-type]
    assert peer.keyframes == 1


async def test_an_unknown_op_names_keyframe_among_the_known_ones():
    with pytest.raises(Exception, match="mute or keyframe"):
        await _serve(None, Peer(), {"op": "nope"}, events)  # type: ignore[arg-type]
