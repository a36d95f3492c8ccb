"""Firefox ESR, which decodes VP8 but not H.264 here (Debian ships no OpenH264 plugin for it), in a
meeting whose other laptop is a Chromium restricted to H.264 (issue #13): Firefox receives that
camera transcoded to VP8, and the picture it decodes has the camera's two colours."""

from __future__ import annotations

import pytest

from tests.web.firefox import Firefox  # skips this module when firefox-esr is missing

from tests.web.browser import PC_STATE, join_in_browser
from tests.web.codecs import (
    BLUE,
    CODECS_IN_USE,
    PROBE,
    RED,
    chromiums_with_cameras,
    codec_only,
    shows_camera,
    wait_connected,
    wait_for_picture,
)

pytestmark = pytest.mark.timeout(120)


async def test_firefox_decodes_an_h264_camera_transcoded_to_vp8(mnode, tmp_path):
    meeting = await mnode.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"], media_modes={"fibre": "sfu"})
    async with chromiums_with_cameras(tmp_path, {"h264": (RED, BLUE)}) as chromium, Firefox() as firefox:
        publisher = await join_in_browser(
            chromium["h264"], mnode, meeting["id"], "Chủ tịch UBND huyện", codec_only("video/H264")
        )
        page = await firefox.new_page()
        await page.goto((await mnode.join_link(meeting["id"], name="Phó Bí thư", role="participant"))["url"])
        await page.wait_text("#camera", "sẵn sàng", timeout=10)
        await page.click("#join")
        await wait_connected(publisher, "the H.264-only Chromium")
        await page.wait_for(PC_STATE + " === 'connected'", timeout=20)
        await wait_for_picture(
            lambda: page.call(PROBE, 8),
            lambda video: shows_camera(video, RED, BLUE),
            "Firefox decoding the camera of the H.264-only Chromium",
        )
        assert set((await page.call(CODECS_IN_USE))["inbound"]) == {"video/VP8"}
        assert set((await publisher.evaluate(CODECS_IN_USE))["outbound"]) == {"video/H264"}
        assert page.js_errors == [] and publisher.js_errors == [], (page.js_errors, publisher.js_errors)
