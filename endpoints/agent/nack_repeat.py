"""Repeat NACKs for video packets that are still missing, as browsers do.

aiortc's receiver sends a NACK for a gap only once, when the gap appears. On a commune's lossy
uplink that single RTCP packet is itself lost now and then; the hole is then never repaired and
the jitter buffer stalls until 512 packets later (about 20 s of frozen picture at 180p).
libwebrtc repeats a request every round trip; this loop does the same for an aiortc peer.
It reads private attributes of aiortc's RTCRtpReceiver (the NACK generator, the active and
the RTX SSRCs) through ``mcu.fence`` (``nack_state``, ``send_nack``; checked at the agent's
start): aiortc has no public API for this, and tests/endpoints/agent pin the behaviour.
"""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection

from mcu.fence import nack_state, send_nack

INTERVAL_S = 0.2  # about one round trip on a 150 ms commune link


async def repeat_nacks(pc: RTCPeerConnection, interval_s: float = INTERVAL_S) -> None:
    """Run until cancelled (or the connection closes)."""
    while pc.connectionState != "closed":
        await asyncio.sleep(interval_s)
        for transceiver in pc.getTransceivers():
            missing, active = nack_state(transceiver.receiver)  # media SSRCs only, never RTX
            if transceiver.kind != "video" or not missing or not active:
                continue
            ssrc = max(active, key=active.get)  # the media stream that spoke last
            await send_nack(transceiver.receiver, ssrc, sorted(missing))
