"""Debian's firefox-esr driven over WebDriver BiDi, which Firefox speaks natively: no geckodriver,
no Selenium, no playwright build of Firefox, no downloads. Importing this module from a test module
skips that module, with the reason, when firefox-esr is missing (scripts/setup.sh installs it).

``async with Firefox() as ff: page = await ff.new_page()`` starts a headless Firefox on a throwaway
profile whose user.js closes the network (no updates, telemetry, safe browsing, remote settings,
captive portal checks; every non-local request goes to a dead proxy on 127.0.0.1) and gives
getUserMedia fake camera and microphone without a prompt, with ICE on 127.0.0.1. A small BiDi
client (aiohttp WebSocket, JSON commands with ids, bounded waits) then navigates, evaluates script
in the page, clicks elements with real pointer input and collects uncaught page errors.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

FIREFOX = os.environ.get("GIAOBAN_FIREFOX", "/usr/bin/firefox-esr")

if not Path(FIREFOX).exists():
    pytest.skip(
        f"Firefox tests need Debian's firefox-esr at {FIREFOX} (apt-get install -y firefox-esr; "
        "scripts/setup.sh does it)",
        allow_module_level=True,
    )

START_TIMEOUT = 30.0  # s for Firefox to start listening for WebDriver BiDi
COMMAND_TIMEOUT = 15.0  # s for one BiDi command (navigation included)

DEAD = "http://127.0.0.1:9/"  # discard port: nothing listens, every request there fails at once
PREFS: dict[str, Any] = {
    # fake camera and microphone, no permission prompt, ICE host candidates on 127.0.0.1 as is
    "media.navigator.streams.fake": True,
    "media.navigator.permission.disabled": True,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.no_host": False,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    # camera and microphone allowed for every site: without a stored permission Firefox gathers ICE
    # candidates on the default-route interface only (never 127.0.0.1); with it, on every interface
    # including loopback, and the pair with the node's 127.0.0.1 candidate is 127.0.0.1 <-> 127.0.0.1
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    # a closed network: only 127.0.0.1 is reached; anything else goes to a dead local proxy
    "network.proxy.type": 1,
    "network.proxy.http": "127.0.0.1",
    "network.proxy.http_port": 9,
    "network.proxy.ssl": "127.0.0.1",
    "network.proxy.ssl_port": 9,
    "network.proxy.share_proxy_settings": True,
    "network.proxy.no_proxies_on": "localhost, 127.0.0.1",
    "network.proxy.allow_hijacking_localhost": False,
    "network.trr.mode": 5,
    "network.dns.disablePrefetch": True,
    "network.prefetch-next": False,
    "network.http.speculative-parallel-limit": 0,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "services.settings.server": DEAD,
    "app.update.enabled": False,
    "app.update.auto": False,
    "app.normandy.enabled": False,
    "app.normandy.api_url": "",
    "app.shield.optoutstudies.enabled": False,
    "messaging-system.rsexperimentloader.enabled": False,
    "nimbus.rollouts.enabled": False,
    "extensions.update.enabled": False,
    "extensions.getAddons.cache.enabled": False,
    "extensions.blocklist.enabled": False,
    "extensions.systemAddon.update.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.blockedURIs.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.safebrowsing.downloads.remote.enabled": False,
    "browser.safebrowsing.provider.mozilla.updateURL": "",
    "browser.safebrowsing.provider.google4.updateURL": "",
    "browser.safebrowsing.provider.google.updateURL": "",
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage": "about:blank",
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "browser.newtabpage.enabled": False,
    "browser.newtabpage.activity-stream.feeds.system.topstories": False,
    "browser.newtabpage.activity-stream.feeds.section.topstories": False,
    "browser.newtabpage.activity-stream.feeds.topsites": False,
    "browser.topsites.contile.enabled": False,
    "browser.search.update": False,
    "browser.region.network.url": "",
    "browser.region.update.enabled": False,
    "browser.aboutHomeSnippets.updateUrl": "",
    "browser.ping-centre.telemetry": False,
    "browser.tabs.warnOnClose": False,
    "browser.sessionstore.resume_from_crash": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.policy.firstRunURL": "",
    "datareporting.usage.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.archive.enabled": False,
    "toolkit.telemetry.server": DEAD,
    "toolkit.telemetry.reportingpolicy.firstRun": False,
    "toolkit.coverage.endpoint.base": "",
    "toolkit.startup.max_resumed_crashes": -1,
    "media.gmp-manager.updateEnabled": False,
    "media.gmp-manager.url": DEAD,
    "media.gmp-gmpopenh264.autoupdate": False,
    "media.gmp-widevinecdm.enabled": False,
    "dom.push.connection.enabled": False,
    "geo.provider.network.url": "",
    "identity.fxaccounts.enabled": False,
    "remote.prefs.recommended": True,
}


def user_js(prefs: dict[str, Any] = PREFS) -> str:
    return "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())


class BiDiError(RuntimeError):
    """A BiDi command failed, or script in the page threw."""


def from_remote(v: dict) -> Any:
    """A BiDi RemoteValue as Python (primitives, arrays, plain objects; other kinds stay as sent)."""
    t = v.get("type")
    if t in ("undefined", "null"):
        return None
    if t in ("string", "boolean"):
        return v["value"]
    if t == "number":  # special values come as strings
        x = v["value"]
        return float(x.replace("Infinity", "inf")) if isinstance(x, str) else x
    if t == "bigint":
        return int(v["value"])
    if t in ("array", "set") and "value" in v:
        return [from_remote(x) for x in v["value"]]
    if t in ("object", "map") and "value" in v:
        return {(k if isinstance(k, str) else from_remote(k)): from_remote(x) for k, x in v["value"]}
    return v


def to_local(x: Any) -> dict:
    """A Python argument as a BiDi LocalValue."""
    if x is None:
        return {"type": "null"}
    if isinstance(x, bool):
        return {"type": "boolean", "value": x}
    if isinstance(x, (int, float)):
        return {"type": "number", "value": x}
    if isinstance(x, str):
        return {"type": "string", "value": x}
    if isinstance(x, (list, tuple)):
        return {"type": "array", "value": [to_local(i) for i in x]}
    if isinstance(x, dict):
        return {"type": "object", "value": [[str(k), to_local(v)] for k, v in x.items()]}
    raise TypeError(f"cannot pass {type(x).__name__} to the page")


class BiDi:
    """One WebDriver BiDi connection: commands with ids and awaited answers; events are kept."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._seq = 0
        self._pending: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self._listeners: list[Any] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        error: BaseException = BiDiError("the WebDriver BiDi connection closed")
        try:
            async for raw in self.ws:
                if raw.type != aiohttp.WSMsgType.TEXT:
                    break
                msg = json.loads(raw.data)
                fut = self._pending.pop(msg["id"], None) if msg.get("id") is not None else None
                if fut is not None:
                    if not fut.done():
                        fut.set_result(msg)
                elif msg.get("type") == "event":
                    self.events.append(msg)
                    for listener in list(self._listeners):
                        listener(msg)
        except Exception as exc:  # noqa: BLE001 - handed to every waiting command
            error = exc
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(error)
            self._pending.clear()

    def on_event(self, listener: Any) -> None:
        self._listeners.append(listener)

    async def send(self, method: str, params: dict | None = None, timeout: float = COMMAND_TIMEOUT) -> dict:
        if self._reader.done():
            raise BiDiError(f"{method}: the WebDriver BiDi connection is closed")
        self._seq += 1
        cmd_id = self._seq
        fut = asyncio.get_running_loop().create_future()
        self._pending[cmd_id] = fut
        await self.ws.send_json({"id": cmd_id, "method": method, "params": params or {}})
        try:
            msg = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self._pending.pop(cmd_id, None)
            raise BiDiError(f"{method}: no answer within {timeout}s") from None
        if msg.get("type") == "error":
            raise BiDiError(f"{method}: {msg.get('error')}: {msg.get('message')}")
        return msg.get("result", {})

    async def close(self) -> None:
        self._reader.cancel()
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
        await self.ws.close()


