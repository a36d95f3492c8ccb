"""The terminal's link to the server: endpoint login and one WebSocket, kept up forever.

* Login: ``POST /api/v1/auth/endpoint {endpoint_id, secret}`` -> ``{token, expires_at}``; the
  token is renewed before it expires and after the server refuses it.
* WebSocket ``/ws``: ``hello{token}`` first, the server answers ``welcome`` (then
  ``meeting_opened`` for every open meeting the endpoint may join).
* A ``ping`` every ``ping_interval_s``; no message at all for 2.5x that = a dead path (a cable
  pulled, a NAT that forgot us) and the socket is dropped, just like a closed one.
* Reconnect with exponential backoff (``backoff_min_s`` doubling to ``backoff_max_s``) and
  jitter, so a province's 200 terminals do not come back in lockstep after an outage.

Wrong credentials before the first successful login raise ``AuthError`` (the service must not
loop on a typo); after that, the agent keeps trying and says so in the operator log.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import datetime
from typing import Any, Callable

import aiohttp

from mcu.peer.bounded_stop import cancel_and_wait

from endpoints.agent.config import AgentConfig
from endpoints.agent.oplog import OpLog

CLOSE_UNAUTHORIZED = 4401
CLOSE_REPLACED = 4409


class AuthError(RuntimeError):
    """The server refused this endpoint's credentials."""


class NotConnected(RuntimeError):
    pass


