"""The console's meeting page hangs up and calls a SIP room system (#14): "Gác máy" sends the
room a BYE and stops the redials, "Gọi" calls it again (observed at the room system, our stack)."""

from __future__ import annotations

import asyncio

from tests.signaling.sip.test_dialout import AnsweringRoom
from tests.signaling.sip.test_gateway import CHAIR, sip_node, until, _sip_in
from tests.support.harness import ADMIN_PASSWORD
from tests.web.browser import expect


async def test_console_hangs_up_and_calls_a_room_system(page, tmp_path):
    room = AnsweringRoom()
    await room.start()
    rooms = {"room-out": {"uri": f"sip:room-out@127.0.0.1:{room.port}", "allowed_sources": ["127.0.0.1"]}}
    node, _ = await sip_node(tmp_path, rooms)
    try:
        meeting = await node.schedule(CHAIR, ["room-out"], title="Giao ban có phòng SIP")
        assert await until(lambda: _sip_in(node, meeting["id"], "room-out"), 15)  # called when it opened
        await page.goto(f"{node.url}/console")
        await page.fill("#password", ADMIN_PASSWORD)
        await page.click("#login button[type=submit]")
        row = page.locator("#meetings tr", has_text="Giao ban có phòng SIP")
        await row.locator("button[data-act=live]").click()
        await page.locator('#map .tile[data-endpoint="room-out"]').click()
        await expect(page.locator("#sel-state")).to_contain_text("qua SIP")
        await page.click("#sip-hangup")
        await asyncio.wait_for(room.calls[0].ended.wait(), 10)
        assert room.calls[0].end_reason == "bye"
        await expect(page.locator("#sip-call")).to_be_visible(timeout=10000)
        await page.click("#sip-call")
        assert await until(lambda: _count(room, 2), 10), "the console's Gọi did not call the room"
        await expect(page.locator("#sip-hangup")).to_be_visible(timeout=10000)
        assert page.js_errors == []
    finally:
        await node.stop()
        await room.stop()


async def _count(room: AnsweringRoom, n: int) -> bool:
    return len(room.invites) >= n
