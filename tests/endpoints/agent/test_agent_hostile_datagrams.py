"""A room terminal's media survives hostile datagrams sent to its own ICE ports (issue #11, item 1).

The agent runs as its own process (``giaoban-agent``), as in a commune room: the server's guard
is not in that process. Its camera holds the floor; another terminal watches. A seeded stream
of hostile datagrams (the generator of tests/mcu/peer/test_hostile_datagrams.py) goes to every UDP
port the agent process has open. The watcher must keep getting new pictures, and the agent must
not have had to rebuild its media connection.
"""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.agents import make_agent
from tests.support.waiting import until
from tests.endpoints.agent.test_agent_join import DISTRICT, communes
from tests.support.harness import WsClient
from tests.support.datagrams import hostile

pytestmark = pytest.mark.integration

SEED = 23
PER_PORT = 1500
MEDIA_CONNECTED = "media connected"


def udp_ports(pid: int) -> list[tuple[str, int]]:
    out = subprocess.run(["ss", "-Huanp"], capture_output=True, text=True, timeout=10).stdout
    ports = set()
    for line in out.splitlines():
        fields = line.split()
        if f"pid={pid}," in line and len(fields) >= 4 and fields[3].startswith("127.0.0.1:"):
            ports.add(("127.0.0.1", int(fields[3].rsplit(":", 1)[1])))
    return sorted(ports)


async def test_agent_media_survives_hostile_datagrams(mnode, tmp_path: Path):
    sender_id, watcher_id = communes(mnode)[2:4]
    meeting = await mnode.schedule(chair=DISTRICT, invited=["tier:commune@hg-meo-vac"])
    chair = await WsClient.connect(mnode, await mnode.endpoint_token(DISTRICT))
    await mnode.endpoint_token(sender_id)
    secret = tmp_path / "sender.secret"
    secret.write_text(mnode.secrets[sender_id] + "\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "endpoints.agent.cli",
        "--server",
        mnode.url,
        "--endpoint",
        sender_id,
        "--secret-file",
        str(secret),
        "--data-dir",
        str(tmp_path / "sender"),
        "--control-port",
        "-1",
        "--video",
        "test",
        "--audio",
        "none",
        "--video-size",
        "160x120",
        "--fps",
        "10",
        "--ice-host",
        "127.0.0.1",
        stderr=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
    )
    lines: list[str] = []

    async def read() -> None:
        assert proc.stderr is not None
        async for raw in proc.stderr:
            lines.append(raw.decode(errors="replace"))

    reader = asyncio.create_task(read())
    watcher = await make_agent(mnode, tmp_path, watcher_id, video="none", audio="none")
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    stranger.setblocking(False)
    try:
        await chair.send("join", meeting_id=meeting["id"])
        await chair.expect("joined")
        await until(lambda: any(MEDIA_CONNECTED in line for line in lines), 20, what="sender's media up")
        await chair.send("grant_floor", endpoint_id=sender_id)
        await until(
            lambda: watcher.peer is not None and watcher.peer.frames_received("video") > 10,
            15,
            what="the watcher sees the sender",
        )
        targets = udp_ports(proc.pid)
        assert targets, "the agent process has no UDP port on 127.0.0.1"
        rng, sent = random.Random(SEED), 0
        for target in targets:
            for i in range(PER_PORT):
                try:
                    stranger.sendto(hostile(rng), target)
                    sent += 1
                except OSError:
                    pass  # a full send buffer: this machine's rate limit
                if i % 50 == 0:
                    await asyncio.sleep(0)
        assert sent > PER_PORT // 2
        # aiortc's receive loop dies at once on a bad datagram and the media ~1.5 s later
        await asyncio.sleep(2.5)
        before = watcher.peer.frames_received("video")
        await until(
            lambda: watcher.peer.frames_received("video") >= before + 10,
            10,
            what="the watcher keeps seeing the sender after the attack",
        )
        reconnects = sum(MEDIA_CONNECTED in line for line in lines) - 1
        assert reconnects == 0, "".join(lines[-20:])
    finally:
        stranger.close()
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
        reader.cancel()
        await watcher.stop()
        await chair.close()
