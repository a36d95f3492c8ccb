"""Reference SFU for the comparison benchmark: Janus 1.1 (Debian package ``janus``).

Starts Janus from a config folder generated into a temporary directory: only the videoroom
plugin and the plain-HTTP transport (bound to 127.0.0.1), ICE gathering limited to 127.0.0.1,
IPv6 off, no event handlers, no loggers, quiet logging. ``JanusApi`` speaks the Janus HTTP API
(one session, many handles, one long-poll task routing events by transaction).

    .venv/bin/python -m loadtests.janus_server   # smoke test: start, create a room, stop
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import aiohttp

from loadtests.procstat import proc_cpu

JANUS_BIN = shutil.which("janus") or "/usr/bin/janus"
JANUS_LIB = "/usr/lib/x86_64-linux-gnu/janus"


# Janus skips interfaces flagged IFF_LOOPBACK when it lists addresses for ICE (and then lets
# libnice gather on every other address), so no setting makes it gather 127.0.0.1. This shim,
# preloaded into the Janus process only, reports "lo" without that flag; ice_enforce_list =
# "127.0.0.1" then selects it and nothing else.
LOOPBACK_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>

int getifaddrs(struct ifaddrs **ifap) {
    static int (*real)(struct ifaddrs **);
    if (!real)
        real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
    int rc = real(ifap);
    if (rc == 0)
        for (struct ifaddrs *i = *ifap; i != NULL; i = i->ifa_next)
            if (i->ifa_name != NULL && strcmp(i->ifa_name, "lo") == 0)
                i->ifa_flags &= ~IFF_LOOPBACK;
    return rc;
}
"""


