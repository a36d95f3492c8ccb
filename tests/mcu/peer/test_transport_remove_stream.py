"""PeerTransport.remove_stream (#13): a stream the peer stopped publishing gets no more packets by its
SSRC, RTX SSRC, MID or payload type, and does not block the payload-type fallback (RFC 8843 §9.2)
for the stream that replaces it on the line."""

from __future__ import annotations

import struct

from tests.mcu.peer.test_transport_unit import MID_EXT, OPUS, Recorder, camera, mic, rtp


async def test_a_removed_stream_gets_nothing_by_ssrc_rtx_or_mid():
    link = Recorder().transport()
    kept, gone = mic("a/0"), camera("a/1")
    link.add_stream(kept, "0", [0x1111], [], MID_EXT, OPUS)
    link.add_stream(gone, "1", [0x2222], [0x2223], MID_EXT, 102, 103)
    link.remove_stream(gone)
    await link.on_rtp_data(rtp(1, 0x2222, pt=102))
    await link.on_rtp_data(rtp(2, 0x2223, payload=struct.pack("!H", 1) + b"again", pt=103))
    await link.on_rtp_data(rtp(3, 0x2224, mid=b"1", pt=102))
    assert (gone.packets, gone.rtx_received) == (0, 0)
    assert set(link.by_ssrc) == {0x1111}
    await link.on_rtp_data(rtp(4, 0x1111))
    assert kept.packets == 1  # the other stream is routed as before


async def test_the_line_s_new_stream_learns_its_ssrc_by_payload_type_again():
    """A client stops sending (the old stream is popped), then sends again on the same line with
    an offer made before media flows (no a=ssrc, no MID extension, as webrtcbin's): the new
    stream is the payload type's only candidate, not one of two."""
    link = Recorder().transport()
    old = camera("a/1")
    link.add_stream(old, "1", [], [], 0, 102, 103)
    link.remove_stream(old)
    new = camera("a/1b")
    link.add_stream(new, "1", [], [], 0, 102, 103)
    await link.on_rtp_data(rtp(5, 0x71DE, pt=102))
    await link.on_rtp_data(rtp(3, 0x72DE, payload=struct.pack("!H", 5) + b"again", pt=103))
    assert (new.ssrc, new.packets, new.rtx_received) == (0x71DE, 2, 1)  # the RTX restored
    assert (old.ssrc, old.packets) == (None, 0)


async def test_removing_a_stream_bound_by_payload_type_frees_its_ssrc_and_types():
    link = Recorder().transport()
    first = camera("a/1")
    link.add_stream(first, "1", [], [], 0, 102, 103)
    await link.on_rtp_data(rtp(1, 0x1001, pt=102))
    await link.on_rtp_data(rtp(1, 0x1002, payload=struct.pack("!H", 1) + b"again", pt=103))
    assert first.ssrc == 0x1001 and first.rtx_received == 1
    link.remove_stream(first)
    link.remove_stream(first)  # twice: nothing left to forget
    assert not link.by_ssrc and not link._by_pt and not link._by_rtx_pt and not link._rtx_bound
