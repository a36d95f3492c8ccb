"""The `giaoban serve` command as an operator runs it: health, metrics, kill -9 and restart,
graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.support.cli import serve_command
from tests.support.harness import HAGIANG, free_port

pytestmark = pytest.mark.integration

VN = timezone(timedelta(hours=7))


def start(data: Path, port: int, *serve_args: str) -> subprocess.Popen:
    """``giaoban serve`` in a process, output on its stdout (errors too), once /healthz answers."""
    cmd = serve_command(data, port, "--media", "none", *serve_args)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=Path(__file__).resolve().parents[2]
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.2)
        assert proc.poll() is None, proc.stdout.read().decode()
    proc.kill()
    raise AssertionError("server did not become healthy in 30 s")


def request(port: int, method: str, path: str, body=None, token=None):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())


def test_serve_kill9_restart_keeps_schedule_and_sigterm_is_graceful(tmp_path):
    data, port = tmp_path / "data", free_port()
    proc = start(data, port)
    try:
        password = (data / "admin-password.txt").read_text().strip()  # generated on first start
        token = request(port, "POST", "/api/v1/auth/login", {"username": "admin", "password": password})["token"]
        start_at = (datetime.now(VN) + timedelta(days=2)).replace(hour=8, minute=0, second=0, microsecond=0)
        meeting = request(
            port,
            "POST",
            "/api/v1/meetings",
            {
                "title": "Giao ban tuần",
                "chair": "hg-ubnd",
                "invited": ["tier:district", "tier:commune"],
                "start": start_at.isoformat(),
                "duration_minutes": 90,
                "recurrence": "FREQ=WEEKLY;BYDAY=MO",
            },
            token,
        )
        health = request(port, "GET", "/healthz")
        assert health["endpoints"] == 211 and health["store"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            assert b"giaoban_http_requests_total" in r.read()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    proc = start(data, port)  # same data folder, after kill -9
    try:
        got = request(port, "GET", f"/api/v1/meetings/{meeting['id']}", token=token)
        assert got["title"] == "Giao ban tuần" and got["recurrence"] == "FREQ=WEEKLY;BYDAY=MO"
        assert len(got["invited_endpoints"]) == 1 + 11 + 195  # the chair counts as invited
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode()[-2000:]
    assert b"signaling node stopped" in out


def test_check_config_reports_bad_directory(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "version: 1\nname: x\nendpoints:\n  - id: tw\n    name: T\n    tier: central\n    kind: studio\n    link: fibre\n    colour: red\n",
        encoding="utf-8",
    )
    res = subprocess.run(
        [sys.executable, "-m", "signaling.cli", "--directory", str(bad), "check-config"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert res.returncode == 2
    assert f"{bad}:9" in res.stderr and "colour" in res.stderr
    ok = subprocess.run(
        [sys.executable, "-m", "signaling.cli", "--directory", HAGIANG, "check-config"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert ok.returncode == 0 and "211 endpoints" in ok.stdout