class JanusError(RuntimeError):
    """Janus is missing, did not start, or answered a request with an error."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _link_only(folder: str, source_dir: str, name: str) -> str:
    """A plugins/transports folder holding one library, so Janus loads nothing else."""
    os.makedirs(folder, exist_ok=True)
    src = os.path.join(source_dir, name)
    if not os.path.exists(src):
        raise JanusError(f"{src} not found: apt-get install -y janus")
    os.symlink(src, os.path.join(folder, name))
    return folder


def build_shim(root: str) -> str:
    """Compile LOOPBACK_SHIM into root/loopback_shim.so (needs gcc)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        raise JanusError("no C compiler: Janus cannot be made to gather 127.0.0.1 (see LOOPBACK_SHIM)")
    src, lib = os.path.join(root, "loopback_shim.c"), os.path.join(root, "loopback_shim.so")
    with open(src, "w") as f:
        f.write(LOOPBACK_SHIM)
    done = subprocess.run(
        [cc, "-shared", "-fPIC", "-O2", "-o", lib, src, "-ldl"], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        raise JanusError(f"building the loopback shim failed: {done.stderr[-800:]}")
    return lib


def write_configs(root: str, http_port: int, debug_level: int = 2, event_loops: int = 0) -> str:
    """Write janus.jcfg and the two enabled modules' configs under root/conf."""
    conf = os.path.join(root, "conf")
    os.makedirs(conf, exist_ok=True)
    plugins = _link_only(os.path.join(root, "plugins"), f"{JANUS_LIB}/plugins", "libjanus_videoroom.so")
    transports = _link_only(os.path.join(root, "transports"), f"{JANUS_LIB}/transports", "libjanus_http.so")
    empty = os.path.join(root, "empty")
    os.makedirs(empty, exist_ok=True)
    files = {
        "janus.jcfg": f"""general: {{
    configs_folder = "{conf}"
    plugins_folder = "{plugins}"
    transports_folder = "{transports}"
    events_folder = "{empty}"
    loggers_folder = "{empty}"
    debug_level = {debug_level}
    interface = "127.0.0.1"
    session_timeout = 0
    {f"event_loops = {event_loops}" if event_loops else ""}
    server_name = "giaoban-bench"
    admin_secret = "{secrets.token_hex(8)}"
}}
certificates: {{
}}
media: {{
    ipv6 = false
    rtp_port_range = "40000-60000"
}}
nat: {{
    nice_debug = false
    ice_enforce_list = "127.0.0.1"
    ignore_mdns = true
}}
plugins: {{
}}
transports: {{
}}
loggers: {{
}}
events: {{
    broadcast = false
}}
""",
        "janus.transport.http.jcfg": f"""general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {http_port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
    admin_https = false
}}
""",
        "janus.plugin.videoroom.jcfg": "general: {\n}\n",
    }
    for name, text in files.items():
        with open(os.path.join(conf, name), "w") as f:
            f.write(text)
    return conf


class JanusProcess:
    """Janus running from a generated config folder in a temp dir; ``stop()`` is idempotent."""

    def __init__(self, debug_level: int = 2, event_loops: int = 0) -> None:
        self.debug_level = debug_level
        self.event_loops = event_loops  # 0: Janus default, one loop thread per handle
        self.proc: subprocess.Popen | None = None
        self.tmp: str | None = None
        self.url = ""
        self.log_path = ""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 15.0) -> None:
        if not os.path.exists(JANUS_BIN):
            raise JanusError("janus not installed: apt-get update && apt-get install -y janus")
        self.tmp = tempfile.mkdtemp(prefix="janus-bench-")
        port = free_port()
        conf = write_configs(self.tmp, port, self.debug_level, self.event_loops)
        self.log_path = os.path.join(self.tmp, "janus.log")
        env = dict(os.environ, LD_PRELOAD=build_shim(self.tmp))
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [JANUS_BIN, "-C", os.path.join(conf, "janus.jcfg"), "-F", conf, "-o"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.tmp,
            env=env,
        )
        log.close()
        self.url = f"http://127.0.0.1:{port}/janus"
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise JanusError(f"janus exited ({self.proc.returncode}): {self.log_tail()}")
                try:
                    async with http.get(f"{self.url}/info") as r:
                        info = await r.json(content_type=None)
                        if info.get("janus") == "server_info":
                            if "janus.plugin.videoroom" not in info.get("plugins", {}):
                                raise JanusError(f"videoroom plugin not loaded: {self.log_tail()}")
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)
        raise JanusError(f"janus did not answer on {self.url} in {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 1500) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def cpu(self) -> tuple[float, float]:
        return proc_cpu(self.pid)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            for _ in range(50):
                if self.proc.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                self.proc.kill()
                self.proc.wait(5)
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None


class JanusApi:
    """Janus HTTP API: one session, handles attached to a plugin, events by long poll."""

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        self.http = http
        self.url = url
        self.session: int | None = None
        self.waiting: dict[str, asyncio.Future] = {}
        self.webrtcup: dict[int, asyncio.Event] = {}
        self.events: list[dict] = []  # hangups, slowlinks...: kept for the report
        self._poller: asyncio.Task | None = None

    async def _post(self, path: str, body: dict) -> dict:
        body = dict(body, transaction=secrets.token_hex(6))
        async with self.http.post(f"{self.url}{path}", json=body) as r:
            reply = await r.json(content_type=None)
        if reply.get("janus") == "error":
            raise JanusError(f"{body.get('janus')}: {reply.get('error')}")
        reply["transaction"] = body["transaction"]
        return reply

    async def create_session(self) -> None:
        reply = await self._post("", {"janus": "create"})
        self.session = reply["data"]["id"]
        self._poller = asyncio.create_task(self._poll())

    async def attach(self, plugin: str = "janus.plugin.videoroom") -> int:
        reply = await self._post(f"/{self.session}", {"janus": "attach", "plugin": plugin})
        handle = reply["data"]["id"]
        self.webrtcup[handle] = asyncio.Event()
        return handle

    async def message(
        self, handle: int, body: dict, jsep: dict | None = None, timeout: float = 20.0
    ) -> tuple[dict, dict | None]:
        """Send a plugin request; return (plugin data, jsep) of its reply or async event."""
        msg: dict[str, Any] = {"janus": "message", "body": body}
        if jsep is not None:
            msg["jsep"] = jsep
        tid = secrets.token_hex(6)
        fut = asyncio.get_running_loop().create_future()
        self.waiting[tid] = fut
        try:
            async with self.http.post(f"{self.url}/{self.session}/{handle}", json=dict(msg, transaction=tid)) as r:
                reply = await r.json(content_type=None)
            if reply.get("janus") == "success":
                event = reply
            elif reply.get("janus") == "ack":
                event = await asyncio.wait_for(fut, timeout)
            else:
                raise JanusError(f"{body.get('request')}: {reply.get('error', reply)}")
        finally:
            self.waiting.pop(tid, None)
        data = event.get("plugindata", {}).get("data", {})
        if "error" in data or event.get("janus") == "error":
            raise JanusError(f"{body.get('request')}: {data.get('error') or event.get('error')}")
        return data, event.get("jsep")

    async def trickle_done(self, handle: int) -> None:
        await self._post(f"/{self.session}/{handle}", {"janus": "trickle", "candidate": {"completed": True}})

    async def _poll(self) -> None:
        while True:
            try:
                async with self.http.get(
                    f"{self.url}/{self.session}?maxev=50", timeout=aiohttp.ClientTimeout(total=40)
                ) as r:
                    got = await r.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.2)
                continue
            for event in got if isinstance(got, list) else [got]:
                self._route(event)

    def _route(self, event: dict) -> None:
        kind = event.get("janus")
        fut = self.waiting.get(event.get("transaction", ""))
        if kind == "event" and fut is not None and not fut.done():
            fut.set_result(event)
        elif kind == "webrtcup":
            ev = self.webrtcup.get(event.get("sender", 0))
            if ev is not None:
                ev.set()
        elif kind in ("hangup", "slowlink", "detached"):
            self.events.append(event)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            try:
                await self._poller
            except asyncio.CancelledError:
                pass
            self._poller = None
        if self.session is not None:
            try:
                await self._post(f"/{self.session}", {"janus": "destroy"})
            except (JanusError, aiohttp.ClientError):
                pass
            self.session = None


async def _smoke() -> None:
    janus = JanusProcess(debug_level=4)
    await janus.start()
    try:
        async with aiohttp.ClientSession() as http:
            api = JanusApi(http, janus.url)
            await api.create_session()
            try:
                handle = await api.attach()
                data, _ = await api.message(
                    handle, {"request": "create", "room": 4242, "publishers": 1, "videocodec": "vp8"}
                )
                print("room:", data, "cpu:", janus.cpu())
            finally:
                await api.close()
    finally:
        print(janus.log_tail(3000))
        await janus.stop()


if __name__ == "__main__":
    asyncio.run(_smoke())
