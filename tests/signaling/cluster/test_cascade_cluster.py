"""A cascade across processes: the meeting's origin media node and a district edge node
(``--media-serves hg-meo-vac``) as `giaoban serve` processes on one real Redis. The district's
communes get their peers on the edge, which pulls the meeting once from the origin."""

from __future__ import annotations

import re
import time

import pytest

from tests.support.cluster import cluster_view, join_all, running_cluster
from tests.support.media_clients import wait_for

pytestmark = pytest.mark.integration


async def media_peers(sig, port: int) -> int:
    async with sig.http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        return int(float(re.search(r"^giaoban_media_peers (\S+)$", await resp.text(), re.M).group(1)))


async def test_district_edge_serves_its_communes_through_one_cascade_link(tmp_path, redis_url):
    nodes = {"media-origin": ("local", []), "media-edge": ("local", ["--media-serves", "hg-meo-vac"])}
    async with running_cluster(tmp_path, redis_url, nodes) as (sig, procs):
        await chair_on_origin_communes_on_edge(sig, procs)


async def chair_on_origin_communes_on_edge(sig, procs) -> None:
    ends = []
    try:
        assert (await cluster_view(sig))["media_nodes"]["media-edge"]["serves"] == ["hg-meo-vac"]
        communes = [e.id for e in sig.ctx.directory.select(["tier:commune@hg-meo-vac"])[:3]]
        meeting = await sig.schedule(chair="hg-ubnd", invited=["tier:commune@hg-meo-vac"])
        ends = await join_all(
            sig, meeting["id"], [("hg-ubnd", 220)] + [(c, 30 + 20 * i) for i, c in enumerate(communes)]
        )
        chair, rooms = ends[0], ends[1:]
        await chair.ws.send("grant_floor", endpoint_id="hg-ubnd")  # the chair opens the briefing
        # a fibre commune forwards the chair's camera (bright); thin communes get the origin's composite
        sfu = [r for r in rooms if str(sig.ctx.directory.get(r.endpoint).link) == "fibre"]
        assert sfu and len(sfu) < len(rooms), "the test needs one fibre and one thin commune"
        bright = lambda end: end.frames_since(0) >= 10 and sum(v for _, v in end.client.video_frames()[-5:]) / 5 > 150
        assert await wait_for(
            lambda: all(bright(r) if r in sfu else r.frames_since(0) >= 10 for r in rooms), timeout=20
        ), f"communes on the edge do not see the chair: {[r.client.video_frames()[-3:] for r in rooms]}"
        assert (await cluster_view(sig))["pins"][meeting["id"]]["node"] == "media-origin"  # edges are not origins
        # the origin holds the chair and ONE cascade peer, not one per commune; the edge holds the communes
        assert await media_peers(sig, procs["media-origin"][1]) == 2
        assert await media_peers(sig, procs["media-edge"][1]) == len(communes)
        _, live = await sig.call("GET", f"/api/v1/meetings/{meeting['id']}/live")  # link quality from both nodes
        assert list(live["cascade_links"]) == ["cascade:media-edge"]
        assert set(communes) <= set(live["media"]) and "hg-ubnd" in live["media"]

        # the floor goes to a commune on the edge: its camera goes up the link to the chair
        await chair.ws.send("grant_floor", endpoint_id=communes[0])
        granted = time.monotonic()
        assert await wait_for(
            lambda: chair.frames_since(granted) >= 10 and sum(v for _, v in chair.client.video_frames()[-5:]) / 5 < 100,
            timeout=15,
        ), "the chair does not see the commune that has the floor"

        # the origin dies: the edge loses its cascade link (media_reset to its communes), the chair's
        # link breaks too; the only live media node, the edge, becomes the meeting's node
        procs["media-origin"][0].kill()
        killed = time.monotonic()
        assert await wait_for(lambda: all(e.resets and e.frames_since(killed + 0.1) >= 10 for e in ends), timeout=10), (
            f"not everyone has video again 10 s after the origin died: {[len(e.resets) for e in ends]}"
        )
        print(f"everyone has video again {time.monotonic() - killed:.2f} s after kill -9 of the origin")
        assert (await cluster_view(sig))["pins"][meeting["id"]]["node"] == "media-edge"
        assert await media_peers(sig, procs["media-edge"][1]) == len(ends)  # all directly on the edge now, no cascade
    finally:
        for end in ends:
            await end.stop()
