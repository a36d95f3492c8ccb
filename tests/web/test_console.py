"""The operator console in headless Chromium: log in, schedule through the form, watch the live map,
act as chair over the WebSocket, roll call."""

from __future__ import annotations

from datetime import datetime

from tests.support.harness import ADMIN_PASSWORD, VN, WsClient
from tests.web.browser import expect, has_class

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


async def test_console_schedules_and_watches_the_live_map(node, page, tmp_path):
    await page.goto(f"{node.url}/console")
    await page.fill("#password", ADMIN_PASSWORD)
    await page.click("#login button[type=submit]")
    await expect(page.locator("#who")).to_have_text("admin")

    # schedule the weekly briefing through the form, starting now (Vietnam time)
    await page.click("nav.tabs button[data-tab=schedule]")
    await page.fill("#f-title", "Giao ban tuần qua trình duyệt")
    await expect(page.locator("#f-chair option")).to_have_count(16)  # central, province and district rooms
    await page.select_option("#f-chair", "hg-ubnd")
    await page.locator('#f-picker input[value="all"]').check()
    await expect(page.locator("#f-invited")).to_have_value("all")
    await expect(page.locator("#f-count")).to_have_text("211")
    await page.fill("#f-invited", "tier:county")
    await expect(page.locator("#f-count-error")).to_be_visible()  # the server's message names the problem
    await expect(page.locator("#f-count")).to_have_text("?")
    await page.fill("#f-invited", "tier:commune@hg-meo-vac\nhg-meo-vac")
    await expect(page.locator("#f-count")).to_have_text("19")  # 18 communes + the district room
    now = datetime.now(VN)
    await page.fill("#f-start", now.strftime("%Y-%m-%dT%H:%M"))
    await page.fill("#f-duration", "60")
    await page.select_option("#f-repeat", "WEEKLY")
    await expect(page.locator(f'#f-days input[value="{DAYS[now.weekday()]}"]')).to_be_checked()
    await expect(page.locator("#f-codecs")).to_have_value("VP8,H264")  # the default order
    await page.select_option("#f-codecs", "H264,VP8")
    await page.click("#schedule button[type=submit]")
    row = page.locator("#meetings tr", has_text="Giao ban tuần qua trình duyệt")
    await expect(row).to_have_count(1)
    await expect(row.locator("select.codecs")).to_have_value("H264,VP8")

    status, listing = await node.call("GET", "/api/v1/meetings")
    meeting = next(m for m in listing["meetings"] if m["title"] == "Giao ban tuần qua trình duyệt")
    assert meeting["recurrence"] == f"FREQ=WEEKLY;BYDAY={DAYS[now.weekday()]}"
    assert meeting["chair"] == "hg-ubnd" and meeting["duration_minutes"] == 60
    assert meeting["video_codecs"] == ["H264", "VP8"]
    await row.locator("select.codecs").select_option("VP8")  # the list changes it in place (PATCH)
    await expect(page.locator("#msg")).to_contain_text("Đã đổi chuẩn nén video")
    status, changed = await node.call("GET", f"/api/v1/meetings/{meeting['id']}")
    assert changed["video_codecs"] == ["VP8"] and changed["version"] == meeting["version"] + 1
    meeting = changed

    commune = node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0]
    ws = await WsClient.connect(node, await node.endpoint_token(commune.id))
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        await ws.expect("joined")

        await row.locator("button[data-act=live]").click()
        await expect(page.locator("#map .tile")).to_have_count(211)
        await expect(page.locator("#map .group.district")).to_have_count(11)
        tile = page.locator(f'#map .tile[data-endpoint="{commune.id}"]')
        await expect(tile).to_have_class(has_class("joined"), timeout=5000)
        await expect(page.locator('#map .tile[data-endpoint="hg-dong-van"]')).to_have_class(has_class("offline"))
        district = page.locator('#map .group.district[data-group="hg-meo-vac"]')
        await expect(district.locator(".tile")).to_have_count(19)

        # a raised hand shows at once (WebSocket event), and the chair gives the floor from the console
        await ws.send("raise_hand")
        await expect(tile).to_have_class(has_class("hand"), timeout=5000)
        await expect(page.locator("#hands")).to_contain_text(commune.name)
        await tile.click()
        await expect(page.locator("#sel-name")).to_have_text(commune.name)
        await page.click('#sel button[data-act="grant"]')
        floor = await ws.expect("floor", endpoint_id=commune.id)
        assert floor["by"] == "Quản trị viên"
        await expect(tile).to_have_class(has_class("floor"), timeout=5000)
        await page.click('#sel button[data-act="mute"]')
        muted = await ws.expect("mute_request")
        assert muted["muted"] is True and muted["kind"] == "audio"
        await page.select_option("#layout", "grid_3x3")
        assert (await ws.expect("layout"))["layout"] == "grid_3x3"

        await page.click("#roll")
        await expect(page.locator(f'#roll-rows tr[data-endpoint="{commune.id}"]')).to_contain_text("có mặt")
        await expect(page.locator("#roll-summary")).to_contain_text("có mặt (present) 1")

        shot = tmp_path / "console-live.png"
        await page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 30_000
    finally:
        await ws.close()
    await expect(tile).to_have_class(has_class("online", "offline"), timeout=5000)

    # cancel the series from the list (after a confirmation)
    page.on("dialog", lambda dialog: dialog.accept())
    await page.click("nav.tabs button[data-tab=meetings]")
    await row.locator("button[data-act=cancel]").click()
    await expect(row).to_contain_text("đã hủy")
    status, body = await node.call("GET", f"/api/v1/meetings/{meeting['id']}")
    assert body["status"] == "cancelled"
    assert page.js_errors == []
