"""Dial-out taken over from a node that DIES (#14, "back within 10 s").

Two ``giaoban serve`` processes with SIP on share one redis-server; a signaling node in this
process (no SIP) schedules the meeting. One process calls the room (the dial lock
``sipdial:<occurrence>:<endpoint>`` in the store decides which); the test kills it with SIGKILL, so
it neither BYEs the room nor releases its lock: the survivor must wait for the lock's TTL
(dialout.LOCK_TTL_S) and its next scan (SCAN_S), then call the room again.

* A room that answers every call (auto-answer, several lines) is called again within 10 s of the
  kill; the time is printed.
* A room with one line answers 486 Busy Here while it still holds the dead node's call (a real room
  system keeps an orphaned call until its own media timeout or session timer): the survivor's
  call would be refused and its backoff (5, 10, 20 s ...) follow. The dialler keeps the call's
  dialog in the ``sip-dial`` document, so the survivor BYEs the orphan first: the room, which
  would keep it for the whole session (1800 s), is free and answers the new call within 10 s.
Rooms: our SIP stack as the UA (tests/signaling/sip/test_dialout.py's AnsweringRoom).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.signaling.sip.test_dialout import AnsweringRoom
from tests.signaling.sip.test_gateway import CHAIR, until, write_directory
from tests.support.cli import giaoban_command
from tests.support.cluster import cluster_view, flush
from tests.support.harness import ROOT, start_node
from tests.support.redis_server import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
NODES = ("node-a", "node-b")


class OneLineRoom(AnsweringRoom):
    """Answers a call only while it holds none; otherwise 486 Busy Here (records every INVITE)."""

    def __init__(self) -> None:
        super().__init__()
        self.busy: list[float] = []

    async def _answer(self, call) -> None:
        if any(not held.ended.is_set() for held in self.calls):
            self.busy.append(time.monotonic())
            call.reject(486, "Busy Here")
            return
        await super()._answer(call)


def _serve(tmp: Path, node_id: str, directory: Path, redis_url: str) -> tuple[subprocess.Popen, int]:
    """A ``giaoban serve`` process with SIP (udp) on a free port; (process, SIP port)."""
    sip_port = free_port()
    config = tmp / f"{node_id}.yaml"
    config.write_text(
        "media: local\nice_host: 127.0.0.1\n"
        f"sip:\n  enabled: true\n  host: 127.0.0.1\n  port: {sip_port}\n  transports: [udp]\n"
    )
    data = tmp / node_id
    data.mkdir(parents=True, exist_ok=True)
    command = giaoban_command(data, "--config", str(config), store=redis_url, directory=str(directory))
    command += ["serve", "--host", "127.0.0.1", "--port", str(free_port()), "--node-id", node_id]
    command += ["--log-format", "text"]
    with open(data / "serve.log", "wb") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1")
        )
    return proc, sip_port


async def _cluster_dialling(tmp_path, redis_url: str, room: AnsweringRoom):
    """(signaling node, {node id: (process, SIP port)}, meeting) once one process has called the room."""
    await flush(redis_url)
    directory = write_directory(
        tmp_path / "directory.yaml",
        {"room-out": {"uri": f"sip:room-out@127.0.0.1:{room.port}", "allowed_sources": ["127.0.0.1"]}},
    )
    sig = await start_node(tmp_path / "sig", store=redis_url, node_id="sig", directory=str(directory))
    procs = {node: _serve(tmp_path, node, directory, redis_url) for node in NODES}
    deadline = time.monotonic() + 30
    while not set(NODES) <= set((await cluster_view(sig))["signaling_nodes"]):
        assert time.monotonic() < deadline, "the serve processes did not register in 30 s"
        assert all(p.poll() is None for p, _ in procs.values()), _logs(tmp_path)
        await asyncio.sleep(0.2)
    meeting = await sig.schedule(CHAIR, ["room-out"])
    assert await until(lambda: _invited(room, 1), 15), "nobody called the room\n" + _logs(tmp_path)
    return sig, procs, meeting


def _logs(tmp_path) -> str:
    return "\n".join((tmp_path / n / "serve.log").read_text()[-1500:] for n in NODES if (tmp_path / n).exists())


def _kill_the_dialler(room: AnsweringRoom, procs: dict[str, tuple[subprocess.Popen, int]]) -> str:
    """SIGKILL the process whose SIP port sent the room's call; its node id."""
    port = room.calls[0].source[1]
    (dialler,) = [node for node, (_, sip_port) in procs.items() if sip_port == port]
    proc = procs[dialler][0]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return dialler


async def _invited(room: AnsweringRoom, n: int) -> bool:
    return len(room.invites) + len(getattr(room, "busy", [])) >= n


async def _stop(sig, procs, room) -> None:
    for proc, _ in procs.values():
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    await sig.stop()
    await room.stop()


async def test_a_killed_nodes_dial_out_is_taken_over_within_10_s(tmp_path, redis_url):
    room = AnsweringRoom()
    await room.start()
    sig, procs, _ = await _cluster_dialling(tmp_path, redis_url, room)
    try:
        assert await until(lambda: _answered(room, 1), 10)
        dialler = _kill_the_dialler(room, procs)
        killed = time.monotonic()
        assert await until(lambda: _answered(room, 2), 12), "no node called the room again\n" + _logs(tmp_path)
        took = room.invites[1] - killed
        print(f"\ntakeover after kill -9 of {dialler}: the room was called again after {took:.1f} s")
        assert took < 10
        assert room.calls[1].source[1] != room.calls[0].source[1]  # the survivor's call
        assert room.calls[0].ended.is_set() and room.calls[0].end_reason == "bye"  # the survivor BYEd the orphan
    finally:
        await _stop(sig, procs, room)


async def test_a_one_line_room_is_back_within_10_s_of_a_kill(tmp_path, redis_url):
    room = OneLineRoom()
    await room.start()
    sig, procs, _ = await _cluster_dialling(tmp_path, redis_url, room)
    try:
        assert await until(lambda: _answered(room, 1), 10)
        _kill_the_dialler(room, procs)
        killed = time.monotonic()
        back = await until(lambda: _answered(room, 2), 12)
        busy = [round(t - killed, 1) for t in room.busy]
        took = room.invites[-1] - killed if back else float("inf")
        print(f"\none-line room after kill -9: back after {took:.1f} s, 486 Busy Here at {busy} s after the kill")
        assert back and took < 10
        assert room.calls[0].end_reason == "bye" and not busy  # the orphan BYEd before the new call
    finally:
        await _stop(sig, procs, room)


async def _answered(room: AnsweringRoom, n: int) -> bool:
    return len(room.calls) >= n
