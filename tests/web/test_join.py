"""The laptop join page in headless Chromium against a whole signaling node (media: none)."""

from __future__ import annotations

from tests.support.harness import WsClient
from tests.web.browser import expect


async def test_expired_link_shows_message(node, page):
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    token, _ = node.ctx.auth.signer.issue(
        "link", "guest:Lãnh đạo", -60, name="Lãnh đạo", meeting=meeting["id"], role="participant"
    )
    await page.goto(f"{node.url}/join?token={token}")
    fatal = page.locator("#fatal")
    await expect(fatal).to_be_visible(timeout=5000)
    await expect(fatal).to_contain_text("hết hạn")
    await expect(fatal).to_contain_text("expired")
    await expect(page.locator("#join")).to_be_hidden()
    assert page.js_errors == []


async def test_missing_token_is_explained(node, page):
    await page.goto(f"{node.url}/join")
    await expect(page.locator("#fatal")).to_contain_text("thiếu mã tham gia")


async def test_laptop_joins_sees_others_and_raises_hand(node, page):
    commune = node.ctx.directory.select(["tier:commune@hg-meo-vac"])[0]
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    await page.goto((await node.join_link(meeting["id"], name="Phó Chủ tịch Nguyễn Văn A", role="participant"))["url"])
    await expect(page.locator("#camera")).to_contain_text("sẵn sàng", timeout=5000)  # fake camera + mic
    join = page.locator("#join")
    await expect(join).to_be_enabled(timeout=5000)
    await join.click()

    people = page.locator("#people")
    await expect(people).to_contain_text("Phó Chủ tịch Nguyễn Văn A", timeout=5000)
    await expect(page.locator("#media-notice")).to_contain_text("no media node")
    await expect(page.locator("#title")).to_have_text("Giao ban thử nghiệm")

    ws = await WsClient.connect(node, await node.endpoint_token(commune.id))
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        await ws.expect("joined")
        await expect(people.locator(f'li[data-endpoint="{commune.id}"]')).to_contain_text(commune.name)
        await expect(page.locator("#count")).to_have_text("2")

        await page.locator("#hand").click()
        hand = await ws.expect("hand", raised=True)
        assert hand["name"] == "Phó Chủ tịch Nguyễn Văn A" and hand["endpoint_id"] in hand["hands"]
        await expect(page.locator("#hand")).to_have_attribute("aria-pressed", "true")
        await expect(people).to_contain_text("giơ tay")
    finally:
        await ws.close()
    await expect(page.locator(f'#people li[data-endpoint="{commune.id}"]')).to_have_count(0)
    assert page.js_errors == []


async def test_lost_network_shows_banner_and_rejoins(node, page):
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    await page.goto((await node.join_link(meeting["id"], name="Bí thư Huyện ủy", role="participant"))["url"])
    await page.locator("#join").click()
    await expect(page.locator("#people")).to_contain_text("Bí thư Huyện ủy", timeout=5000)
    first = [s.session_id for s in node.ctx.sessions.all() if s.identity.kind == "link"]
    assert len(first) == 1

    await page.context.set_offline(True)  # the laptop loses its network: the browser fires "offline"
    banner = page.locator("#net")
    await expect(banner).to_be_visible(timeout=5000)
    await expect(banner).to_contain_text("đang kết nối lại")
    await page.context.set_offline(False)
    await expect(banner).to_be_hidden(timeout=10000)
    await expect(page.locator("#people")).to_contain_text("Bí thư Huyện ủy")

    # the server dropping the connection is recovered from the same way, and the page rejoins
    old = next(s for s in node.ctx.sessions.all() if s.identity.kind == "link")
    await old.ws.close(code=1011, message=b"test drop")
    await expect(banner).to_be_hidden(timeout=10000)
    for _ in range(50):
        now = [s for s in node.ctx.sessions.all() if s.identity.kind == "link"]
        if now and now[0].session_id not in (first[0], old.session_id) and now[0].occurrence_id:
            break
        await page.wait_for_timeout(100)
    else:
        raise AssertionError("the page did not rejoin after the server dropped it")
    status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
    assert [p["name"] for p in live["participants"]] == ["Bí thư Huyện ủy"]
    assert page.js_errors == []


async def test_denied_camera_is_explained_and_joining_still_works(node, page):
    meeting = await node.schedule(chair="hg-meo-vac", invited=["tree:hg-meo-vac"])
    # the person clicked "Block" on the browser's camera prompt
    await page.add_init_script("""navigator.mediaDevices.getUserMedia =
        () => Promise.reject(new DOMException("Permission denied", "NotAllowedError"));""")
    await page.goto((await node.join_link(meeting["id"], name="Trưởng phòng", role="participant"))["url"])
    camera = page.locator("#camera")
    await expect(camera).to_contain_text("không cho phép dùng camera")
    await expect(camera).to_contain_text("denied")
    await expect(page.locator("#retry-camera")).to_be_visible()
    await page.locator("#join").click()
    await expect(page.locator("#people")).to_contain_text("Trưởng phòng", timeout=5000)
    assert page.js_errors == []


async def test_chair_link_gives_the_floor_to_a_raised_hand(node, page):
    commune = node.ctx.directory.select(["tier:commune@hg-bac-me"])[0]
    meeting = await node.schedule(chair="hg-bac-me", invited=["tree:hg-bac-me"])
    await page.goto((await node.join_link(meeting["id"], name="Chủ tịch UBND huyện", role="chair"))["url"])
    await expect(page.locator("#who")).to_contain_text("chủ trì")
    await page.locator("#join").click()
    ws = await WsClient.connect(node, await node.endpoint_token(commune.id))
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        await ws.expect("joined")
        await ws.send("raise_hand")
        item = page.locator(f'#people li[data-endpoint="{commune.id}"]')
        await expect(item).to_contain_text("giơ tay")
        await item.locator("button.grant").click()
        floor = await ws.expect("floor", endpoint_id=commune.id)
        assert floor["by"] == "Chủ tịch UBND huyện"
        await expect(page.locator("#floor")).to_contain_text(commune.name)
    finally:
        await ws.close()
    assert page.js_errors == []
