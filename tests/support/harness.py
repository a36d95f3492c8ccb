"""A whole signaling node on 127.0.0.1 with its real store, and real HTTP/WebSocket clients."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from signaling.app import build_context, make_app
from signaling.guard.connection_limits import GuardedSite
from signaling.settings import load_settings
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
HAGIANG = str(ROOT / "config" / "hagiang.yaml")
ADMIN_PASSWORD = "test-admin-password"
VN = timezone(timedelta(hours=7))


def tracebacks(caplog: Any) -> list[str]:
    """What was logged at ERROR or with a traceback (a refusal logs neither)."""
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@dataclass
class Node:
    """A running signaling node and an HTTP client logged in as the operator."""

    url: str
    ctx: Any
    runner: web.AppRunner
    http: aiohttp.ClientSession
    operator_token: str = ""
    secrets: dict[str, str] = field(default_factory=dict)

    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/ws"

    async def call(self, method: str, path: str, token: str | None = "operator", **kw) -> tuple[int, Any]:
        headers = kw.pop("headers", {})
        if token == "operator":
            token = self.operator_token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(method, self.url + path, headers=headers, **kw) as resp:
            text = await resp.text()
            try:
                return resp.status, json.loads(text)
            except ValueError:
                return resp.status, text

    async def endpoint_token(self, endpoint_id: str) -> str:
        if endpoint_id not in self.secrets:
            status, body = await self.call("POST", f"/api/v1/endpoints/{endpoint_id}/credentials")
            assert status == 201, body
            self.secrets[endpoint_id] = body["secret"]
        status, body = await self.call(
            "POST",
            "/api/v1/auth/endpoint",
            token=None,
            json={"endpoint_id": endpoint_id, "secret": self.secrets[endpoint_id]},
        )
        assert status == 200, body
        return body["token"]

    async def schedule(self, chair: str, invited: list[str], minutes_from_now: float = 1, **extra) -> dict:
        start = (datetime.now(VN) + timedelta(minutes=minutes_from_now)).replace(microsecond=0)
        body = {
            "title": "Giao ban thử nghiệm",
            "chair": chair,
            "invited": invited,
            "start": start.isoformat(),
            "duration_minutes": 60,
            **extra,
        }
        status, meeting = await self.call("POST", "/api/v1/meetings", json=body)
        assert status == 201, meeting
        return meeting

    async def join_link(self, meeting_id: str, **body: Any) -> dict:
        """A join link made by the operator (``name``, ``role``, ...): its ``url`` and ``token``."""
        status, link = await self.call("POST", f"/api/v1/meetings/{meeting_id}/links", json=body)
        assert status == 201, link
        return link

    async def stop(self) -> None:
        await self.http.close()
        await self.runner.cleanup()


async def start_node(
    data_dir: Path, store: str | None = None, limits: dict[str, Any] | None = None, **settings: Any
) -> Node:
    """``limits``: fields of settings.limits to change (e.g. a small http_header_timeout_s)."""
    port = free_port()
    overrides = {
        "host": "127.0.0.1",
        "port": port,
        "data_dir": str(data_dir),
        "directory": HAGIANG,
        "media": "none",
        "admin_password": ADMIN_PASSWORD,
        "log_format": "text",
        **settings,
    }
    if store:
        overrides["store"] = store
    cfg = load_settings(None, overrides)
    for key, value in (limits or {}).items():
        assert hasattr(cfg.limits, key), key
        setattr(cfg.limits, key, value)
    ctx = await build_context(cfg)
    runner = web.AppRunner(make_app(ctx), shutdown_timeout=2.0)
    await runner.setup()
    await GuardedSite(runner, "127.0.0.1", port).start()  # as `giaoban serve`: connections per address
    node = Node(f"http://127.0.0.1:{port}", ctx, runner, aiohttp.ClientSession())
    status, body = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert status == 200, body
    node.operator_token = body["token"]
    return node


class WsClient:
    """A real WebSocket client speaking protocol v1, collecting what the server sends."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: aiohttp.ClientSession) -> None:
        self.ws, self.session = ws, session
        self.received: list[dict] = []
        self._seq = 0

    @classmethod
    async def connect(cls, node: Node, token: str | None, hello: bool = True) -> "WsClient":
        session = aiohttp.ClientSession()
        client = cls(await session.ws_connect(node.ws_url()), session)
        if hello:
            await client.send("hello", token=token)
        return client

    async def send(self, type_: str, **fields: Any) -> str:
        self._seq += 1
        ref = f"r{self._seq}"
        await self.ws.send_json({"v": 1, "type": type_, "id": ref, **fields})
        return ref

    async def expect(self, type_: str, timeout: float = 5.0, **match: Any) -> dict:
        """Next message of ``type_`` (with the given field values); earlier others are kept."""
        for msg in self.received:
            if msg.get("type") == type_ and all(msg.get(k) == v for k, v in match.items()):
                self.received.remove(msg)
                return msg
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(
                    f"no {type_} {match} within {timeout}s; got {[m.get('type') for m in self.received]}"
                )
            raw = await self.ws.receive(timeout=left)
            if raw.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"connection ended ({raw.type}, {raw.data}, {raw.extra}) waiting for {type_}")
            msg = json.loads(raw.data)
            if msg.get("type") == type_ and all(msg.get(k) == v for k, v in match.items()):
                return msg
            self.received.append(msg)

    async def closed(self, timeout: float = 5.0) -> tuple[int, str]:
        while True:
            raw = await self.ws.receive(timeout=timeout)
            if raw.type == aiohttp.WSMsgType.CLOSE:
                return raw.data, str(raw.extra or "")
            if raw.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.ERROR):
                return self.ws.close_code, str(raw.extra or raw.data or "")
            if raw.type == aiohttp.WSMsgType.TEXT:
                self.received.append(json.loads(raw.data))

    async def close(self) -> None:
        await self.ws.close()
        await self.session.close()
