"""Every codec a real client brings (issue #13), in Chromium: one laptop whose codec preferences
allow only H.264 and one allowing only VP8 join one meeting through the laptop join page. Each
camera is a clip of two known colours; each page must decode the other's camera (SFU: forwarded or
transcoded to its codec) or the composite that contains it (MCU: encoded in its codec), and its
getStats must show that it decodes and sends only its own codec."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.web.browser import join_in_browser
from tests.web.codecs import (
    BLUE,
    CODECS_IN_USE,
    GREEN,
    MAGENTA,
    PROBE,
    RED,
    chromiums_with_cameras,
    codec_only,
    contains_camera,
    shows_camera,
    wait_connected,
    wait_for_picture,
)

pytestmark = pytest.mark.timeout(120)

# codec -> (the laptop's name, its camera's upper and lower colours)
LAPTOPS = {
    "video/H264": ("Chủ tịch UBND huyện", (RED, BLUE)),
    "video/VP8": ("Phó Bí thư", (GREEN, MAGENTA)),
}


@pytest.fixture
async def chromiums(tmp_path) -> AsyncIterator[dict]:
    """codec -> a Chromium whose fake camera plays that laptop's two-colour clip."""
    async with chromiums_with_cameras(tmp_path, {codec: colours for codec, (_, colours) in LAPTOPS.items()}) as b:
        yield b


async def join_restricted(chromiums: dict, node, meeting_id: str) -> dict:
    """codec -> the page of the laptop restricted to that codec, joined and connected."""
    pages = {}
    for codec, (name, _) in LAPTOPS.items():
        pages[codec] = await join_in_browser(chromiums[codec], node, meeting_id, name, codec_only(codec))
    for codec, page in pages.items():
        await wait_connected(page, f"the {codec}-only laptop")
    return pages


@pytest.mark.parametrize("mode", ["sfu", "mcu"])
async def test_h264_only_and_vp8_only_laptops_decode_each_other(mnode, chromiums, mode):
    meeting = await mnode.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"], media_modes={"fibre": mode})
    pages = await join_restricted(chromiums, mnode, meeting["id"])
    # SFU: the other camera is a whole picture; MCU: a thumbnail in the composite, hence the finer grid
    matches, cells = (shows_camera, 8) if mode == "sfu" else (contains_camera, 48)
    for codec, page in pages.items():
        (other,) = set(LAPTOPS) - {codec}
        other_name, colours = LAPTOPS[other]
        await wait_for_picture(
            lambda page=page: page.evaluate(PROBE, cells),
            lambda video, colours=colours: matches(video, *colours),
            f"{mode}: the {codec}-only laptop decoding the camera of {other_name} ({other}-only)",
        )
    for codec, page in pages.items():
        used = await page.evaluate(CODECS_IN_USE)
        assert set(used["inbound"]) == {codec} and set(used["outbound"]) == {codec}, (codec, used)
        assert page.js_errors == [], page.js_errors
