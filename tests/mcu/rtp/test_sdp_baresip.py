"""Our SDP answer as a real room system takes it: baresip 1.0 (Debian) dials us, we answer its
offer with ``mcu.rtp.sdp`` over a bare SIP exchange (INVITE, 200, ACK on one UDP socket), and what
baresip then sends is checked where our answer told it to: RTP of the payload types we chose on
our RTP ports (H.264 as single NAL units: the packetization mode 0 we answered), RTCP on port + 1,
and with SDES-SRTP packets that the key of its own a=crypto line decrypts; our packets, keyed from
our answer's a=crypto, reach its audio stream (it logs the stream established, no decrypt failure).

The config is written here (the gateway's baresip configs under tests/sip belong to its tests);
skipped where baresip is not installed."""

from __future__ import annotations

import select
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mcu.rtp.sdp import Chosen, LocalMedia, answer_crypto, build_answer, choose, parse_offer
from mcu.fence import plain_rtp_session
from mcu.rtp.sdes import inbound_session, outbound_session

BARESIP = shutil.which("baresip")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BARESIP is None, reason="baresip (Debian package baresip) is not installed"),
]
MODULES = "g711 g722 opus ausine aufile avcodec fakevideo srtp".split()
CONFIG = """poll_method epoll
sip_listen 127.0.0.1:{sip_port}
sip_transports udp
net_interface 127.0.0.1
audio_source ausine,440
audio_player aufile,{dir}/rx.wav
ausrc_srate 48000
ausrc_channels 2
video_source fakevideo,nil
video_display fakevideo,nil
video_size 320x240
video_bitrate 300000
video_fps 15
rtcp_mux no
avcodec_h264enc libx264
avcodec_h264dec h264
module_path /usr/lib/baresip/modules
"""
ACCOUNT = (
    "<sip:room@127.0.0.1>;regint=0;answermode=auto;audio_codecs=PCMU,G722/16000,opus/48000/2;video_codecs=H264{enc}\n"
)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rtp_pair() -> tuple[socket.socket, socket.socket]:
    """An RTP socket on an even port and its RTCP socket on the next one."""
    for _ in range(50):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            if port % 2 == 0:
                rtcp.bind(("127.0.0.1", port + 1))
                return rtp, rtcp
        except OSError:
            pass
        rtp.close()
        rtcp.close()
    raise RuntimeError("no free RTP/RTCP port pair")


def sip_message(data: bytes) -> tuple[str, dict[str, list[str]], str]:
    head, _, body = data.decode().partition("\r\n\r\n")
    start, *lines = head.split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return start, headers, body


def ok_200(headers: dict[str, list[str]], port: int, sdp: str) -> bytes:
    lines = ["SIP/2.0 200 OK"] + [f"Via: {v}" for v in headers["via"]]
    lines += [f"From: {headers['from'][0]}", f"To: {headers['to'][0]};tag=giaoban1"]
    lines += [f"Call-ID: {headers['call-id'][0]}", f"CSeq: {headers['cseq'][0]}", f"Contact: <sip:gw@127.0.0.1:{port}>"]
    lines += ["Content-Type: application/sdp", f"Content-Length: {len(sdp.encode())}", "", sdp]
    return "\r\n".join(lines).encode()


def run_call(tmp_path: Path, enc: str, prefs: list[str]):
    """baresip dials us; returns (chosen, received: line index -> list of RTP packets, RTCP seen per line, log)."""
    config = tmp_path / "baresip"
    config.mkdir()
    sip_port = free_udp_port()
    text = CONFIG.format(sip_port=sip_port, dir=config) + "".join(f"module {m}.so\n" for m in MODULES)
    (config / "config").write_text(text + "module_app account.so\nmodule_app menu.so\n")
    (config / "accounts").write_text(ACCOUNT.format(enc=enc))
    (config / "contacts").write_text("")
    sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sip.bind(("127.0.0.1", 0))
    port = sip.getsockname()[1]
    log_path = tmp_path / "baresip.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [BARESIP, "-f", str(config), "-e", f"/dial sip:7001@127.0.0.1:{port}", "-t", "30"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    sockets: list[tuple[socket.socket, socket.socket]] = []
    try:
        sip.settimeout(15)
        data, peer = sip.recvfrom(65536)
        start, headers, body = sip_message(data)
        assert start.startswith("INVITE "), start
        offer = parse_offer(body)
        chosen = choose(offer, prefs, ["H264"])
        locals: list[LocalMedia | None] = []
        for c in chosen:
            if c is None:
                locals.append(None)
                continue
            sockets.append(rtp_pair())
            ours = answer_crypto(c.crypto) if c.crypto else None
            locals.append(LocalMedia(sockets[-1][0].getsockname()[1], ours, 800 if c.kind == "video" else None))
        reply = ok_200(headers, port, build_answer(offer, chosen, locals, "127.0.0.1"))
        sip.sendto(reply, peer)
        received, rtcp = collect(sip, reply, peer, [c for c in chosen if c], sockets)
        audio, local = chosen[0], locals[0]
        if audio is not None and local is not None:
            send_audio(sockets[0][0], (offer.lines[0].address, offer.lines[0].port), audio, local)
        time.sleep(0.3)
        return chosen, received, rtcp, log_path.read_text(errors="replace")
    finally:
        proc.kill()  # no BYE wanted: nothing here answers it
        proc.wait(10)
        for pair in sockets:
            pair[0].close()
            pair[1].close()
        sip.close()


