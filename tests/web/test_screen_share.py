"""Screen share after both laptops joined (#17): the server's renegotiation offer to the OTHER laptop
must keep the header-extension ids the first negotiation fixed, or Chromium refuses it ("RTP
extension ID reassignment not supported") and the slides never arrive there.

The sharer's getDisplayMedia is a canvas painted a known colour (injected before the page's own
code; the page is unchanged); the receiving page must decode a video whose picture has it."""

from __future__ import annotations

from mcu.peer.renegotiation import NegotiatedIds
from tests.web.browser import PC_STATE, expect, has_class, join_in_browser

SLIDES_RGB = (220, 30, 200)  # magenta: nothing like Chromium's fake camera (green, grey, white)

# the "screen": a canvas stream repainted 10 times a second (a canvas stream sends on change)
FAKE_SCREEN = (
    """
navigator.mediaDevices.getDisplayMedia = async () => {
  const c = document.createElement("canvas");
  c.width = 640; c.height = 360;
  const g = c.getContext("2d");
  let n = 0;
  const paint = () => { g.fillStyle = "rgb(%d,%d,%d)"; g.fillRect(0, 0, 640, 360);
    g.fillStyle = "rgb(255,255,255)"; g.fillRect(n++ %% 600, 10, 40, 20); };
  paint();
  setInterval(paint, 100);
  return c.captureStream(10);
};
"""
    % SLIDES_RGB
)

# the centre colour of every remote video that has decoded a frame
REMOTE_COLOURS = """() => [...document.querySelectorAll('.video.remote video')].filter(v => v.videoWidth > 0).map(v => {
  const c = document.createElement("canvas"); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d"); g.drawImage(v, 0, 0);
  return Array.from(g.getImageData(v.videoWidth >> 1, v.videoHeight >> 1, 1, 1).data.slice(0, 3)); })"""
REMOTE_VIDEO = """() => [...document.querySelectorAll('.video.remote video')].some(v => v.videoWidth > 0)"""


def _is_slides(rgb: list[int]) -> bool:
    return all(abs(a - b) < 40 for a, b in zip(rgb, SLIDES_RGB))


async def test_the_other_laptop_sees_slides_shared_after_both_joined(mnode, browser, tmp_path):
    meeting = await mnode.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    sharer = await join_in_browser(browser, mnode, meeting["id"], "Chủ tịch UBND huyện", init_script=FAKE_SCREEN)
    viewer = await join_in_browser(browser, mnode, meeting["id"], "Phó Bí thư")
    for page in (sharer, viewer):
        await expect(page.locator("#people li")).to_have_count(2, timeout=5000)
        await page.wait_for_function(PC_STATE + " === 'connected'", timeout=15000)
        await page.wait_for_function(REMOTE_VIDEO, timeout=15000)  # each sees the other's camera first

    await sharer.locator("#share").click()
    await expect(sharer.locator("#share")).to_contain_text("Dừng chia sẻ")
    colours: list[list[int]] = []
    for _ in range(150):
        colours = await viewer.evaluate(REMOTE_COLOURS)
        if any(_is_slides(c) for c in colours):
            break
        await viewer.wait_for_timeout(100)
    else:
        raise AssertionError(
            f"the viewer decoded no slides picture within 15 s (centre colours {colours});"
            f" its console: {viewer.console_lines[-8:]}"
        )
    refused = [line for line in viewer.console_lines if "setRemoteDescription" in line or "Failed to set" in line]
    assert refused == []
    await expect(viewer.locator("#media-notice")).to_be_hidden()
    await viewer.screenshot(path=str(tmp_path / "slides-received.png"))  # looked at: camera and slides tiles
    for page in (sharer, viewer):
        assert page.js_errors == []
        await page.context.close()


async def test_a_server_offer_the_browser_refuses_is_said_on_the_page(mnode, browser, monkeypatch, tmp_path):
    """Today's bug brought back (the server's offer with aiortc's own ids): Chromium refuses it, and
    the viewer is told so in Vietnamese instead of a silent console line."""
    monkeypatch.setattr(NegotiatedIds, "keep", lambda self, offer: offer)
    meeting = await mnode.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    sharer = await join_in_browser(browser, mnode, meeting["id"], "Chủ tịch UBND huyện", init_script=FAKE_SCREEN)
    viewer = await join_in_browser(browser, mnode, meeting["id"], "Phó Bí thư")
    for page in (sharer, viewer):
        await page.wait_for_function(PC_STATE + " === 'connected'", timeout=15000)
    await sharer.locator("#share").click()
    notice = viewer.locator("#media-notice")
    await expect(notice).to_contain_text("Không nhận được hình chia sẻ", timeout=15000)
    await expect(notice).to_contain_text("extension ID reassignment")  # the browser's reason, after ours
    await expect(notice).to_have_class(has_class("error"))
    await viewer.screenshot(path=str(tmp_path / "refused-offer-notice.png"))  # looked at: the notice reads in full
    for page in (sharer, viewer):
        assert page.js_errors == []
        await page.context.close()
