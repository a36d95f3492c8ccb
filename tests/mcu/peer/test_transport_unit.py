"""PeerTransport on its own: what it does with a decrypted RTP or RTCP packet handed to it, and
what it sends. A small fake stands in for aiortc's DTLS transport; packets go through real
libsrtp sessions and a real UDP socket on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import struct
from types import SimpleNamespace

import pytest
from pylibsrtp import Policy, Session

from mcu.peer import transport as transport_module
from mcu.peer.transport import PeerTransport
from mcu.sfu.rtp_header import FEEDBACK_NACK, FEEDBACK_PLI, nack, parse_feedback, pli
from mcu.sfu.stream import Stream
from mcu.sfu.subscriber import Output

MID_EXT = 3
OPUS = 111


def rtp(seq: int, ssrc: int, payload: bytes = b"opus", mid: bytes = b"", pt: int = OPUS) -> bytes:
    head = struct.pack("!BBHII", 0x90 if mid else 0x80, pt, seq, seq * 960, ssrc)
    if not mid:
        return head + payload
    element = bytes(((MID_EXT << 4) | (len(mid) - 1),)) + mid
    element += bytes(-len(element) % 4)
    return head + b"\xbe\xde" + struct.pack("!H", len(element) // 4) + element + payload


def mic(name: str = "a/0") -> Stream:
    return Stream(stream_id=name, endpoint_id="a", kind="audio", source="mic", codec="opus", clock_rate=48000)


class Recorder:
    """The transport's callbacks."""

    def __init__(self) -> None:
        self.up = 0
        self.down = 0
        self.feedback: list[tuple[Output, list]] = []

    def transport(self) -> PeerTransport:
        return PeerTransport("peer-a", self.on_up, self.on_down, self.on_feedback)

    def on_up(self) -> None:
        self.up += 1

    def on_down(self) -> None:
        self.down += 1

    def on_feedback(self, out: Output, items: list) -> None:
        self.feedback.append((out, items))


class FakeDtls:
    """What PeerTransport uses of aiortc's RTCDtlsTransport besides the fenced hooks."""

    def __init__(self, state: str) -> None:
        self.state = state
        self.listeners: dict[str, list] = {}

    def on(self, event: str, handler) -> None:
        self.listeners.setdefault(event, []).append(handler)

    def remove_all_listeners(self) -> None:
        self.listeners.clear()

    def change(self, state: str) -> None:
        self.state = state
        for handler in list(self.listeners.get("statechange", [])):
            handler()


@pytest.fixture
def link_up(monkeypatch):
    """A connected fake DTLS transport whose SRTP session and nominated socket are real; yields
    (dtls, session key, receiving socket)."""
    key = os.urandom(30)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(2)
    pair = SimpleNamespace(
        protocol=SimpleNamespace(transport=SimpleNamespace(_sock=sender)), remote_addr=receiver.getsockname()
    )
    session = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    monkeypatch.setattr(transport_module, "srtp_sender", lambda dtls: session)
    monkeypatch.setattr(transport_module, "nominated_pair", lambda dtls: pair)
    monkeypatch.setattr(transport_module, "offer_rsa_suites", lambda dtls: None)  # tests/mcu/test_fence.py
    yield FakeDtls("connected"), key, receiver
    sender.close()
    receiver.close()


def decrypt(key: bytes, data: bytes, rtcp: bool = False) -> bytes:
    session = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    return session.unprotect_rtcp(data) if rtcp else session.unprotect(data)


# -- RTP -------------------------------------------------------------------------------------


async def test_rtp_goes_to_the_stream_of_its_ssrc():
    link = Recorder().transport()
    first, second = mic("a/0"), mic("a/1")
    link.add_stream(first, "0", [0x1111], [], 0)
    link.add_stream(second, "1", [0x2222], [], 0)
    await link.on_rtp_data(rtp(1, 0x2222))
    await link.on_rtp_data(rtp(2, 0x2222), arrival_time_ms=5)
    assert (first.packets, second.packets) == (0, 2)
    assert second.ssrc == 0x2222


async def test_too_short_and_unknown_packets_are_not_routed():
    link = Recorder().transport()
    stream = mic()
    link.add_stream(stream, "0", [0x1111], [], 0)
    await link.on_rtp_data(rtp(1, 0x1111)[:11])
    await link.on_rtp_data(rtp(1, 0x9999))
    assert stream.packets == 0
    assert link.unknown_packets == 1


