"""A real SIP room system nobody here wrote (Debian's baresip 1.0, headless) in a giaoban meeting
through the SIP gateway (#14), in plain RTP and with SDES-SRTP, asserted at the receiving ends:

* dial-in: baresip calls ``sip:<dial_number>@server``; its red camera decodes in an H.264 WebRTC
  viewer (forwarded) and in a VP8-only one (transcoded) and shows as a tile of the composite; the
  composite baresip receives decodes with the viewer's green in it; its 440 Hz tone is the peak of
  the mix the viewer hears, and the viewer's 660 Hz tone the peak of what baresip hears;
* dial-out: the server calls baresip (answermode=auto) when the meeting opens and from the REST
  call endpoint; baresip decodes the composite;
* the chair's mute and remove, an unknown caller keying the meeting's PIN (RFC 4733), and the
  room's own hold and resume (re-INVITE a=sendonly).
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.sip.meeting import CHAIR, Briefing, find_colour, open_briefing, start_sip_node
from tests.support.baresip import Baresip, tone_peak_hz
from tests.support.harness import WsClient
from tests.support.waiting import until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

RED, GREEN = (255, 0, 0), (0, 200, 0)
ROOM = "phong-sip"
VIEWER_H264, VIEWER_VP8 = "xem-h264", "xem-vp8"
MODES = [pytest.param(False, id="rtp"), pytest.param(True, id="srtp")]


async def briefing_with_room(tmp_path, room_uri: str, **meeting: object) -> Briefing:
    node, sip_port = await start_sip_node(tmp_path, {ROOM: room_uri}, [VIEWER_H264, VIEWER_VP8])
    return await open_briefing(node, sip_port, [ROOM, VIEWER_H264, VIEWER_VP8], **meeting)


async def no_dial_out(briefing: Briefing) -> None:
    """The operator hangs the room up before it calls: the server stops dialling it (it would call
    every invited room with a SIP URI), and the room dials in itself."""
    status, body = await briefing.node.call("DELETE", f"/api/v1/meetings/{briefing.meeting['id']}/sip/{ROOM}")
    assert status in (200, 202, 204), (status, body)


def peak_of(samples: np.ndarray, rate: int) -> tuple[float, float]:
    return tone_peak_hz(samples, rate) if np.abs(samples).max() > 0.01 else (0.0, 0.0)


async def assert_room_gets_composite(room: Baresip, viewer_colour: tuple[int, int, int]) -> None:
    """baresip decodes the composite we send: a picture with the viewer's tile in it."""
    loop = asyncio.get_running_loop()
    deadline, last = loop.time() + 20, None
    while loop.time() < deadline:
        last = await room.received_picture()
        if last is not None and find_colour(last, viewer_colour):
            return
        await asyncio.sleep(0.3)
    shape = None if last is None else last.shape
    raise AssertionError(f"baresip never decoded a composite showing {viewer_colour} (last {shape}); {room.log_tail()}")


# (SDES-SRTP, what baresip offers for audio, what it dials (over UDP unless ;transport=tcp), the
# audio codec the call must run)
DIAL_INS = [
    pytest.param(False, "PCMU,G722/16000,opus/48000/2", "dial_number", "opus", id="rtp-opus-dial-number"),
    pytest.param(True, "PCMU", "dial_number;transport=tcp", "PCMU", id="srtp-pcmu-dial-number-tcp"),
    pytest.param(False, "G722/16000", "endpoint_id", "G722", id="rtp-g722-endpoint-id"),
]