class Page:
    """One top-level browsing context (tab)."""

    def __init__(self, bidi: BiDi, context: str) -> None:
        self.bidi, self.context = bidi, context
        self.js_errors: list[str] = []  # uncaught exceptions in the page; tests assert there are none
        self.console: list[str] = []  # console.* output, for failure messages
        bidi.on_event(self._on_event)

    def _on_event(self, msg: dict) -> None:
        if msg.get("method") != "log.entryAdded":
            return
        entry = msg["params"]
        if entry.get("source", {}).get("context") not in (None, self.context):
            return
        text = entry.get("text") or ""
        if entry.get("type") == "javascript" and entry.get("level") == "error":
            self.js_errors.append(text)
        else:
            self.console.append(f"{entry.get('level')}: {text}")

    async def goto(self, url: str) -> None:
        await self.bidi.send("browsingContext.navigate", {"context": self.context, "url": url, "wait": "complete"})

    def _result(self, res: dict, what: str) -> Any:
        if res.get("type") == "exception":
            details = res.get("exceptionDetails", {})
            raise BiDiError(f"script threw: {details.get('text')} (in {what[:200]!r})")
        return from_remote(res["result"])

    async def evaluate(self, expression: str, timeout: float = COMMAND_TIMEOUT) -> Any:
        """The value of a JS expression in the page (promises are awaited)."""
        res = await self.bidi.send(
            "script.evaluate",
            {
                "expression": expression,
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
            timeout,
        )
        return self._result(res, expression)

    async def call(self, function: str, *args: Any, timeout: float = COMMAND_TIMEOUT) -> Any:
        """``function`` (JS source of a function) called with ``args``; promises are awaited."""
        res = await self.bidi.send(
            "script.callFunction",
            {
                "functionDeclaration": function,
                "arguments": [to_local(a) for a in args],
                "target": {"context": self.context},
                "awaitPromise": True,
                "resultOwnership": "none",
            },
            timeout,
        )
        return self._result(res, function)

    async def wait_for(self, function: str, *args: Any, timeout: float = 10.0, step: float = 0.2) -> Any:
        """Calls ``function`` until it returns something truthy; that value, or an AssertionError."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while True:
            value = await self.call(function, *args)
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not true within {timeout}s (last {value!r}): {function[:300]}\n"
                    f"page errors: {self.js_errors}\nconsole: {self.console[-20:]}"
                )
            await asyncio.sleep(step)

    async def text(self, selector: str) -> str:
        return await self.call(
            "(s) => { const e = document.querySelector(s); return e ? e.textContent : null; }", selector
        )

    async def visible(self, selector: str) -> bool:
        return await self.call(
            """(s) => { const e = document.querySelector(s);
            return !!e && !!(e.offsetWidth || e.offsetHeight || e.getClientRects().length)
                && getComputedStyle(e).visibility !== "hidden"; }""",
            selector,
        )

    async def wait_text(self, selector: str, needle: str, timeout: float = 10.0) -> str:
        return await self.wait_for(
            """(s, n) => { const e = document.querySelector(s);
            return e && e.textContent.includes(n) ? e.textContent : ""; }""",
            selector,
            needle,
            timeout=timeout,
        )

    async def click(self, selector: str, timeout: float = 10.0) -> None:
        """A real pointer click (input.performActions) on the element, once it is visible and enabled."""
        await self.wait_for(
            """(s) => { const e = document.querySelector(s);
            return !!e && !e.disabled && !!(e.offsetWidth || e.offsetHeight); }""",
            selector,
            timeout=timeout,
        )
        found = await self.bidi.send(
            "browsingContext.locateNodes",
            {"context": self.context, "locator": {"type": "css", "value": selector}, "maxNodeCount": 1},
        )
        node = found["nodes"][0]
        await self.bidi.send(
            "input.performActions",
            {
                "context": self.context,
                "actions": [
                    {
                        "type": "pointer",
                        "id": "mouse",
                        "parameters": {"pointerType": "mouse"},
                        "actions": [
                            {
                                "type": "pointerMove",
                                "x": 0,
                                "y": 0,
                                "origin": {"type": "element", "element": {"sharedId": node["sharedId"]}},
                            },
                            {"type": "pointerDown", "button": 0},
                            {"type": "pointerUp", "button": 0},
                        ],
                    }
                ],
            },
        )

    async def close(self) -> None:
        await self.bidi.send("browsingContext.close", {"context": self.context})


class Firefox:
    """``async with Firefox() as ff``: a headless firefox-esr on a throwaway profile, over BiDi."""

    def __init__(self, executable: str = FIREFOX, prefs: dict[str, Any] | None = None) -> None:
        self.executable = executable
        self.prefs = {**PREFS, **(prefs or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.tmp: Path | None = None
        self.bidi: BiDi | None = None
        self.http: aiohttp.ClientSession | None = None
        self.version = ""
        self._first_used = False

    @property
    def log(self) -> str:
        path = self.tmp / "firefox.log" if self.tmp else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    async def __aenter__(self) -> "Firefox":
        self.tmp = Path(tempfile.mkdtemp(prefix="giaoban-firefox-"))
        profile = self.tmp / "profile"
        profile.mkdir()
        (profile / "user.js").write_text(user_js(self.prefs))
        env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
        env.update(
            HOME=str(self.tmp),
            MOZ_HEADLESS="1",
            MOZ_CRASHREPORTER_DISABLE="1",
            MOZ_CRASHREPORTER_SHUTDOWN="1",
            XDG_CACHE_HOME=str(self.tmp / "cache"),
        )
        try:
            with open(self.tmp / "firefox.log", "wb") as log:
                self.proc = await asyncio.create_subprocess_exec(
                    self.executable,
                    "--headless",
                    "--no-remote",
                    "--remote-debugging-port=0",
                    "--profile",
                    str(profile),
                    "about:blank",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    env=env,
                    start_new_session=True,
                )
            url = await self._listening()
            self.http = aiohttp.ClientSession()
            ws = await self.http.ws_connect(
                url + "/session", timeout=aiohttp.ClientWSTimeout(ws_close=5), max_msg_size=64 * 1024 * 1024
            )
            self.bidi = BiDi(ws)
            caps = await self.bidi.send("session.new", {"capabilities": {}})
            self.version = caps["capabilities"].get("browserVersion", "")
            await self.bidi.send("session.subscribe", {"events": ["log.entryAdded"]})
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def _listening(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = re.search(r"WebDriver BiDi listening on (ws://\S+)", self.log)
            if m:
                return m.group(1)
            if self.proc.returncode is not None:
                raise RuntimeError(f"firefox exited ({self.proc.returncode}) before listening:\n{self.log[-3000:]}")
            await asyncio.sleep(0.1)
        raise RuntimeError(f"firefox did not listen for WebDriver BiDi within {START_TIMEOUT}s:\n{self.log[-3000:]}")

    async def new_page(self) -> Page:
        """A fresh tab (the first call reuses the tab Firefox opened with)."""
        tree = await self.bidi.send("browsingContext.getTree", {"maxDepth": 0})
        fresh = [c["context"] for c in tree["contexts"] if c.get("url") == "about:blank"]
        if fresh and not self._first_used:
            self._first_used = True
            return Page(self.bidi, fresh[0])
        created = await self.bidi.send("browsingContext.create", {"type": "tab"})
        return Page(self.bidi, created["context"])

    async def __aexit__(self, *exc: Any) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        closing = False  # Firefox was asked to quit (browser.close) and is given time to do so
        if self.bidi is not None:
            try:
                await self.bidi.send("browser.close", timeout=5)
                closing = True
            except Exception:  # noqa: BLE001 - the process is ended below either way
                pass
            await self.bidi.close()
            self.bidi = None
        if self.http is not None:
            await self.http.close()
            self.http = None
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), 10 if closing else 0.01)
            except asyncio.TimeoutError:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except asyncio.TimeoutError:
                    proc.kill()
                    await proc.wait()
        if proc is not None:
            try:  # content processes of this Firefox only: it leads its own process group
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
