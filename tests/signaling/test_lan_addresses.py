"""`giaoban serve --host 0.0.0.0` on a LAN with default settings (#16): the server runs in a network
namespace the test creates, a client machine in another, joined by a veth pair on 10.77.0.0/24.
Nothing else reaches them and no traffic leaves them. The server must print the address it
advertises, and two agents in the client namespace, given only the join link's base it printed,
join a meeting and decode each other's video through it. Before #16 media stayed on 127.0.0.1
and the links read http://0.0.0.0:PORT.

Needs root and `ip netns`; skipped otherwise."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import giaoban_command
from tests.support.harness import ADMIN_PASSWORD

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SERVER_IP, CLIENT_IP, PORT = "10.77.0.1", "10.77.0.2", 8080


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _netns_usable() -> bool:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"gbprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=10)
    return True


@pytest.fixture
def lan():
    """Two namespaces (server, client) on one veth link; deleted whatever happens."""
    if not _netns_usable():
        pytest.skip("needs root and `ip netns` (network namespaces)")
    tag = os.getpid() % 100000
    server, client = f"gbsrv{tag}", f"gbcli{tag}"
    try:
        _ip("netns", "add", server)
        _ip("netns", "add", client)
        _ip("link", "add", f"gbs{tag}", "netns", server, "type", "veth", "peer", "name", f"gbc{tag}", "netns", client)
        for ns, dev, addr in ((server, f"gbs{tag}", SERVER_IP), (client, f"gbc{tag}", CLIENT_IP)):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield server, client
    finally:
        for ns in (server, client):  # deleting a namespace deletes its end of the veth pair
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def _wait_for_line(path: Path, pattern: str, proc: subprocess.Popen, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(encoding="utf-8", errors="replace"))
        if found:
            return found
        assert proc.poll() is None, f"the server exited ({proc.returncode}): {path.read_text()[-2000:]}"
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} within {timeout} s: {path.read_text()[-2000:]}")


def test_a_server_on_the_wildcard_serves_another_machine_with_default_settings(lan, tmp_path):
    server_ns, client_ns = lan
    config = tmp_path / "server.yaml"  # only what a first start needs: the admin password
    config.write_text(f"admin_password: {ADMIN_PASSWORD}\nlog_format: text\n", encoding="utf-8")
    command = giaoban_command(tmp_path / "server", "--config", str(config), "serve", "--host", "0.0.0.0")
    command += ["--port", str(PORT), "--media", "local"]
    log = tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen(["ip", "netns", "exec", server_ns, *command], cwd=ROOT, stdout=out, stderr=out)
    try:
        link = _wait_for_line(log, r"join links (\S+)", server, 60).group(1)
        startup = log.read_text(encoding="utf-8")
        assert link == f"http://{SERVER_IP}:{PORT}"
        assert f"media: ICE host candidates on {SERVER_IP}\n" in startup
        assert "Warning" not in startup and "Cảnh báo" not in startup

        work = tmp_path / "client"
        work.mkdir()
        run = subprocess.run(
            ["ip", "netns", "exec", client_ns, sys.executable, "-m", "tests.support.lan_client", link, str(work), "60"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        media = json.loads(run.stdout.strip().splitlines()[-1])
        for endpoint, stats in media.items():
            assert stats and stats["state"] == "connected", (endpoint, stats)
            assert stats["received_frames"]["video"] >= 20, (endpoint, stats)  # decoded from the other agent
            assert stats["received_frames"]["audio"] > 0, (endpoint, stats)
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)