@pytest.mark.parametrize("srtp, audio_codecs, dials, audio_codec", DIAL_INS)
async def test_baresip_dials_in_and_is_seen_heard_and_served(
    tmp_path, baresips, srtp, audio_codecs, dials, audio_codec
):
    room = baresips(ROOM, colour=RED, srtp=srtp, answermode="manual", audio_codecs=audio_codecs)
    # its directory URI: its user at its address (what proves the caller) on a port nobody listens on
    briefing = await briefing_with_room(tmp_path, f"sip:{ROOM}@127.0.0.1:9")
    await no_dial_out(briefing)
    viewers = []
    try:
        h264 = await briefing.viewer(VIEWER_H264, codecs=["H264"], colour=GREEN, tone_hz=660)
        vp8 = await briefing.viewer(VIEWER_VP8, codecs=["VP8"])
        viewers = [h264, vp8]
        target, _, params = dials.partition(";")
        uri = briefing.dial_uri if target == "dial_number" else briefing.endpoint_uri(ROOM)
        await room.start(dial=uri + (f";{params}" if params else ""))
        established = await room.wait_event("CALL_ESTABLISHED", "CALL_CLOSED", timeout=15)
        assert established.type == "CALL_ESTABLISHED", established.raw
        await until(lambda: room.call_audio_codecs() == (audio_codec, audio_codec), 5, what=f"{audio_codec} both ways")
        assert briefing.sip_transports() == ["tcp" if "transport=tcp" in dials else "udp"]
        if srtp:
            await until(lambda: sorted(room.srtp_enabled()) == ["audio", "video"], 5, what="SRTP on both media")

        # (a) its camera: forwarded untouched to the H.264 viewer, transcoded to the VP8-only one, and a tile
        await until(
            lambda: h264.sees(RED, role="main", whole=True),
            20,
            what=f"H.264 viewer decodes red: {h264.forwarded_roles()}",
        )
        await until(
            lambda: vp8.sees(RED, role="main", whole=True), 20, what=f"VP8 viewer decodes red: {vp8.forwarded_roles()}"
        )
        await until(lambda: h264.sees(RED, role="composite"), 20, what="red tile in the composite")
        # (b) the composite it receives decodes, with the viewer's green in it
        await assert_room_gets_composite(room, GREEN)
        # (c) its tone is heard in the mix the H.264 viewer receives (N-1: not its own 660 Hz)
        await asyncio.sleep(1.0)
        peak, share = peak_of(h264.heard(1.0, role="mix"), 48000)
        assert abs(peak - 440) < 15 and share > 0.3, (peak, share)

        assert ROOM in briefing.media_meeting().peers  # its leg, under its endpoint id
        await room.hangup()
        await until(
            lambda: ROOM not in (briefing.media_meeting().peers if briefing.media_meeting() else {}),
            10,
            what="the leg closes after BYE",
        )
        await room.stop()
        heard, rate = room.received_audio()  # and the viewer's 660 Hz is what baresip heard
        peak, share = peak_of(heard[-rate:], rate)
        assert abs(peak - 660) < 15 and share > 0.3, (peak, share)
    finally:
        for viewer in viewers:
            await viewer.close()
        await briefing.node.stop()


@pytest.mark.parametrize(
    "srtp, transport",
    [
        pytest.param(False, "udp", id="rtp-udp"),
        pytest.param(True, "udp", id="srtp-udp"),
        pytest.param(False, "tcp", id="rtp-tcp"),
    ],
)
async def test_the_server_dials_out_to_baresip_when_the_meeting_opens(tmp_path, baresips, srtp, transport):
    room = await baresips(ROOM, colour=RED, srtp=srtp, answermode="auto").start()
    briefing = await briefing_with_room(tmp_path, room.uri + (";transport=tcp" if transport == "tcp" else ""))
    viewer = None
    try:
        viewer = await briefing.viewer(VIEWER_H264, codecs=["H264"], colour=GREEN)
        incoming = await room.wait_event("CALL_ESTABLISHED", timeout=25)
        assert incoming.raw.get("direction") == "incoming", incoming.raw
        assert briefing.sip_transports() == [transport]
        if srtp:
            await until(lambda: sorted(room.srtp_enabled()) == ["audio", "video"], 5, what="SRTP on both media")
        await assert_room_gets_composite(room, GREEN)
        await until(lambda: viewer.sees(RED, role="main", whole=True), 20, what="the viewer decodes the room's camera")
    finally:
        if viewer is not None:
            await viewer.close()
        await briefing.node.stop()