class Connection:
    def __init__(
        self,
        cfg: AgentConfig,
        log: OpLog,
        on_message: Callable[[dict], None],
        on_up: Callable[[dict], None],
        on_down: Callable[[str], None],
    ) -> None:
        self.cfg = cfg
        self.log = log
        self.on_message, self.on_up, self.on_down = on_message, on_up, on_down
        self.secret = cfg.read_secret()
        self.token: str | None = None
        self.expires_at = 0.0
        self.issued_at = 0.0
        self.ever_authenticated = False
        self.connected = False
        self.connects = 0
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._task: asyncio.Task | None = None
        self._seq = 0
        self._backoff = cfg.backoff_min_s
        self._server_at = 0  # several signaling nodes: the one in use; the next after a failure

    @property
    def server(self) -> str:
        return self.cfg.servers[self._server_at % len(self.cfg.servers)]

    # --- login -----------------------------------------------------------------------------------
    def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            # no keep-alive: a pooled socket from before a network cut must not be reused
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        return self._http

    async def login(self) -> str:
        """A fresh token; AuthError when the credentials are refused, OSError/aiohttp errors when the
        server cannot be reached."""
        url = self.server + "/api/v1/auth/endpoint"
        body = {"endpoint_id": self.cfg.endpoint, "secret": self.secret}
        async with self._session().post(url, json=body, timeout=aiohttp.ClientTimeout(total=10)) as resp:
            text = await resp.text()
            try:
                data = json.loads(text)
            except ValueError:
                data = {"message": text[:200]}
            if resp.status in (400, 401, 403, 404):
                raise AuthError(
                    f"endpoint {self.cfg.endpoint}: the server at {self.server} refused the "
                    f"login ({resp.status}): {data.get('message', text[:200])}"
                )
            if resp.status != 200:
                raise aiohttp.ClientResponseError(
                    resp.request_info, (), status=resp.status, message=str(data.get("message", ""))
                )
        self.token = data["token"]
        self.issued_at = time.time()
        try:
            self.expires_at = datetime.fromisoformat(data["expires_at"]).timestamp()
        except (KeyError, ValueError):
            self.expires_at = self.issued_at + 3600
        self.ever_authenticated = True
        return self.token

    async def _fresh_token(self) -> str:
        ttl = max(60.0, self.expires_at - self.issued_at)
        if self.token is None or time.time() > self.expires_at - max(60.0, 0.1 * ttl):
            await self.login()
        assert self.token is not None
        return self.token

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"agent-ws:{self.cfg.endpoint}")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait([task], "the server connection")
        if self._ws is not None and not self._ws.closed:
            try:
                await asyncio.wait_for(self._ws.close(), 2)
            except (asyncio.TimeoutError, OSError, aiohttp.ClientError):
                pass  # a server going away at this moment: the stop goes on
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _run(self) -> None:
        while True:
            reason = await self._once()
            if len(self.cfg.servers) > 1:
                self._server_at += 1  # that node failed us: try the next one (no load balancer needed)
                if self._server_at % len(self.cfg.servers):
                    self._backoff = self.cfg.backoff_min_s  # a fresh node gets a quick try; a full round backs off
            delay = self._next_delay()
            self.log.info(f"Kết nối lại sau {delay:.1f} giây", "reconnecting", reason=reason)
            await asyncio.sleep(delay)

    def _next_delay(self) -> float:
        base = self._backoff
        self._backoff = min(self.cfg.backoff_max_s, self._backoff * 2)
        return base / 2 + random.uniform(0, base / 2)  # "equal jitter"

    async def _once(self) -> str:
        """One connection: login if needed, hello, read until the path dies. Returns why it ended."""
        try:
            token = await self._fresh_token()
        except AuthError as exc:
            if not self.ever_authenticated:
                raise
            self.log.error(f"Máy chủ từ chối đăng nhập: {exc}", "login refused")
            self._backoff = self.cfg.backoff_max_s
            return "login refused"
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return f"login failed: {_describe(exc)}"
        try:
            self._ws = await self._session().ws_connect(
                self.cfg.ws_url(self.server),
                timeout=aiohttp.ClientWSTimeout(ws_close=2),
                autoping=True,
                max_msg_size=1 << 20,
            )
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            return f"connect failed: {_describe(exc)}"
        reason = "stopped"
        try:
            reason = await self._session_loop(token)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError, ConnectionError) as exc:
            reason = _describe(exc)
        except Exception as exc:  # a garbled frame must not end the service: drop the socket, start over
            self.log.error(f"Lỗi kết nối: {_describe(exc)}", "connection error")
            reason = _describe(exc)
        finally:
            was_up, self.connected = self.connected, False
            if was_up:
                self.on_down(reason)
            ws, self._ws = self._ws, None
            if ws is not None and not ws.closed:
                try:
                    await asyncio.wait_for(ws.close(), 1)
                except (asyncio.TimeoutError, OSError, aiohttp.ClientError):
                    pass
        return reason

    async def _session_loop(self, token: str) -> str:
        ws = self._ws
        assert ws is not None
        await self.send("hello", token=token)
        dead_after = self.cfg.ping_interval_s * 2.5
        first = await ws.receive(timeout=dead_after)
        if first.type != aiohttp.WSMsgType.TEXT:
            return self._closed_reason(ws, first)
        welcome = json.loads(first.data)
        if welcome.get("type") != "welcome":
            if welcome.get("code") == "unauthorized":
                self.token = None  # log in again next time
            return f"hello refused: {welcome.get('message', welcome)}"
        self.connected = True
        self.connects += 1
        self._backoff = self.cfg.backoff_min_s
        self.on_up(welcome)
        pinger = asyncio.get_running_loop().create_task(self._pinger())
        try:
            while True:
                try:
                    raw = await ws.receive(timeout=dead_after)
                except asyncio.TimeoutError:
                    return f"no message from the server for {dead_after:g} s (dead path)"
                if raw.type != aiohttp.WSMsgType.TEXT:
                    return self._closed_reason(ws, raw)
                msg = json.loads(raw.data)
                if msg.get("type") != "pong":
                    self.on_message(msg)
        finally:
            pinger.cancel()
            await asyncio.gather(pinger, return_exceptions=True)

    def _closed_reason(self, ws: aiohttp.ClientWebSocketResponse, raw: aiohttp.WSMessage) -> str:
        code = ws.close_code if raw.type != aiohttp.WSMsgType.CLOSE else raw.data
        if code == CLOSE_UNAUTHORIZED:
            self.token = None
        if code == CLOSE_REPLACED:
            self.log.warning("Một máy khác đang dùng tài khoản của điểm cầu này", "replaced by another connection")
            self._backoff = self.cfg.backoff_max_s
        extra = f" {raw.extra}" if raw.extra else ""
        return f"closed by the server or the network (code {code}){extra}"

    async def _pinger(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.ping_interval_s)
            try:
                await self.send("ping")
            except (NotConnected, ConnectionError, aiohttp.ClientError):
                return

    async def send(self, type_: str, **fields: Any) -> str:
        ws = self._ws
        if ws is None or ws.closed:
            raise NotConnected(f"not connected; {type_} not sent")
        self._seq += 1
        ref = f"a{self._seq}"
        await ws.send_json({"v": 1, "type": type_, "id": ref, **fields})
        return ref


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:200]
