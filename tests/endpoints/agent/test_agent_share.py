"""Sharing a document from the room terminal (#17): the agent's ``screen`` source goes out as the
meeting's slides on a second video line, offered again after joining.

Real agents over UDP on 127.0.0.1 against a whole node; what is checked is what the receiving
agent decodes: the shared flat colour on a track of its own (SFU), or in the composite's first
tile (MCU, where screen shares come first).
"""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from endpoints.agent import Agent
from mcu.compose.layouts import Layout, layout_rects
from tests.endpoints.agent.test_agent_join import DISTRICT, communes
from tests.support.agents import make_agent
from tests.support.waiting import until

pytestmark = pytest.mark.integration

RED = (220, 30, 30)  # config.COLOURS["red"]


def _close(rgb, want=RED, tolerance: int = 30) -> bool:
    return all(abs(int(a) - b) <= tolerance for a, b in zip(rgb, want))


async def _mean_colours(agent: Agent, seconds: float = 1.0) -> dict[str, tuple[int, ...]]:
    """Each received video track's mean colour over a frame decoded within ``seconds``."""
    out: dict[str, tuple[int, ...]] = {}
    peer = agent.peer
    assert peer is not None
    for track_id, info in list(peer.received.items()):
        if info["kind"] != "video":
            continue
        track = peer.watch(track_id)
        try:
            frame = await asyncio.wait_for(track.recv(), seconds)
        except asyncio.TimeoutError:
            continue
        finally:
            track.stop()
        out[track_id] = tuple(int(v) for v in frame.to_ndarray(format="rgb24").reshape(-1, 3).mean(axis=0))
    return out


async def _press(agent: Agent, path: str) -> tuple[int, dict]:
    """A button of the room's local control page: POST to the agent's control API."""
    assert agent.control is not None
    async with aiohttp.ClientSession() as http:
        async with http.post(agent.control.url + path) as resp:
            return resp.status, await resp.json()


async def _button(agent: Agent) -> str:
    assert agent.control is not None
    async with aiohttp.ClientSession() as http:
        async with http.get(agent.control.url + "/status") as resp:
            return (await resp.json())["share_button"]


async def _both_in(a: Agent, b: Agent) -> None:
    await until(
        lambda: all(x.peer is not None and x.peer.connected_at for x in (a, b)), 15, what="both agents' media up"
    )


def _modes(mode: str) -> dict[str, str]:
    return {"fibre": mode, "thin": mode, "mobile": mode}


async def test_an_agent_shares_a_document_another_sfu_agent_sees_it_and_sees_it_stop(mnode, tmp_path):
    a_id, b_id = communes(mnode)[:2]
    await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"], media_modes=_modes("sfu"))
    a = await make_agent(mnode, tmp_path, a_id, screen="testsrc:red")
    b = await make_agent(mnode, tmp_path, b_id)
    try:
        await _both_in(a, b)
        assert await _button(a) == "Chia sẻ tài liệu"
        status, body = await _press(b, "/share")  # b has no screen source set
        assert status == 409 and body["message"].startswith("chưa cấu hình nguồn chia sẻ tài liệu"), body
        status, body = await _press(a, "/share")
        assert status == 200 and body["sharing"] and body["next"] == "Dừng chia sẻ", body
        assert await _button(a) == "Dừng chia sẻ"

        async def slides() -> list[str]:
            return [t for t, rgb in (await _mean_colours(b)).items() if _close(rgb)]

        red: list[str] = []
        for _ in range(40):
            red = await slides()
            if red:
                break
            await asyncio.sleep(0.2)
        assert len(red) == 1, await _mean_colours(b)
        track_id = red[0]
        assert a.peer is not None and a.peer.screen is not None and a.peer.screen.frames > 0

        status, body = await _press(a, "/stop-share")
        assert status == 200 and body["changed"] and await _button(a) == "Chia sẻ tài liệu", body
        await asyncio.sleep(0.5)  # frames already in flight
        before = b.peer.received[track_id]["frames"]
        await asyncio.sleep(1.5)
        assert b.peer.received[track_id]["frames"] == before, "slides still arrive after the share stopped"
        assert not await slides()

        assert await a.set_sharing(True)  # the same line again
        await until(lambda: b.peer.received[track_id]["frames"] > before + 5, 10, what="slides again")
        assert any(_close(rgb) for rgb in (await _mean_colours(b)).values())
    finally:
        await a.stop()
        await b.stop()


async def _first_tile(agent: Agent, layout: Layout) -> tuple[int, ...]:
    """The mean colour of the middle of the composite's first tile (screen shares come first)."""
    peer = agent.peer
    assert peer is not None
    [track_id] = [t for t, i in peer.received.items() if i["kind"] == "video"]
    track = peer.watch(track_id)
    try:
        frame = await asyncio.wait_for(track.recv(), 2)
    finally:
        track.stop()
    img = frame.to_ndarray(format="rgb24")
    tile = layout_rects(layout, frame.width, frame.height)[0]
    middle = img[tile.y + tile.h // 4 : tile.y + 3 * tile.h // 4, tile.x + tile.w // 4 : tile.x + 3 * tile.w // 4]
    return tuple(int(v) for v in middle.reshape(-1, 3).mean(axis=0))


async def test_the_composite_an_mcu_agent_receives_shows_the_shared_document(mnode, tmp_path):
    a_id, c_id = communes(mnode)[2:4]
    meeting = await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"], media_modes=_modes("mcu"))
    a = await make_agent(mnode, tmp_path, a_id, screen="testsrc:red")
    c = await make_agent(mnode, tmp_path, c_id)
    try:
        await _both_in(a, c)
        await until(lambda: c.peer.frames_received("video") > 10, 10, what="the composite arrives")

        async def first_tile() -> tuple[int, ...]:  # in the layout the node composes now
            return await _first_tile(c, mnode.ctx.media.meetings[meeting["id"]].mcu.compositor.layout)

        assert not _close(await first_tile())
        assert await a.set_sharing(True)
        for _ in range(50):
            if _close(await first_tile()):
                break
            await asyncio.sleep(0.2)
        assert _close(await first_tile()), await first_tile()

        assert await a.set_sharing(False)
        for _ in range(50):
            if not _close(await first_tile()):
                break
            await asyncio.sleep(0.2)
        assert not _close(await first_tile())
    finally:
        await a.stop()
        await c.stop()


async def test_the_share_comes_back_after_the_media_connection_is_rebuilt(mnode, tmp_path):
    a_id, b_id = communes(mnode)[4:6]
    await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"], media_modes=_modes("sfu"))
    a = await make_agent(mnode, tmp_path, a_id, screen="testsrc:red")
    b = await make_agent(mnode, tmp_path, b_id)
    try:
        await _both_in(a, b)
        assert await a.set_sharing(True)
        first = a.peer
        await first.pc.close()  # the media path died: the agent rejoins with a new peer connection
        await until(
            lambda: a.peer is not None and a.peer is not first and a.peer.screen is not None, 15, what="shared again"
        )
        for _ in range(50):
            if any(_close(rgb) for rgb in (await _mean_colours(b)).values()):
                break
            await asyncio.sleep(0.2)
        assert any(_close(rgb) for rgb in (await _mean_colours(b)).values()), await _mean_colours(b)
        assert "(sharing resumed)" in (tmp_path / a_id / "agent.log").read_text(encoding="utf-8")
    finally:
        await a.stop()
        await b.stop()
