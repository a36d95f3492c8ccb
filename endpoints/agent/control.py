"""Local control API for the room: the TV screen, a remote-control button, a small local page.

Bound to 127.0.0.1 by default (nothing outside the room PC can reach it)::

    GET  /status       JSON: connected, meeting, floor, hand, muted, media counters, last errors
    POST /raise-hand   ask the chair for the floor   (409 when not in a meeting)
    POST /lower-hand   withdraw the request
    POST /share        "Chia sẻ tài liệu": send the ``screen`` source as the slides (409: not in a meeting
                       or no source; 502: the server refused)
    POST /stop-share   "Dừng chia sẻ"
    GET  /log          the last operator log lines (text)
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from aiohttp import web

from endpoints.agent.config import ConfigError
from endpoints.agent.connection import NotConnected
from endpoints.agent.agent_media import ShareUnavailable
from endpoints.agent.media import MediaError

SHARE_LABEL = "Chia sẻ tài liệu"  # the button, as the room sees it
STOP_SHARE_LABEL = "Dừng chia sẻ"
from endpoints.agent.oplog import OpLog


class Controlled(Protocol):
    """What the control API drives (``endpoints.agent.agent.Agent``, which starts this server)."""

    log: OpLog

    def status(self) -> dict[str, Any]: ...
    async def set_hand(self, raised: bool) -> None: ...
    async def set_sharing(self, on: bool) -> bool: ...


def _json(body, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, ensure_ascii=False, default=str), status=status, content_type="application/json"
    )


class ControlServer:
    def __init__(self, agent: Controlled, host: str, port: int) -> None:
        self.agent, self.host, self.port = agent, host, port
        self._runner: web.AppRunner | None = None
        app = web.Application()
        app.add_routes(
            [
                web.get("/status", self._status),
                web.post("/raise-hand", self._raise),
                web.post("/lower-hand", self._lower),
                web.post("/share", self._share),
                web.post("/stop-share", self._stop_share),
                web.get("/log", self._log),
            ]
        )
        self.app = app

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise ConfigError(
                f"control_port {self.port} on {self.host}: cannot listen ({exc.strerror}); "
                f"choose another port or -1 to turn the control API off"
            ) from None
        self.port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked
        self.agent.log.info(f"Bảng điều khiển tại {self.url}", "control API listening")

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _status(self, request: web.Request) -> web.Response:
        body = self.agent.status()
        body["share_button"] = STOP_SHARE_LABEL if body.get("sharing") else SHARE_LABEL
        return _json(body)

    async def _hand(self, raised: bool) -> web.Response:
        try:
            await self.agent.set_hand(raised)
        except (NotConnected, ConnectionError) as exc:
            return _json({"ok": False, "message": f"chưa vào cuộc họp hoặc mất kết nối ({exc})"}, 409)
        return _json({"ok": True, "hand_raised": raised})

    async def _raise(self, request: web.Request) -> web.Response:
        return await self._hand(True)

    async def _lower(self, request: web.Request) -> web.Response:
        return await self._hand(False)

    async def _sharing(self, on: bool) -> web.Response:
        try:
            changed = await self.agent.set_sharing(on)
        except (NotConnected, ConnectionError) as exc:
            return _json({"ok": False, "message": f"chưa vào cuộc họp hoặc mất kết nối ({exc})"}, 409)
        except MediaError as exc:
            return _json({"ok": False, "message": f"máy chủ không nhận chia sẻ tài liệu ({exc})"}, 502)
        except ShareUnavailable as exc:  # the settings lack a source, or it does not open
            return _json({"ok": False, "message": str(exc)}, 409)
        return _json({"ok": True, "sharing": on, "changed": changed, "next": STOP_SHARE_LABEL if on else SHARE_LABEL})

    async def _share(self, request: web.Request) -> web.Response:
        return await self._sharing(True)

    async def _stop_share(self, request: web.Request) -> web.Response:
        return await self._sharing(False)

    async def _log(self, request: web.Request) -> web.Response:
        lines = "\n".join(f"{e['level']:<7} {e['text']}" for e in self.agent.log.events)
        return web.Response(text=lines + "\n", content_type="text/plain", charset="utf-8")