async def test_the_operator_hangs_the_room_up_and_calls_it_again(tmp_path, baresips):
    room = await baresips(ROOM, colour=RED, answermode="auto").start()
    briefing = await briefing_with_room(tmp_path, room.uri)
    meeting_id = briefing.meeting["id"]
    viewer = None
    try:
        viewer = await briefing.viewer(VIEWER_H264, codecs=["H264"], colour=GREEN)
        await room.wait_event("CALL_ESTABLISHED", timeout=25)  # the server called it as the meeting opened

        status, body = await briefing.node.call("DELETE", f"/api/v1/meetings/{meeting_id}/sip/{ROOM}")
        assert (status, body["state"]) == (202, "hung_up"), body
        await room.wait_event("CALL_CLOSED", timeout=10)  # BYE at the room
        room.events.clear()
        await asyncio.sleep(6)  # past the first redial delay: hung up means not called again
        assert not room.events, [(e.type, e.param) for e in room.events]

        status, body = await briefing.node.call("POST", f"/api/v1/meetings/{meeting_id}/sip/{ROOM}")
        assert (status, body["state"]) == (202, "calling"), body
        incoming = await room.wait_event("CALL_ESTABLISHED", timeout=15)
        assert incoming.raw.get("direction") == "incoming", incoming.raw
        await assert_room_gets_composite(room, GREEN)
        status, listed = await briefing.node.call("GET", f"/api/v1/meetings/{meeting_id}/sip")
        assert [(r["endpoint_id"], r["in_call"]) for r in listed["room_systems"]] == [(ROOM, True)], listed
    finally:
        if viewer is not None:
            await viewer.close()
        await briefing.node.stop()


def hears_tone(viewer, hz: float) -> bool:
    peak, share = peak_of(viewer.heard(0.5, role="mix"), 48000)
    return abs(peak - hz) < 15 and share > 0.3


async def test_the_chair_mutes_and_removes_the_room(tmp_path, baresips):
    """Chair actions apply to a room system, the active speaker by its tone: mute takes its tone out of
    the mix (and unmute brings it back), remove sends it a BYE and the server does not call it again."""
    room = await baresips(ROOM, colour=RED, answermode="auto").start()
    briefing = await briefing_with_room(tmp_path, room.uri)
    viewer = chair = None
    try:
        viewer = await briefing.viewer(VIEWER_H264, codecs=["H264"], colour=GREEN)
        await room.wait_event("CALL_ESTABLISHED", timeout=25)
        await until(lambda: hears_tone(viewer, 440), 15, what="the room's tone in the viewer's mix")
        await until(lambda: briefing.media_meeting().speaker == ROOM, 10, what="the room is the active speaker")

        chair = await WsClient.connect(briefing.node, await briefing.node.endpoint_token(CHAIR))
        await chair.expect("welcome")
        await chair.send("join", meeting_id=briefing.meeting["id"])
        await chair.expect("joined")
        await chair.send("mute", endpoint_id=ROOM, kind="audio", muted=True)
        await until(lambda: np.abs(viewer.heard(0.5, role="mix")).max() < 0.01, 5, what="muted: silence in the mix")
        await chair.send("mute", endpoint_id=ROOM, kind="audio", muted=False)
        await until(lambda: hears_tone(viewer, 440), 5, what="unmuted: the tone back in the mix")

        await chair.send("remove", endpoint_id=ROOM)
        closed = await room.wait_event("CALL_CLOSED", timeout=5)  # the BYE at the room
        room.events.clear()
        await asyncio.sleep(6)  # past the first redial delay: removed means not called again
        assert not room.events, (closed.param, [(e.type, e.param) for e in room.events])
    finally:
        for client in (chair, viewer):
            if client is not None:
                await client.close()
        await briefing.node.stop()


