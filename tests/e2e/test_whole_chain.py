"""The whole chain in real Chromium with real room-terminal agents and the in-process media node.

The operator schedules a Mèo Vạc meeting through the console form; two commune terminals (test
pattern + tone) walk in by themselves when the scheduler opens it; a laptop joins through a join
link the console hands out and decodes an agent's video; a commune raises its hand on its local
control API, the operator mutes everyone and gives it the floor from the live map, and the laptop
hears it (inbound audio energy grows again). The test-session mode shows both rooms ready.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import pytest

from tests.support.agents import make_agent
from tests.support.waiting import until, until_async
from tests.support.harness import ADMIN_PASSWORD, VN
from tests.web.browser import expect, has_class

pytestmark = pytest.mark.browser

DISTRICT = "hg-meo-vac"
AGENT = dict(video_size="320x180", fps=10)
INBOUND = """async (kind) => { const pc = window.giaobanJoin.media.pc; if (!pc) return null;
  const out = {frames: 0, bytes: 0, energy: 0};
  (await pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === kind) {
    out.frames += r.framesDecoded || 0; out.bytes += r.bytesReceived || 0; out.energy += r.totalAudioEnergy || 0; } });
  return out; }"""


def _communes(node) -> list[str]:
    return [ep.id for ep in node.ctx.directory.select(["tier:commune@hg-meo-vac"])]


async def _console(browser, node):
    context = await browser.new_context(viewport={"width": 1500, "height": 1100}, locale="vi-VN")
    page = await context.new_page()
    page.js_errors = []
    page.on("pageerror", lambda exc: page.js_errors.append(str(exc)))
    await page.goto(f"{node.url}/console")
    await page.fill("#password", ADMIN_PASSWORD)
    await page.click("#login button[type=submit]")
    await expect(page.locator("#who")).to_have_text("admin")
    return page


async def _inbound(page, kind: str) -> dict:
    return await page.evaluate(INBOUND, kind) or {"frames": 0, "bytes": 0, "energy": 0}


async def test_test_session_shows_which_rooms_are_ready(mnode, browser, tmp_path):
    a_id, b_id, c_id = _communes(mnode)[:3]  # c has no terminal running
    agents = [await make_agent(mnode, tmp_path, ep, **AGENT) for ep in (a_id, b_id)]
    page = await _console(browser, mnode)
    try:
        await page.click("nav.tabs button[data-tab=test]")
        await expect(page.locator("#t-chair")).to_have_value("hg-ubnd")  # the province chairs the check
        await page.fill("#t-invited", f"ep:{a_id}\nep:{b_id}\nep:{c_id}")
        await page.click("#t-start")
        # the chair's own room is checked too: 4 rooms, the two terminals ready
        await expect(page.locator("#t-summary")).to_have_text("2/4 sẵn sàng (ready)", timeout=15000)
        problems = page.locator("#t-problems li")
        await expect(problems).to_have_count(2)
        for ep in (c_id, "hg-ubnd"):
            await expect(page.locator(f'#t-problems li[data-endpoint="{ep}"]')).to_contain_text("ngoại tuyến (offline)")
        await expect(page.locator(f'#t-rows tr.ready[data-endpoint="{a_id}"] td.ok')).to_have_count(6)
        status, listing = await mnode.call("GET", "/api/v1/meetings")
        test = next(m for m in listing["meetings"] if m["title"] == "Kiểm tra điểm cầu")
        assert test["chair"] == "hg-ubnd" and test["duration_minutes"] == 30
        assert all(ag.meeting and ag.meeting["id"] == test["id"] for ag in agents)

        shot = tmp_path / "test-session.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 20_000

        await page.click("#t-stop")  # ending the test cancels the session: the terminals leave it
        await expect(page.locator("#t-state")).to_contain_text("đã kết thúc")
        await until(lambda: all(ag.meeting is None for ag in agents), 5, what="terminals left the test session")
        assert page.js_errors == []
    finally:
        for ag in agents:
            await ag.stop()
        await page.context.close()


async def test_schedule_join_see_raise_hand_floor_and_hear(mnode, browser, tmp_path):
    a_id, b_id = _communes(mnode)[:2]
    a, b = [await make_agent(mnode, tmp_path, ep, **AGENT) for ep in (a_id, b_id)]
    console = await _console(browser, mnode)
    laptop = None
    try:
        # 1. the operator schedules the district meeting through the form, starting now
        await console.click("nav.tabs button[data-tab=schedule]")
        await console.fill("#f-title", "Giao ban huyện Mèo Vạc")
        await expect(console.locator("#f-chair option")).to_have_count(16)
        await console.select_option("#f-chair", DISTRICT)
        await console.fill("#f-invited", f"tree:{DISTRICT}")
        await expect(console.locator("#f-count")).to_have_text("19")
        await console.fill("#f-start", datetime.now(VN).strftime("%Y-%m-%dT%H:%M"))
        await console.fill("#f-duration", "60")
        await console.click("#schedule button[type=submit]")
        row = console.locator("#meetings tr", has_text="Giao ban huyện Mèo Vạc")
        await expect(row).to_have_count(1)
        meeting_id = await row.get_attribute("data-meeting")

        # 2. the terminals join by themselves when the scheduler opens it
        await until(lambda: all(ag.meeting and ag.meeting["id"] == meeting_id for ag in (a, b)), 10, what="agents in")

        # 3. a laptop joins with the link the console hands out, and decodes an agent's video
        console.once("dialog", lambda d: asyncio.ensure_future(d.accept("Chủ tịch UBND huyện Mèo Vạc")))
        await row.locator("button[data-act=link]").click()
        url = await console.locator("#link-out a").get_attribute("href")
        laptop = await (await browser.new_context()).new_page()
        laptop.js_errors = []
        laptop.on("pageerror", lambda exc: laptop.js_errors.append(str(exc)))
        await laptop.goto(url)
        await expect(laptop.locator("#camera")).to_contain_text("sẵn sàng", timeout=5000)
        await laptop.locator("#join").click()
        await expect(laptop.locator("#people li")).to_have_count(3, timeout=5000)
        for _ in range(150):
            if (await _inbound(laptop, "video"))["frames"] > 10:
                break
            await laptop.wait_for_timeout(100)
        else:
            raise AssertionError("the laptop decoded no video from the terminals within 15 s")

        # 4. the operator watches the live map: both rooms joined, sending, link quality shown
        await console.click("nav.tabs button[data-tab=meetings]")
        await row.locator("button[data-act=live]").click()
        tile = console.locator(f'#map .tile[data-endpoint="{a_id}"]')
        for ep in (a_id, b_id):
            await expect(console.locator(f'#map .tile[data-endpoint="{ep}"]')).to_have_class(
                has_class("q-good", "q-fair"), timeout=8000
            )
        assert "kbit/s" in await tile.get_attribute("title")
        await until_async(lambda: _operator_in(mnode, meeting_id), 8, what="console joined the room")

        # 5. everyone is muted; the commune raises its hand on the room's control API
        await console.click('#chair button[data-act="mute_all"]')
        await until(lambda: a.muted["audio"] and b.muted["audio"], 5, what="terminals obey mute all")
        await laptop.wait_for_timeout(1000)  # silence reaches the laptop's jitter buffer
        quiet = await _heard(laptop, packets=False)  # muted terminals send nothing, or silence
        async with aiohttp.ClientSession() as http:
            async with http.post(a.control.url + "/raise-hand") as resp:
                assert resp.status == 200, await resp.text()
        await expect(tile).to_have_class(has_class("hand"), timeout=5000)

        # 6. the operator gives it the floor on the live map: the laptop hears the commune
        await tile.click()
        await expect(console.locator("#sel-media")).to_contain_text("kbit/s")
        await console.click('#sel button[data-act="grant"]')
        await until(lambda: a.floor == a_id and not a.muted["audio"], 5, what="floor reaches the terminal")
        await expect(tile).to_have_class(has_class("floor"), timeout=5000)
        await laptop.wait_for_timeout(800)
        heard = await _heard(laptop)
        print(f"\naudio energy per second at the laptop: all muted {quiet:.5f}, commune has the floor {heard:.5f}")
        assert heard > 0.002 and heard > 5 * quiet
        sources = _audio_sources(mnode, meeting_id)
        assert a_id in sources, sources  # the laptop's audio slots carry the commune's microphone

        shot = tmp_path / "live-map.png"
        await console.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 40_000
        status, live = await mnode.call("GET", f"/api/v1/meetings/{meeting_id}/live")
        assert live["media"][a_id]["sending"]["video"] and live["media"][b_id]["sending"]["audio"]
        assert console.js_errors == [] and laptop.js_errors == []
    finally:
        await a.stop()
        await b.stop()
        if laptop is not None:
            await laptop.context.close()
        await console.context.close()


async def _heard(page, seconds: float = 1.5, packets: bool = True) -> float:
    """Audio energy the page decodes per second (inbound-rtp totalAudioEnergy delta)."""
    before = await _inbound(page, "audio")
    await page.wait_for_timeout(int(seconds * 1000))
    after = await _inbound(page, "audio")
    assert not packets or after["bytes"] > before["bytes"], "no audio packets reach the laptop"
    return (after["energy"] - before["energy"]) / seconds


async def _operator_in(node, meeting_id: str) -> bool:
    status, live = await node.call("GET", f"/api/v1/meetings/{meeting_id}/live")
    return any(p["role"] == "operator" for p in live.get("participants", []))


def _audio_sources(node, meeting_id: str) -> set[str]:
    meeting = node.ctx.media.meetings[meeting_id]
    return {
        o.source.endpoint_id
        for ep, peer in meeting.peers.items()
        if ep.startswith("guest")
        for o in peer.outputs.values()
        if o.role == "audio" and o.source is not None
    }
