"""A SIP room system's media leg in a real meeting: a Python room (tests/support/rtp_room.py) over
UDP on 127.0.0.1 and a real aiortc laptop, checked by what each receives (colours, tones)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mcu.api import PeerSpec
from mcu.rtp.leg import RtpLeg
from tests.mcu.bridge.helpers import MixClient, PitchTrack, tone_power
from tests.support.media_clients import PatternTrack, wait_for
from tests.support.rtp_room import RtpRoom

pytestmark = pytest.mark.integration

RED = (220, 30, 30)


def room_spec(endpoint: str = "room", **extra: object) -> PeerSpec:
    return PeerSpec(
        meeting_id="m",
        endpoint_id=endpoint,
        display_name="Phòng họp tỉnh",
        role="participant",
        link="fibre",
        publish=True,
        extra={"transport": "rtp", **extra},  # type: ignore[typeddict-item]
    )


class Events:
    def __init__(self) -> None:
        self.seen: list[dict] = []

    async def __call__(self, event: dict) -> None:
        self.seen.append(event)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.seen if e.get("type") == kind]


async def join_room(
    node, room: RtpRoom, events: Events | None = None, endpoint: str = "room", **extra: object
) -> RtpLeg:
    await room.start()
    leg = await node.open_peer(room_spec(endpoint, **extra), events or Events())
    assert isinstance(leg, RtpLeg)
    await room.apply_answer(await leg.handle_offer(room.offer()))
    return leg


def is_red(pixels: np.ndarray) -> bool:
    r, g, b = (float(pixels[..., i].mean()) for i in range(3))
    return r > 150 and g < 90 and b < 90


def tiles(picture: np.ndarray) -> list[np.ndarray]:
    h, w = picture.shape[:2]
    return [
        picture[r * h // 2 + h // 8 : r * h // 2 + h // 4, c * w // 2 + w // 8 : c * w // 2 + 3 * w // 8]
        for r in (0, 1)
        for c in (0, 1)
    ]


@pytest.mark.parametrize(
    "audio, srtp", [("PCMU", False), ("G722", True), ("OPUS", False)], ids=["pcmu-plain", "g722-srtp", "opus-plain"]
)
async def test_room_and_laptop_see_and_hear_each_other(local_media_node, audio, srtp):
    node = local_media_node
    laptop = MixClient(node, "m", "laptop", video=PatternTrack(200), audio=PitchTrack(660))
    room = RtpRoom(audio=audio, srtp=srtp, colour=RED, tone_hz=440)
    try:
        await laptop.join()
        leg = await join_room(node, room)
        assert leg.spec.extra.get("audio_codec") == (None if audio == "OPUS" else audio)
        # the laptop (SFU, H.264-capable) gets the room's camera: red
        assert await wait_for(lambda: laptop.track("main") is not None and len(laptop.video_frames()) > 10, 15)
        main = laptop.track("main")
        assert await wait_for(lambda: main.id in laptop.latest and is_red(laptop.picture(main)), 10)
        # the room receives the composite: the laptop's grey and its own red tile
        assert await wait_for(lambda: room.frames_decoded > 10, 15), leg.stats()
        assert await wait_for(lambda: any(abs(float(t.mean()) - 200) < 25 for t in tiles(room.picture)), 10)
        assert any(is_red(t) for t in tiles(room.picture)), [t.mean(axis=(0, 1)) for t in tiles(room.picture)]
        # its N-1 mix in its codec: the laptop's 660 Hz, not its own 440 Hz
        assert await wait_for(lambda: tone_power(room.pcm(1.0), 660) > 0.3, 10)
        assert tone_power(room.pcm(1.0), 440) < 0.05
        assert node.meetings["m"].mcu.mixes["room"].stream.codec == audio
        # the operator's map: the room is connected and sends sound and picture
        assert await wait_for(
            lambda: node.quality.report(node.meetings["m"], time.monotonic())["room"]["sending"]["video"], 3
        )
        links = await node.link_stats("m")
        assert links["room"]["connected"] and links["room"]["sending"]["audio"], links["room"]
    finally:
        await room.stop()
        await laptop.close()
        await node.stop()
    assert leg.closed and all(line.ports.closed for line in leg.lines.values())
