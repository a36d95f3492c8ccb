"""Media core: selective forwarding on aiortc's ICE/DTLS/SRTP stack, without transcoding.

Modules by concept: ``node`` (the MediaNode signaling talks to), ``peer`` (one endpoint's
peer connection, owner task, negotiation), ``link`` (interception of a peer's DTLS transport),
``meeting`` (routing policy: slots, floor, active speaker, slides priority), ``router``
(switching and RTCP feedback), ``stream`` (per-publisher hot path: key frames, NACK cache,
fan-out), ``subscriber`` (per-subscriber rewrite and send), ``rtp_header`` (byte-level RTP/RTCP),
``speaker`` (RFC 6464 active speaker), ``negotiation`` (codecs, SDP facts), ``ice`` (host
address pin), ``tracks`` (idle placeholder tracks).
"""