async def test_an_unannounced_ssrc_is_learnt_from_the_mid_extension():
    link = Recorder().transport()
    stream = mic()
    link.add_stream(stream, "0", [], [], MID_EXT)
    await link.on_rtp_data(rtp(1, 0x5555, mid=b"0"))
    await link.on_rtp_data(rtp(2, 0x5555))  # later packets need no extension
    assert stream.ssrc == 0x5555
    assert stream.packets == 2
    assert link.unknown_packets == 1


async def test_a_retransmission_is_restored_to_the_media_stream():
    link = Recorder().transport()
    stream = mic()
    link.add_stream(stream, "0", [0x1111], [0x1112], 0)
    await link.on_rtp_data(rtp(10, 0x1111))
    await link.on_rtp_data(rtp(7, 0x1112, payload=struct.pack("!H", 9) + b"again", pt=97))  # RFC 4588
    assert stream.rtx_received == 1
    restored = stream.cached(9)
    assert restored is not None and restored.endswith(b"again")
    assert restored[1] & 0x7F == OPUS and struct.unpack_from("!I", restored, 8)[0] == 0x1111


def camera(name: str = "a/1") -> Stream:
    return Stream(stream_id=name, endpoint_id="a", kind="video", source="camera", codec="H264", clock_rate=90000)


async def test_without_ssrc_or_mid_a_packet_is_bound_by_its_payload_type():
    link = Recorder().transport()
    audio, video = mic("a/0"), camera("a/1")
    link.add_stream(audio, "0", [], [], 0, OPUS, None)
    link.add_stream(video, "1", [], [], 0, 102, 103)  # an offer made before media flows: no a=ssrc
    await link.on_rtp_data(rtp(1, 0xA0D1, pt=OPUS))
    await link.on_rtp_data(rtp(5, 0x71DE, pt=102))
    await link.on_rtp_data(rtp(6, 0x71DE, pt=102))  # now by SSRC, the hot path
    await link.on_rtp_data(rtp(3, 0x72DE, payload=struct.pack("!H", 5) + b"again", pt=103))  # its RTX
    assert (audio.ssrc, audio.packets) == (0xA0D1, 1)
    assert (video.ssrc, video.rtx_received) == (0x71DE, 1)
    assert link.unknown_packets == 3
    await link.on_rtp_data(rtp(2, 0xBAD, pt=OPUS))  # a second SSRC with a bound stream's type
    await link.on_rtp_data(rtp(2, 0xBAD2, pt=99))  # a type no stream has
    assert audio.packets == 1 and 0xBAD not in link.by_ssrc and 0xBAD2 not in link.by_ssrc


async def test_a_payload_type_two_unbound_streams_share_binds_neither():
    link = Recorder().transport()
    first, second = camera("a/1"), camera("a/2")
    link.add_stream(first, "1", [], [], 0, 102)
    link.add_stream(second, "2", [], [], 0, 102)
    await link.on_rtp_data(rtp(1, 0x1001, pt=102))
    assert first.ssrc is None and second.ssrc is None and not link.by_ssrc
    link.add_stream(camera("a/3"), "3", [0x3003], [], 0, 102)  # announced: never a candidate
    first.ssrc = 0x1001  # bound some other way (its MID): the type is now the other's alone
    await link.on_rtp_data(rtp(2, 0x2002, pt=102))
    assert second.ssrc == 0x2002


async def test_a_packet_with_a_mid_is_never_bound_by_its_payload_type():
    link = Recorder().transport()
    stream = mic()
    link.add_stream(stream, "0", [], [], MID_EXT, OPUS)
    await link.on_rtp_data(rtp(1, 0x5555, mid=b"7"))  # a mid this peer does not publish on
    assert stream.ssrc is None
    await link.on_rtp_data(rtp(2, 0x6666))  # no extension at all: the payload type decides
    assert stream.ssrc == 0x6666


