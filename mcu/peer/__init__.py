"""One endpoint's peer connection: offer/answer and renegotiation, the m-lines it publishes and
receives, its DTLS/SRTP transport feeding the SFU, RTCP duties, ICE host pin and UDP guard."""
