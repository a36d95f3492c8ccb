"""Plain RTP legs for SIP room systems (#14): their SDP (``sdp``: offer, codec choice, answer),
SDES-SRTP keys (``sdes``), and the leg itself (``leg``), one more kind of media peer."""
