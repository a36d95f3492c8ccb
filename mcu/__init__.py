"""Media core: selective forwarding (SFU) on aiortc's ICE/DTLS/SRTP stack, plus a composite and a
mix (MCU) for thin links, recording and live streaming.

Layers, each importing only the ones below it (``tests/test_architecture.py`` checks it):

* ``api``      the seam signaling talks to: MediaNode, MediaPeer, PeerSpec, EventSink, errors.
* ``fence``    the private hooks into aiortc, aioice and pylibsrtp, checked at start.
* ``sfu/``     the packet path: RTP/RTCP bytes, per-publisher streams, per-subscriber rewrite
               and send, the switch (``Router``). Imports nothing above it.
* ``compose/`` ``audio/`` ``record/``  leaves: compositor, mixer, recorders, fed with frames.
* ``bridge/``  between the SFU and the MCU leaves: depacketize, packetize, rendition_policy (the
               composite's quality levels and who gets SFU, MCU or both), the meeting's pipeline.
* ``peer/``    one endpoint's peer connection: negotiation, the DTLS/SRTP transport hook-up,
               RTCP duties, ICE address pin, the UDP guard.
* ``meeting/`` routing policy of one meeting (slots, floor, speaker, slides first), its
               extensions (MCU pipeline, cascade trunk, later SIP legs), link quality.
* ``cascade/`` an edge node's trunk to the meeting's origin node.
* ``node``     ``LocalMediaNode``: the in-process MediaNode; wires the layers together.
"""