@pytest.mark.parametrize(
    "audio_codecs, keyed, admitted",
    [
        pytest.param("PCMU", "2468", True, id="pcmu-right-pin"),
        pytest.param("PCMU", "1357", False, id="pcmu-wrong-pin"),
        pytest.param(
            "PCMU,G722/16000,opus/48000/2",
            "2468",
            True,
            id="opus-right-pin",
        ),
    ],
)
async def test_an_unknown_caller_keys_the_meetings_pin_by_dtmf(tmp_path, baresips, audio_codecs, keyed, admitted):
    """A room system not in the directory dials a meeting that has a PIN: it is answered (a lobby that
    shows nothing of the meeting), keys the PIN as RFC 4733 events, and is moved into the meeting
    (its camera reaches the viewer, it decodes the composite), or hears a BYE when the PIN is wrong."""
    guest = baresips("khach", colour=RED, answermode="manual", audio_codecs=audio_codecs)
    briefing = await briefing_with_room(tmp_path, f"sip:{ROOM}@127.0.0.1:9", pin="2468")
    await no_dial_out(briefing)
    viewer = None
    try:
        viewer = await briefing.viewer(VIEWER_H264, codecs=["H264"], colour=GREEN)
        await guest.start(dial=briefing.dial_uri)
        await guest.wait_event("CALL_ESTABLISHED", timeout=15)
        await asyncio.sleep(0.5)
        assert not viewer.sees(RED, role="main", whole=True)  # the lobby shows the meeting nothing
        reply = await guest.command("sndcode", keyed)  # RFC 4733 events, one after the other
        assert reply.get("ok"), reply
        if not admitted:
            await guest.wait_event("CALL_CLOSED", timeout=10)  # BYE after the wrong PIN
            return
        await until(lambda: viewer.sees(RED, role="main", whole=True), 10, what="the guest's camera in the meeting")
        await assert_room_gets_composite(guest, GREEN)
        assert not any(e.type == "CALL_CLOSED" for e in guest.events)
    finally:
        if viewer is not None:
            await viewer.close()
        await briefing.node.stop()


async def test_the_room_holds_and_resumes_the_call(tmp_path, baresips):
    """baresip's hold is a re-INVITE with a=sendonly: the server stops sending it media (its receive
    bit rates fall to 0) while its camera still reaches the meeting; resume brings the composite back."""
    room = await baresips(ROOM, colour=RED, answermode="auto").start()
    briefing = await briefing_with_room(tmp_path, room.uri)
    viewer = None
    try:
        viewer = await briefing.viewer(VIEWER_H264, codecs=["H264"], colour=GREEN)
        await room.wait_event("CALL_ESTABLISHED", timeout=25)
        await assert_room_gets_composite(room, GREEN)
        await until(lambda: min(room.bitrates().get("video", (0, 0))[1], room.bitrates()["audio"][1]) > 0, 10)

        assert (await room.command("hold")).get("ok")
        await until(
            lambda: room.bitrates()["video"][1] == room.bitrates()["audio"][1] == 0, 10, what="held: nothing sent"
        )
        await until(lambda: viewer.sees(RED, role="main", whole=True), 5, what="its camera still in the meeting")

        assert (await room.command("resume")).get("ok")
        await until(lambda: min(room.bitrates()["video"][1], room.bitrates()["audio"][1]) > 0, 10, what="resumed")
        await assert_room_gets_composite(room, GREEN)
    finally:
        if viewer is not None:
            await viewer.close()
        await briefing.node.stop()


async def test_a_vp8_only_room_system(tmp_path, baresips):
    """A room system that offers only VP8 receives the composite in VP8, and its VP8 camera reaches an
    H.264-only viewer through the shared transcode."""
    room = await baresips(ROOM, colour=RED, answermode="auto", video_codecs="VP8").start()
    briefing = await briefing_with_room(tmp_path, room.uri)
    viewer = None
    try:
        viewer = await briefing.viewer(VIEWER_H264, codecs=["H264"], colour=GREEN)
        await room.wait_event("CALL_ESTABLISHED", timeout=25)
        await assert_room_gets_composite(room, GREEN)
        assert "Set video decoder: VP8" in room.log() and "Set video encoder: VP8" in room.log()
        await until(lambda: viewer.sees(RED, role="main", whole=True), 20, what="the H.264 viewer decodes its camera")
    finally:
        if viewer is not None:
            await viewer.close()
        await briefing.node.stop()