def send_audio(sock: socket.socket, to: tuple[str, int], chosen: Chosen, local: LocalMedia) -> None:
    """Half a second of audio to baresip, protected with the key of OUR answer's a=crypto line."""
    session = outbound_session(local.crypto) if local.crypto else plain_rtp_session()
    payload = b"\xff" * 160 if chosen.codec == "PCMU" else b"\xf8\xff\xfe"
    for seq in range(25):
        header = bytes([0x80, chosen.format.pt]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big")
        sock.sendto(session.protect(header + (0x5EED).to_bytes(4, "big") + payload), to)
        time.sleep(0.02)


def collect(sip, reply, peer, chosen: list[Chosen], sockets) -> tuple[dict[int, list[bytes]], dict[int, int]]:
    """RTP per chosen line (decrypted for SRTP) and RTCP counts, until each line has 20 packets and
    RTCP, or 15 s; a retransmitted INVITE gets the 200 again."""
    sessions = {c.index: inbound_session(c.crypto) if c.crypto else None for c in chosen}
    received: dict[int, list[bytes]] = {c.index: [] for c in chosen}
    rtcp = {c.index: 0 for c in chosen}
    owner = {s: (c.index, kind) for c, pair in zip(chosen, sockets) for s, kind in zip(pair, ("rtp", "rtcp"))}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not all(len(r) >= 20 and rtcp[i] for i, r in received.items()):
        ready, _, _ = select.select([sip, *owner], [], [], 0.5)
        for sock in ready:
            data = sock.recv(65536)
            if sock is sip:
                if data.startswith(b"INVITE"):
                    sip.sendto(reply, peer)
                continue
            index, kind = owner[sock]
            if kind == "rtcp":
                rtcp[index] += 1
            else:
                session = sessions[index]
                received[index].append(session.unprotect(data) if session else data)
    return received, rtcp


@pytest.mark.parametrize(
    "enc, prefs, audio",
    [("", [], ("OPUS", True)), (";mediaenc=srtp-mand", ["PCMU"], ("PCMU", True))],
    ids=["plain-opus", "srtp-pcmu"],
)
def test_baresip_takes_our_answer_and_sends_what_it_says(tmp_path, enc, prefs, audio):
    chosen, received, rtcp, log = run_call(tmp_path, enc, prefs)
    a, v = chosen[0], chosen[1]
    assert a is not None and v is not None, log[-3000:]
    assert (a.codec, a.dtmf is not None) == audio
    assert (v.codec, v.h264) == ("H264", (0, 0x42))
    assert bool(a.crypto) == bool(v.crypto) == bool(enc)
    for c in (a, v):
        packets = received[c.index]
        assert len(packets) >= 20, (c.kind, len(packets), log[-3000:])
        assert {p[1] & 0x7F for p in packets} <= {c.format.pt} | ({c.dtmf.pt} if c.dtmf else set())
        assert rtcp[c.index] > 0, f"no RTCP on {c.kind}'s port + 1"
    nal_types = {p[12] & 0x1F for p in received[v.index]}
    assert nal_types and nal_types <= set(range(1, 24)), nal_types  # single NAL units: mode 0
    # what we sent reached its audio stream (a wrong key: "srtp: failed to decrypt RTP packet")
    assert "incoming rtp for 'audio' established" in log and "failed to decrypt" not in log, log[-3000:]
    if enc:
        assert "SRTP is Enabled (cryptosuite=AES_CM_128_HMAC_SHA1_80)" in log, log[-3000:]
