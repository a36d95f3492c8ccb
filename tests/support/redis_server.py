"""A real, throw-away redis-server on 127.0.0.1 for tests.

    with RedisServer() as server:      # free port, temp dir, no persistence
        store = RedisStore(server.url)  # "redis://127.0.0.1:<port>/0"

The server is killed and its temp dir removed on exit. ``stop()``/``start()`` can also be called
by a test that wants to see the store lose its server (a restart keeps the port when it can).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def redis_server_binary() -> str:
    found = shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )
    if found is None:
        raise RuntimeError("redis-server not found: install Debian's redis-server (apt-get install redis-server)")
    return found


def _pings(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    def __init__(self, startup_timeout_s: float = 10.0) -> None:
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> "RedisServer":
        self._dir = self._dir or tempfile.TemporaryDirectory(prefix="giaoban-redis-")
        last_error = ""
        for attempt in range(3):  # the free port can be taken by someone else before redis binds it
            if attempt or not self.port:  # a restart after stop() first tries the same port
                self.port = free_port()
            last_error = self._launch()
            if not last_error:
                return self
        self.close()
        raise RuntimeError(f"redis-server did not start: {last_error}")

    def _launch(self) -> str:
        assert self._dir is not None
        logfile = Path(self._dir.name) / "redis.log"
        cmd = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir.name,
            "--logfile",
            str(logfile),
        ]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                break
            if _pings(self.port):
                return ""
            time.sleep(0.02)
        self.stop()
        return logfile.read_text(errors="replace")[-500:] if logfile.exists() else "no log"

    def stop(self) -> None:
        """Kill the server (the temp dir stays for a later ``start``)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
