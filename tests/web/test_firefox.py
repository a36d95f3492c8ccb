"""The laptop join page in headless Firefox (Debian's firefox-esr over WebDriver BiDi, see
tests/web/firefox.py) against a whole signaling node: expired link, media through the in-process
media node (fake camera and microphone, ICE on 127.0.0.1) with an aiortc endpoint on the other
side, and raise hand. Only 127.0.0.1 is reached."""

from __future__ import annotations

import asyncio

import pytest

from tests.web.firefox import Firefox  # skips this module when firefox-esr is missing

from tests.support.harness import WsClient
from tests.support.media_clients import Client, PatternTrack, ToneTrack, WsPeerBridge, wait_for

pytestmark = pytest.mark.timeout(60)

# video frames the page decoded from the media node, over every inbound video stream
FRAMES_DECODED = """async () => { const pc = window.giaobanJoin.media.pc;
  if (!pc) return 0;
  let n = 0;
  (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video") n += r.framesDecoded || 0; });
  return n; }"""
FRAMES_SENT = """async () => { const pc = window.giaobanJoin.media.pc;
  if (!pc) return 0;
  let n = 0;
  (await pc.getStats()).forEach((r) => { if (r.type === "outbound-rtp" && r.kind === "video") n += r.framesEncoded || r.framesSent || 0; });
  return n; }"""
# the ICE pair carrying the media: (local address, remote address)
SELECTED_PAIR = """async () => { const pc = window.giaobanJoin.media.pc, stats = await pc.getStats(), byId = new Map();
  stats.forEach((r) => byId.set(r.id, r));
  for (const r of byId.values()) {
    if (r.type === "candidate-pair" && r.selected && r.state === "succeeded")
      return [byId.get(r.localCandidateId).address, byId.get(r.remoteCandidateId).address];
  }
  return null; }"""
# the remote video tiles that play: [videoWidth, currentTime, mean brightness of the lower half]
REMOTE_PLAYING = """() => [...document.querySelectorAll(".video.remote video")].filter((v) => v.videoWidth > 0).map((v) => {
  const c = document.createElement("canvas"), h = Math.floor(v.videoHeight / 2);
  c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext("2d");
  g.drawImage(v, 0, 0);
  const px = g.getImageData(0, h, c.width, c.height - h).data;
  let sum = 0;
  for (let i = 0; i < px.length; i += 4) sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
  return [v.videoWidth, v.currentTime, sum / (px.length / 4)]; })"""


@pytest.fixture
async def firefox():
    async with Firefox() as ff:
        yield ff


@pytest.fixture
async def page(firefox):
    return await firefox.new_page()


async def test_expired_link_shows_message_in_firefox(node, page):
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    token, _ = node.ctx.auth.signer.issue(
        "link", "guest:Lãnh đạo", -60, name="Lãnh đạo", meeting=meeting["id"], role="participant"
    )
    await page.goto(f"{node.url}/join?token={token}")
    text = await page.wait_text("#fatal", "hết hạn", timeout=5)
    assert "expired" in text
    assert await page.visible("#fatal")
    assert not await page.visible("#join")
    assert page.js_errors == []


async def test_firefox_joins_sends_and_receives_video(mnode, page):
    node = mnode
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    # the district's room terminal: an aiortc endpoint publishing a bright test pattern over /ws
    ws = await WsClient.connect(node, await node.endpoint_token("hg-meo-vac"))
    await ws.expect("welcome")
    room = Client(
        WsPeerBridge(ws, meeting["id"]), meeting["id"], "hg-meo-vac", video=PatternTrack(220), audio=ToneTrack()
    )
    try:
        await room.join()
        await page.goto(
            (await node.join_link(meeting["id"], name="Phó Chủ tịch Nguyễn Văn B", role="participant"))["url"]
        )
        await page.wait_text("#camera", "sẵn sàng", timeout=10)  # Firefox's fake camera + microphone
        assert await page.call("() => window.giaobanJoin.media.local.getTracks().map((t) => t.kind).sort()") == [
            "audio",
            "video",
        ]
        await page.click("#join")
        await page.wait_for("""() => document.querySelectorAll("#people li").length === 2""", timeout=10)

        status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
        assert status == 200, live
        assert "Phó Chủ tịch Nguyễn Văn B" in [p["name"] for p in live["participants"]]

        await page.wait_for("() => window.giaobanJoin.media.pc.connectionState === 'connected'", timeout=15)
        # Firefox decodes the terminal's video (getStats), and its tile plays the bright test pattern
        decoded = await page.wait_for(
            f"async () => {{ const n = await ({FRAMES_DECODED})(); return n > 10 && n; }}", timeout=15
        )
        assert decoded > 10
        width, t0, brightness = (await page.wait_for(REMOTE_PLAYING, timeout=5))[0]
        assert width > 0 and brightness > 150, (width, brightness)
        await asyncio.sleep(0.5)
        t1 = (await page.call(REMOTE_PLAYING))[0][1]
        assert t1 > t0, "the remote video does not advance"
        assert not await page.visible("#media-notice")
        assert await page.call(SELECTED_PAIR) == ["127.0.0.1", "127.0.0.1"]
        # ... and the terminal decodes Firefox's camera
        assert await wait_for(lambda: len(room.video_frames()) >= 10, timeout=15), (
            f"the aiortc endpoint decoded {len(room.video_frames())} frames from Firefox (sent {await page.call(FRAMES_SENT)})"
        )
        assert page.js_errors == []
    finally:
        await room.close()


async def test_raise_hand_in_firefox_reaches_websocket_client(node, page):
    commune = node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0]
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    await page.goto((await node.join_link(meeting["id"], name="Phó Chủ tịch Nguyễn Văn A", role="participant"))["url"])
    await page.click("#join")
    await page.wait_text("#people", "Phó Chủ tịch Nguyễn Văn A", timeout=5)
    ws = await WsClient.connect(node, await node.endpoint_token(commune.id))
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        await ws.expect("joined")
        await page.wait_text(f'#people li[data-endpoint="{commune.id}"]', commune.name, timeout=5)
        await page.click("#hand")
        hand = await ws.expect("hand", raised=True)
        assert hand["name"] == "Phó Chủ tịch Nguyễn Văn A" and hand["endpoint_id"] in hand["hands"]
        await page.wait_for(
            """() => document.getElementById("hand").getAttribute("aria-pressed") === "true" """, timeout=5
        )
        await page.wait_text("#people", "giơ tay", timeout=5)
    finally:
        await ws.close()
    assert page.js_errors == []
