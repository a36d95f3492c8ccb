"""Media core: selective forwarding on aiortc's ICE/DTLS/SRTP stack, without transcoding.

Modules by concept: ``node`` (the MediaNode signaling talks to), ``peer`` (one endpoint's
peer connection, owner task, negotiation), ``link`` (interception of a peer's DTLS transport),
``meeting`` (routing policy: slots, floor, active speaker, slides priority), ``router``
(switching and RTCP feedback), ``stream`` (per-publisher hot path: key frames, NACK cache,
fan-out), ``subscriber`` (per-subscriber rewrite and send), ``rtp_header`` (byte-level RTP/RTCP),
``speaker`` (RFC 6464 active speaker), ``negotiation`` (codecs, SDP facts), ``ice`` (host
address pin), ``tracks`` (idle placeholder tracks).

MCU path for thin links (a meeting's ``composite``/``mix`` slots): ``renditions_policy`` (who gets
SFU, MCU or both; start rendition by link class; rendition hysteresis), ``mcu_output`` (the meeting's
pipeline: taps publishers, runs ``compose.Compositor`` and ``audio.AudioMixer``, feeds one
synthetic stream per rendition and per listener through the SFU's own rewrite/send path),
``depacketize`` / ``packetize`` (VP8 frames and Opus payloads to and from RTP).
"""
