"""End to end media: two laptops join through the page, each sees the other's (fake) camera
through the in-process media node (media: local, ICE pinned to 127.0.0.1)."""

from __future__ import annotations

from tests.web.browser import PC_STATE, expect, join_in_browser

REMOTE_VIDEO = """() => [...document.querySelectorAll('.video.remote video')].some(v => v.videoWidth > 0)"""
# frames sent on the screen-share m-line, once the server has answered the renegotiation
SCREEN_SENT = """async () => { const m = window.giaobanJoin.media, pc = m.pc, tx = m.screenTx;
  if (!tx || !tx.mid || pc.signalingState !== "stable" || !pc.currentRemoteDescription.sdp.includes("a=mid:" + tx.mid)) return 0;
  let frames = 0;
  (await pc.getStats(tx.sender.track)).forEach((r) => { if (r.type === "outbound-rtp") frames += r.framesSent || 0; });
  return frames > 10; }"""


async def test_two_laptops_see_each_other(mnode, browser):
    node = mnode
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    pages = [
        await join_in_browser(browser, node, meeting["id"], name) for name in ("Chủ tịch UBND huyện", "Phó Bí thư")
    ]
    for page in pages:
        await expect(page.locator("#people li")).to_have_count(2, timeout=5000)
        await expect(page.locator("#media-notice")).to_be_hidden()
        await page.wait_for_function(PC_STATE + " === 'connected'", timeout=15000)
        await page.wait_for_function(REMOTE_VIDEO, timeout=15000)

    # the first laptop shares its screen: a second, "slides" video m-line negotiated with the node
    await pages[0].locator("#share").click()
    await expect(pages[0].locator("#share")).to_contain_text("Dừng chia sẻ")
    for _ in range(100):
        if await pages[0].evaluate(SCREEN_SENT):
            break
        await pages[0].wait_for_timeout(100)
    else:
        raise AssertionError("no screen-share frames sent on a negotiated slides m-line within 10 s")
    await pages[1].wait_for_function(REMOTE_VIDEO, timeout=5000)
    await pages[0].locator("#share").click()  # stop: the m-line goes inactive, the camera stays
    await expect(pages[0].locator("#share")).to_contain_text("Chia sẻ màn hình")
    for page in pages:
        assert page.js_errors == []
        await page.context.close()
