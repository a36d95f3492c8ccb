"""The packet path (hot path): raw RTP/RTCP bytes in, SRTP protected in place, non-blocking sendto,
dropped when the socket buffer is full. Imports nothing of mcu above it."""
