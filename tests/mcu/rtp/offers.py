"""SDP offers of SIP room systems, for the SDP tests and the fuzzer's seeds.

BARESIP is baresip 1.0's own offer as the research harness recorded its SDP (tests/sip's account:
PCMU, G722/16000, opus/48000/2, H264 pm=0). POLYCOM and CISCO are written from those vendors'
public SIP interop guides and traces: several H.264 formats with max-mbps/max-fs, G.722.1
(G7221/16000, G7221/32000), SIREN, G.729, H.263 and H.261 we skip, a slides line (a=content:slides,
RFC 4796) and BFCP m=application lines; Cisco's is SDES-SRTP with several suites."""

from __future__ import annotations

import base64

KEY_A = base64.b64encode(bytes(range(30))).decode()
KEY_B = base64.b64encode(bytes(range(30, 60))).decode()


def crlf(text: str) -> str:
    return "\r\n".join(line.strip() for line in text.strip().splitlines()) + "\r\n"


BARESIP = crlf("""
v=0
o=- 157895604 1266659801 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
a=tool:baresip 1.0.0
m=audio 10944 RTP/AVP 0 9 96 101
a=rtpmap:0 PCMU/8000
a=rtpmap:9 G722/8000
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:938812972 cname:sip:room@127.0.0.1:5062
a=minptime:20
a=ptime:20
m=video 8262 RTP/AVP 97
b=AS:1000
a=rtpmap:97 H264/90000
a=fmtp:97 packetization-mode=0;profile-level-id=42e01f
a=sendrecv
a=label:2
a=ssrc:274094763 cname:sip:room@127.0.0.1:5062
a=framerate:25.00
a=rtcp-fb:* nack pli
a=content:main
""")

POLYCOM = crlf("""
v=0
o=GroupSeries 1234567890 1 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
b=AS:2048
t=0 0
m=audio 49200 RTP/AVP 115 102 9 15 0 8 18 101
a=rtpmap:115 G7221/32000
a=fmtp:115 bitrate=48000
a=rtpmap:102 G7221/16000
a=fmtp:102 bitrate=32000
a=rtpmap:9 G722/8000
a=rtpmap:15 G728/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:18 G729/8000
a=fmtp:18 annexb=no
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
m=video 49202 RTP/AVP 109 110 111 96 34 31
b=AS:1920
a=rtpmap:109 H264/90000
a=fmtp:109 profile-level-id=640020;max-mbps=245000;max-fs=8192;packetization-mode=1
a=rtpmap:110 H264/90000
a=fmtp:110 profile-level-id=428020;max-mbps=245000;max-fs=8192;packetization-mode=1
a=rtpmap:111 H264/90000
a=fmtp:111 profile-level-id=428020;max-mbps=245000;max-fs=8192
a=rtpmap:96 H263-1998/90000
a=fmtp:96 CIF4=1;CIF=1;QCIF=1
a=rtpmap:34 H263/90000
a=fmtp:34 CIF4=1;CIF=1;QCIF=1
a=rtpmap:31 H261/90000
a=rtcp-fb:* ccm fir
a=rtcp-fb:* nack pli
a=content:main
a=label:1
a=sendrecv
m=video 49204 RTP/AVP 109 96
b=AS:768
a=rtpmap:109 H264/90000
a=fmtp:109 profile-level-id=428020;packetization-mode=1
a=rtpmap:96 H263-1998/90000
a=content:slides
a=label:3
a=sendrecv
m=application 49206 TCP/BFCP *
a=floorctrl:c-s
a=setup:actpass
a=connection:new
a=confid:1
a=userid:2
a=floorid:1 mstrm:3
m=application 49208 RTP/AVP 100
a=rtpmap:100 H224/4800
a=sendrecv
""")

CISCO = crlf(f"""
v=0
o=tandberg 0 1 IN IP6 2001:db8::20
s=-
c=IN IP6 2001:db8::20
b=AS:6000
t=0 0
m=audio 2326 RTP/SAVP 108 9 0 8 101
b=TIAS:128000
a=rtpmap:108 MP4A-LATM/90000
a=fmtp:108 profile-level-id=24;object=23;bitrate=64000
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:{base64.b64encode(bytes(46)).decode()}
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}|2^48
a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:{KEY_B}|2^48
a=rtcp:2327 IN IP6 2001:db8::20
a=sendrecv
m=video 2328 RTP/SAVP 126 97
b=TIAS:6000000
a=rtpmap:126 H264/90000
a=fmtp:126 profile-level-id=640028;max-mbps=245000;max-fs=8160;max-dpb=32400;packetization-mode=1
a=rtpmap:97 H264/90000
a=fmtp:97 profile-level-id=42e016;max-mbps=108000;max-fs=3600
a=rtcp-fb:* nack pli
a=rtcp-fb:* ccm fir
a=rtcp-fb:* ccm tmmbr
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_B}|2^48|1:4
a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:{KEY_A}
a=content:main
a=label:11
a=rtcp-mux
a=sendrecv
m=video 2330 RTP/SAVP 126
b=TIAS:6000000
a=rtpmap:126 H264/90000
a=fmtp:126 profile-level-id=428016;packetization-mode=1
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY_A}
a=content:slides
a=label:12
a=sendrecv
m=application 5070 UDP/BFCP *
a=floorctrl:c-s
a=confid:1
a=floorid:2 mstrm:12
a=userid:1
""")