async def test_a_failing_stream_is_counted_and_does_not_end_the_receive_loop():
    link = Recorder().transport()
    stream = mic()
    link.add_stream(stream, "0", [0x1111], [], 0)
    link.by_ssrc[0x2222] = SimpleNamespace(on_rtp=lambda data: 1 / 0)
    await link.on_rtp_data(rtp(1, 0x2222))
    await link.on_rtp_data(rtp(2, 0x1111))
    assert link.errors == 1
    assert stream.packets == 1


# -- RTCP feedback ----------------------------------------------------------------------------


def output(ssrc: int = 0xA0, rtx_ssrc: int | None = 0xA1) -> Output:
    return Output(
        endpoint_id="b",
        kind="video",
        role="main",
        ssrc=ssrc,
        payload_type=96,
        clock_rate=90000,
        rtx_ssrc=rtx_ssrc,
        rtx_payload_type=97 if rtx_ssrc else None,
    )


async def test_feedback_about_an_output_goes_to_the_router_item_by_item():
    calls = Recorder()
    link = calls.transport()
    out = output()
    link.add_output(out)
    await link.on_rtcp_data(pli(0x77, 0xA0) + nack(0x77, 0xA0, [5, 6]) + pli(0x77, 0xBEEF))
    assert [(o, [item[0] for item in items]) for o, items in calls.feedback] == [
        (out, [FEEDBACK_PLI]),
        (out, [FEEDBACK_NACK]),
    ]
    assert calls.feedback[1][1][0][2] == [5, 6]


async def test_malformed_rtcp_and_a_failing_handler_are_contained():
    calls = Recorder()
    link = calls.transport()
    link.add_output(output())
    await link.on_rtcp_data(b"\x81\xce\xff")  # truncated
    assert calls.feedback == []
    failing = PeerTransport("peer-b", calls.on_up, calls.on_down, lambda out, items: 1 / 0)
    failing.add_output(output())
    await failing.on_rtcp_data(pli(0x77, 0xA0))
    assert failing.errors == 1


# -- sending ---------------------------------------------------------------------------------


@pytest.mark.integration
async def test_connected_dtls_binds_outputs_and_protects_rtcp(link_up):
    dtls, key, receiver = link_up
    calls = Recorder()
    link = calls.transport()
    early = output(0xA0)
    link.add_output(early)
    link.attach(dtls, rtcp_ssrc=0x77)
    assert calls.up == 1 and early.ready
    late = output(0xB0, None)
    link.add_output(late)  # bound at once: the link is up
    assert late.ready
    stream = mic()
    link.add_stream(stream, "0", [0x1111], [], 0)
    link.send_nack(stream, [3, 4])
    sent = decrypt(key, receiver.recv(2048), rtcp=True)
    assert parse_feedback(sent) == [(FEEDBACK_NACK, 0x1111, [3, 4])]
    assert struct.unpack_from("!I", sent, 4)[0] == 0x77


@pytest.mark.integration
async def test_a_routed_packet_leaves_on_the_nominated_socket(link_up):
    dtls, key, receiver = link_up
    link = Recorder().transport()
    link.attach(dtls, rtcp_ssrc=0x77)
    stream = mic()
    link.add_stream(stream, "0", [0x1111], [], 0)
    out = Output(endpoint_id="b", kind="audio", role="audio", ssrc=0xC0, payload_type=109, clock_rate=48000)
    link.add_output(out)
    stream.add_output(out)
    await dtls._handle_rtp_data(rtp(1, 0x1111, payload=b"hello"), arrival_time_ms=0)  # as aiortc calls it
    plain = decrypt(key, receiver.recv(2048))
    assert plain.endswith(b"hello")
    assert plain[1] & 0x7F == 109 and struct.unpack_from("!I", plain, 8)[0] == 0xC0


@pytest.mark.integration
async def test_dtls_closing_reports_down_and_close_forgets_everything(link_up):
    dtls, _, _ = link_up
    calls = Recorder()
    link = calls.transport()
    link.attach(dtls, rtcp_ssrc=0x77)
    link.add_stream(mic(), "0", [0x1111], [], 0)
    link.add_output(output())
    dtls.change("closed")
    assert calls.down == 1
    link.close()
    link.close()
    assert (link.binding, link.outputs, link.by_ssrc, link.out_by_ssrc) == (None, [], {}, {})
    assert dtls.listeners == {}
    link.attach(FakeDtls("connected"), 0x78)  # a closed link stays closed
    assert calls.up == 1
