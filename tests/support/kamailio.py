"""A real Kamailio (Debian's 5.6) on 127.0.0.1 with giaoban's deploy/kamailio/kamailio.cfg (#14).

``Kamailio(workdir, nodes).start()`` writes the dispatcher list from deploy/kamailio's template,
runs ``kamailio -DD -E`` with the config's defines pointed at ``workdir`` and a free port, and
waits until its control socket answers. ``pin(user, port)`` is what an operator or the app runs to
send calls for a dial number (or endpoint id) to one node: ``kamcmd htable.sets pin``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "kamailio" / "kamailio.cfg"
TEMPLATE = ROOT / "deploy" / "kamailio" / "dispatcher.list.template"


def require_kamailio() -> None:
    if not (shutil.which("kamailio") and shutil.which("kamcmd")):
        pytest.skip("kamailio is not installed (apt-get install kamailio)")


class Kamailio:
    def __init__(self, workdir: Path, nodes: dict[str, int], probe_s: int = 2) -> None:
        """``nodes``: node id -> its SIP port on 127.0.0.1 (two of them, as in the template)."""
        self.dir, self.nodes, self.probe_s = workdir, nodes, probe_s
        self.port = free_port()
        self.ctl = f"unix:{workdir / 'kamailio_ctl'}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Kamailio":
        self.dir.mkdir(parents=True, exist_ok=True)
        (a, pa), (b, pb) = self.nodes.items()
        listing = TEMPLATE.read_text().format(
            node_a_host="127.0.0.1", node_a_port=pa, node_a_id=a, node_b_host="127.0.0.1", node_b_port=pb, node_b_id=b
        )
        (self.dir / "dispatcher.list").write_text(listing)
        defines = {
            "LISTEN_UDP": f"udp:127.0.0.1:{self.port}",
            "LISTEN_TCP": f"tcp:127.0.0.1:{self.port}",
            "DISPATCHER_LIST": f'"{self.dir / "dispatcher.list"}"',
            "CTL_SOCKET": f'"{self.ctl}"',
            "RPC_FIFO": f'"{self.dir / "kamailio_rpc.fifo"}"',
            "PROBE_S": str(self.probe_s),
        }
        args = ["kamailio", "-f", str(CONFIG), "-DD", "-E", "-Y", str(self.dir), "-w", str(self.dir)]
        for name, value in defines.items():
            args += ["-A", f"{name}={value}"]
        self.log = open(self.dir / "kamailio.log", "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kamailio exited: {(self.dir / 'kamailio.log').read_text()[-2000:]}")
            if self.rpc("core.version").returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError("kamailio's control socket did not answer in 15 s")

    def rpc(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(["kamcmd", "-s", self.ctl, *command], capture_output=True, text=True, timeout=10)

    def pin(self, user: str, port: int) -> None:
        """Calls to sip:<user>@kamailio go to the node on 127.0.0.1:<port> from now on."""
        done = self.rpc("htable.sets", "pin", f"s:{user}", f"s:sip:127.0.0.1:{port}")
        assert done.returncode == 0, done.stderr

    def received(self, method: str) -> int:
        """How many ``method`` requests Kamailio has received so far (core statistics, module kex)."""
        done = self.rpc("stats.get_statistics", "core:")
        assert done.returncode == 0, done.stderr
        counts = dict(line.replace(" ", "").split("=") for line in done.stdout.splitlines() if "=" in line)
        return int(counts[f"core:rcv_requests_{method.lower()}"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if hasattr(self, "log"):
            self.log.close()
