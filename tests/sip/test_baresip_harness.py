"""The baresip harness checked against baresip itself (#14): two headless room systems call each
other, in plain RTP and with SDES-SRTP, and each decodes the other's camera colour and hears its
440 Hz tone. What the gateway tests rely on (dial, events, snapshot_recv, the sndfile dump, hang
up, stop) is proven here before a giaoban server is involved."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.baresip import mean_colour, tone_peak_hz

pytestmark = [pytest.mark.integration, pytest.mark.timeout(40)]

RED, BLUE = (255, 0, 0), (0, 0, 255)


@pytest.mark.parametrize("srtp", [False, True], ids=["rtp", "srtp"])
async def test_two_baresips_see_and_hear_each_other(baresips, srtp):
    caller = await baresips("caller", colour=RED, srtp=srtp, answermode="manual").start()
    callee = await baresips("callee", colour=BLUE, srtp=srtp).start()

    await caller.dial(callee.uri)
    established = await caller.wait_event("CALL_ESTABLISHED", "CALL_CLOSED")
    assert established.type == "CALL_ESTABLISHED", established.raw
    await callee.wait_event("CALL_ESTABLISHED")

    # Each decodes the other's camera (asserted at the receiving end, with the codec round trip's tolerance).
    assert mean_colour(await callee.wait_picture(RED)) != mean_colour(await caller.wait_picture(BLUE))
    if srtp:
        assert sorted(callee.srtp_enabled()) == ["audio", "video"], callee.log_tail()
        assert {e.type for e in callee.events} >= {"CALL_MENC"}
    else:
        assert callee.srtp_enabled() == []

    await asyncio.sleep(1.5)  # a second of tone to analyse
    await caller.hangup()
    closed = await callee.wait_event("CALL_CLOSED")
    assert closed.peer.startswith("sip:caller@127.0.0.1")
    await callee.stop()  # the sndfile dump is complete once the call is over

    samples, rate = callee.received_audio()
    assert len(samples) > rate // 2, "less than half a second of audio received"
    peak, share = tone_peak_hz(samples[-rate // 2 :], rate)
    assert abs(peak - 440) < 10 and share > 0.5, (peak, share)
