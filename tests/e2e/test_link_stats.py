"""Link quality on the live map, server side: GET /live carries "media" per endpoint from the
media node (sending per kind, inbound kbit/s, loss both ways, a grade)."""

from __future__ import annotations

import pytest

from mcu.meeting.quality import grade
from tests.support.agents import make_agent
from tests.support.waiting import until_async

DISTRICT = "hg-meo-vac"


async def _media(node, meeting_id: str) -> dict:
    status, live = await node.call("GET", f"/api/v1/meetings/{meeting_id}/live")
    assert status == 200, live
    return live.get("media", {})


@pytest.mark.integration
async def test_live_reports_sending_bitrate_loss_and_quality(mnode, tmp_path):
    a_id, b_id = [ep.id for ep in mnode.ctx.directory.select(["tier:commune@hg-meo-vac"])][:2]
    a = await make_agent(mnode, tmp_path, a_id)
    b = await make_agent(mnode, tmp_path, b_id, video="none")  # a room whose camera is broken
    try:
        meeting = await mnode.schedule(chair=DISTRICT, invited=["tree:hg-meo-vac"], minutes_from_now=0)

        async def both_measured() -> bool:
            media = await _media(mnode, meeting["id"])
            return media.get(a_id, {}).get("kbps", {}).get("video", 0) > 0 and media.get(b_id, {}).get(
                "sending", {}
            ).get("audio", False)

        await until_async(both_measured, 15, what="both agents measured by the media node")
        media = await _media(mnode, meeting["id"])
        ma, mb = media[a_id], media[b_id]
        print(f"\n{a_id}: {ma}\n{b_id}: {mb}")
        assert ma["connected"] and ma["sending"] == {"audio": True, "video": True, "screen": False}
        assert ma["kbps"]["audio"] > 5 and ma["bitrate_kbps"] >= ma["kbps"]["video"] > 0
        assert ma["loss_in_pct"] < 3 and ma["loss_out_pct"] < 3  # loopback
        assert ma["quality"] in ("good", "fair") and "no_video" not in ma["why"]
        assert mb["sending"]["video"] is False and mb["quality"] == "fair" and "no_video" in mb["why"]
    finally:
        await a.stop()
        await b.stop()
    status, live = await mnode.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
    assert live["media"] == {} or all(
        not m["connected"] or not any(m["sending"].values()) for m in live["media"].values()
    )


def test_grades():
    base = {
        "connected": True,
        "publishes": True,
        "sending": {"audio": True, "video": True, "screen": False},
        "kbps": {"audio": 40, "video": 600, "screen": 0},
        "bitrate_kbps": 640,
        "loss_in_pct": 0.0,
        "loss_out_pct": 0.0,
    }
    assert grade(base) == ("good", [])
    assert grade({**base, "loss_out_pct": 4.0}) == ("fair", ["loss"])
    assert grade({**base, "loss_in_pct": 12.0}) == ("poor", ["loss"])
    assert grade({**base, "kbps": {"audio": 40, "video": 8, "screen": 0}}) == ("fair", ["thin_video"])
    assert grade({**base, "sending": dict.fromkeys(("audio", "video", "screen"), False)}) == ("poor", ["no_media"])
    assert grade({**base, "connected": False}) == ("poor", ["not_connected"])
    viewer = {**base, "publishes": False, "sending": dict.fromkeys(("audio", "video", "screen"), False)}
    assert grade(viewer) == ("good", [])


@pytest.mark.integration
async def test_no_media_field_without_a_media_node(node):
    meeting = await node.schedule(chair=DISTRICT, invited=["tree:hg-meo-vac"], minutes_from_now=0)
    status, live = await node.call("GET", f"/api/v1/meetings/{meeting['id']}/live")
    assert status == 200 and live["open"] is True and "media" not in live
