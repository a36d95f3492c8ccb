"""SRTP out: the primitives that write an outgoing RTP packet and protect it in place.

A bound output (``subscriber.Output.bind_transport``) holds a writable view of its subscriber's libsrtp
packet buffer. The fan-out loop (``stream.Stream.on_rtp``) and the slow path
(``subscriber.Output.send_plain``) copy a packet into that view, patch sequence number, timestamp
and SSRC (and a VP8 picture id) with ``pack_seq_ts_ssrc`` / ``pack_picture_id``, encrypt it where
it lies with ``protect`` and ``sendto`` the result: no allocation per packet and subscriber.
These are module-level names so that the hot loop reaches each with one global lookup.
"""

from __future__ import annotations

from mcu.fence import SRTP_BUFFER, srtp_protect
from mcu.sfu.rtp_header import SEQ_TS_SSRC, U16

# Largest packet written: protect may append up to 144 bytes (pylibsrtp.SRTP_MAX_TRAILER_LEN)
# to what the buffer holds; a longer packet is dropped, never written past the buffer.
MAX_PACKET = SRTP_BUFFER - 144

#: (buffer, 2, seq, timestamp, ssrc): the RTP header's bytes 2-11
pack_seq_ts_ssrc = SEQ_TS_SSRC.pack_into
#: (buffer, offset, 0x8000 | picture id): VP8's 15-bit picture id with its M bit
pack_picture_id = U16.pack_into
#: (libsrtp context, buffer as C data, int * length) -> 0 when protected in place
protect = srtp_protect
