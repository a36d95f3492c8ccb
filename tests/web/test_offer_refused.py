"""A refused offer is told, not retried (issue #13): a laptop whose Chromium offers only VP8 joins
a meeting that takes only H.264. The join page shows the server's refusal in #media-notice,
Vietnamese first, naming the codecs; the server sees that one offer and no ICE candidates for it
(before the fix the page took any error on its offer for a crossed offer and offered again every
1.5 s, each offer followed by a burst of refused candidates)."""

from __future__ import annotations

import asyncio

import pytest

from signaling.metrics import REGISTRY
from tests.web.browser import expect, join_in_browser
from tests.web.codecs import codec_only

pytestmark = pytest.mark.timeout(60)

QUIET_S = 4.0  # after the refusal: longer than two of the old page's 1.5 s retries


def server_counts() -> dict[str, float]:
    """The signaling node's counters of offers and candidates in, refusals and other errors out."""

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    return {
        "offers": sample("giaoban_ws_messages_in_total", type="offer"),
        "candidates": sample("giaoban_ws_messages_in_total", type="ice"),
        "refusals": sample("giaoban_ws_errors_total", code="offer_refused"),
        "bad_requests": sample("giaoban_ws_errors_total", code="bad_request"),
        "retries": sample("giaoban_ws_errors_total", code="retry"),
    }


async def test_a_vp8_only_laptop_in_an_h264_only_meeting_is_told_why_once(mnode, browser):
    meeting = await mnode.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"], video_codecs=["H264"])
    before = server_counts()
    page = await join_in_browser(browser, mnode, meeting["id"], "Phó Bí thư", codec_only("video/VP8"))
    notice = page.locator("#media-notice")
    await expect(notice).to_contain_text("Không kết nối được hình/tiếng: máy chủ từ chối", timeout=5000)
    await expect(notice).to_contain_text("Trình duyệt này gửi hình bằng VP8, cuộc họp chỉ nhận H264")
    await expect(notice).to_contain_text("the offer's video codecs are VP8; this meeting takes H264")
    await asyncio.sleep(QUIET_S)  # no second offer, no candidates come after it
    after = server_counts()
    seen = {key: after[key] - before[key] for key in after}
    assert seen == {"offers": 1, "candidates": 0, "refusals": 1, "bad_requests": 0, "retries": 0}, seen
    await expect(notice).to_be_visible()
    assert await page.evaluate("() => window.giaobanJoin.media.pc") is None  # closed: nothing left to connect
    assert not mnode.ctx.media.peers, "the refused offer's peer is still held"
    assert page.js_errors == [], page.js_errors
