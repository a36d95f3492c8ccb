"""Slow, segmented, greedy and deeply nested clients against a real node (issue #11, items 4, 6, 9).

A raw TCP client (``RawHttp``) controls exactly how bytes reach the server: a body in several
segments as a commune link delivers it, headers or a body trickled a byte at a time, many
connections from one address. What the tests assert is what the client observes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from tests.support.cluster import flush
from signaling.guard.log_redact import QuietBadRequests
from tests.support.harness import ADMIN_PASSWORD, WsClient, start_node

pytestmark = pytest.mark.integration


class RawHttp:
    """One TCP connection to the node; every write leaves as its own segment (TCP_NODELAY)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, node) -> "RawHttp":
        port = int(node.url.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send_in_parts(self, data: bytes, parts: int, pause: float) -> None:
        size = -(-len(data) // parts)
        for i in range(0, len(data), size):
            await self.send(data[i : i + size])
            await asyncio.sleep(pause)

    async def response(self, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
        async with asyncio.timeout(timeout):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(lines[0].split()[1]), headers, body

    async def closed_within(self, timeout: float) -> bool:
        """True when the server closes the connection (EOF or reset) within ``timeout``."""
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(4096):
                    pass
            return True
        except TimeoutError:  # first: TimeoutError is an OSError
            return False
        except (ConnectionError, OSError):
            return True

    def close(self) -> None:
        self.writer.close()


def request_head(method: str, path: str, length: int, ctype: str, token: str | None = None) -> bytes:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
        f"Content-Length: {length}\r\n{auth}\r\n"
    ).encode()


# --- item 4: a body in several segments is read whole ------------------------------------------
async def test_json_body_in_several_segments_is_read_whole(node):
    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
    conn = await RawHttp.open(node)
    try:
        await conn.send(request_head("POST", "/api/v1/auth/login", len(body), "application/json"))
        await conn.send_in_parts(body, parts=4, pause=0.05)
        status, _, answer = await conn.response()
    finally:
        conn.close()
    assert status == 200, answer  # before: 400 "Input data was truncated"
    assert json.loads(answer)["token"]


async def test_whep_offer_in_several_segments_gets_a_valid_answer(media_node):
    node = media_node
    meeting = await node.schedule(chair="hg-ubnd", invited=["tier:district"])
    status, view = await node.call(
        "POST", f"/api/v1/meetings/{meeting['id']}/links", json={"name": "Xem", "role": "viewer"}
    )
    assert status == 201, view
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        viewer.addTransceiver("audio", direction="recvonly")
        viewer.addTransceiver("video", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())
        offer = viewer.localDescription.sdp.encode()
        assert len(offer) > 2000
        conn = await RawHttp.open(node)
        try:
            await conn.send(
                request_head("POST", f"/whep/{meeting['id']}", len(offer), "application/sdp", view["token"])
            )
            await conn.send_in_parts(offer, parts=3, pause=0.05)
            status, headers, answer = await conn.response()
        finally:
            conn.close()
        # before: 400 "ICE username fragment missing" (only the first segment was read)
        assert status == 201, answer
        assert headers["content-type"].startswith("application/sdp")
        assert b"a=ice-ufrag:" in answer
        await viewer.setRemoteDescription(RTCSessionDescription(answer.decode(), "answer"))
        assert viewer.remoteDescription is not None
    finally:
        await viewer.close()


# --- item 9: slow headers, slow bodies, connections per address ---------------------------------
@pytest.fixture
async def strict_node(tmp_path):
    n = await start_node(
        tmp_path / "data",
        limits={"http_header_timeout_s": 1.0, "http_body_timeout_s": 1.0, "connections_per_address": 6},
    )
    yield n
    await n.stop()


async def test_trickled_headers_are_cut_off_after_the_header_timeout(strict_node):
    conn = await RawHttp.open(strict_node)
    try:
        await conn.send(b"GET /healthz HTTP/1.1\r\n")
        started = asyncio.get_running_loop().time()
        closed = False
        for i in range(20):  # a header byte every 0.25 s: 5 s at most
            try:
                await conn.send(b"X-Slow: a\r\n"[i % 11 : i % 11 + 1])
            except (ConnectionError, OSError):
                closed = True
                break
            if await conn.closed_within(0.25):
                closed = True
                break
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        conn.close()
    assert closed, "a connection trickling its headers stayed open for 5 s"
    assert elapsed < 4.0, elapsed  # the 1 s header timeout, with slack for a busy machine


async def test_a_websocket_and_a_prompt_client_outlive_the_header_timeout(strict_node):
    node = strict_node
    client = await WsClient.connect(node, node.operator_token)
    conn = await RawHttp.open(node)
    try:
        await client.expect("welcome")
        assert await healthz(conn) == 200
        await asyncio.sleep(2.5)  # more than twice the 1 s header timeout
        ref = await client.send("ping")
        await client.expect("pong", ref=ref)
        assert await conn.closed_within(0.1)  # an idle keep-alive connection is closed, though
    finally:
        conn.close()
        await client.close()


async def test_trickled_body_gets_408(strict_node):
    body = json.dumps({"username": "admin", "password": ADMIN_PASSWORD}).encode()
    conn = await RawHttp.open(strict_node)
    try:
        await conn.send(request_head("POST", "/api/v1/auth/login", len(body), "application/json"))
        await conn.send(body[:5])  # then nothing more: the body never completes
        status, _, answer = await conn.response(timeout=5.0)
    finally:
        conn.close()
    assert status == 408, answer
    error = json.loads(answer)["error"]
    assert error["code"] == "timeout" and "did not arrive within 1 s" in error["message"]


async def healthz(conn: RawHttp) -> int:
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    status, _, _ = await conn.response()
    return status


async def test_connection_over_the_per_address_limit_is_refused(strict_node):
    node = strict_node
    await node.http.close()  # the harness's pooled client connections would count too
    node.http = aiohttp.ClientSession()
    held: list[RawHttp] = []
    try:
        for _ in range(6):
            conn = await RawHttp.open(node)
            held.append(conn)
            assert await healthz(conn) == 200  # kept alive: still open
        ws_session = aiohttp.ClientSession()
        try:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused_ws:
                await ws_session.ws_connect(node.ws_url())
            assert refused_ws.value.status == 429
        finally:
            await ws_session.close()
        extra = await RawHttp.open(node)
        try:
            status, _, answer = await extra.response()
            assert status == 429 and b"too many open connections from this address (limit 6)" in answer
            assert await extra.closed_within(2.0)
        finally:
            extra.close()
        held.pop().close()  # one leaves: the next one gets in
        await asyncio.sleep(0.1)
        again = await RawHttp.open(node)
        held.append(again)
        assert await healthz(again) == 200
    finally:
        for conn in held:
            conn.close()


async def test_behind_a_trusted_proxy_the_limit_counts_forwarded_clients(tmp_path):
    node = await start_node(tmp_path / "data", trusted_proxies=["127.0.0.1"], limits={"connections_per_address": 2})
    sessions: list[aiohttp.ClientSession] = []
    sockets: list[aiohttp.ClientWebSocketResponse] = []  # held: a dropped one closes

    async def ws_from(client: str | None) -> None:
        session = aiohttp.ClientSession()
        sessions.append(session)
        headers = {"X-Forwarded-For": client} if client else {}
        sockets.append(await session.ws_connect(node.ws_url(), headers=headers))

    try:
        await ws_from("203.0.113.5")
        await ws_from("203.0.113.5")
        with pytest.raises(aiohttp.WSServerHandshakeError) as third:
            await ws_from("203.0.113.5")
        assert third.value.status == 429
        await ws_from("203.0.113.6")  # another client behind the same proxy
        for _ in range(3):  # the proxy's own connections are not capped
            await ws_from(None)
    finally:
        for session in sessions:
            await session.close()
        await node.stop()


async def test_peer_links_from_a_cluster_node_are_not_capped(tmp_path, redis_url):
    """A signaling node holds one WebSocket per media peer it relays to a media node: more than
    connections_per_address. Those that show a node token stop counting; the others still do."""
    await flush(redis_url)
    media = await start_node(
        tmp_path / "m", store=redis_url, node_id="media-a", media="local", limits={"connections_per_address": 3}
    )
    sig = await start_node(tmp_path / "s", store=redis_url, node_id="sig-a")
    await media.http.close()  # the harness's pooled client connection would count too
    media.http = aiohttp.ClientSession()
    links = aiohttp.ClientSession()
    held: list = []
    try:
        auth = {"Authorization": f"Bearer {sig.ctx.placement.node_token()}"}
        for _ in range(6):
            held.append(await links.ws_connect(media.url + "/internal/media/peer", headers=auth))
        for _ in range(3):
            held.append(conn := await RawHttp.open(media))
            assert await healthz(conn) == 200
        extra = await RawHttp.open(media)
        try:
            status, _, _ = await extra.response()
            assert status == 429
        finally:
            extra.close()
    finally:
        for item in held:
            if isinstance(item, RawHttp):
                item.close()
        await links.close()
        await sig.stop()
        await media.stop()


# --- item 6: deeply nested JSON on /ws -----------------------------------------------------------
def deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [33, 100_000])
async def test_deep_json_before_hello_is_refused_with_1008(node, caplog, levels):
    caplog.set_level(logging.INFO)
    client = await WsClient.connect(node, None, hello=False)
    try:
        await client.ws.send_str('{"v":1,"type":"hello","token":"x","extra":' + deep(levels) + "}")
        error = await client.expect("error")
        code, _ = await client.closed()
    finally:
        await client.close()
    assert error["code"] == "bad_message" and "nested deeper than 32 levels" in error["message"]
    assert code == 1008  # before: a RecursionError traceback and close 1000
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    refused = [r for r in caplog.records if "websocket refused" in r.getMessage()]
    assert len(refused) == 1


async def test_deep_json_after_hello_is_refused_with_1008(node, caplog):
    caplog.set_level(logging.INFO)
    client = await WsClient.connect(node, node.operator_token)
    try:
        await client.expect("welcome")
        await client.ws.send_str(
            '{"v":1,"type":"join","meeting_id":' + deep(20_000) + "}"
        )  # within the 64 KB message limit
        error = await client.expect("error")
        code, _ = await client.closed()
    finally:
        await client.close()
    assert "nested deeper than 32 levels" in error["message"]
    assert code == 1008
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_deep_json_in_a_rest_body_is_a_400(node):
    """A guard for the sibling on REST: typed bodies refuse it at the first level (no recursion)."""
    body = '{"username":"admin","password":"x","extra":' + deep(100_000) + "}"
    status, resp = await node.call(
        "POST", "/api/v1/auth/login", token=None, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert 400 <= status < 500, resp


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_body_that_is_not_in_its_content_encoding_is_a_400(node, caplog, encoding):
    """No login needed to send it: it was a 500 with two tracebacks (found by an outside audit)."""
    status, resp = await node.call(
        "POST",
        "/api/v1/auth/login",
        token=None,
        data=b"not compressed at all",
        headers={"Content-Type": "application/json", "Content-Encoding": encoding},
    )
    assert status == 400, resp
    if isinstance(resp, dict):  # ours; an encoding aiohttp has no decoder for is refused by its parser
        assert "Content-Encoding" in resp["error"]["message"], resp
    else:
        assert "content-encoding" in resp.lower(), resp
    quiet = QuietBadRequests()  # as `giaoban serve` logs: aiohttp's parser refusals in one line
    assert not [r for r in caplog.records if quiet.filter(r) and r.exc_info], "a traceback was logged"
    status, _ = await node.call(
        "POST", "/api/v1/auth/login", token=None, json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert status == 200


@pytest.mark.parametrize(
    "method, path",
    [("POST", "/healthz"), ("POST", "/nonexistent"), ("POST", "/api/v1/meetings"), ("POST", "/api/v1/operators")],
)
async def test_an_unread_body_in_a_content_encoding_logs_no_traceback(node, caplog, method, path):
    """Refused before its body is read (no route, no login): aiohttp's read of the rest after the
    answer used to log a traceback (second outside audit)."""
    status, _ = await node.call(
        method,
        path,
        token=None,
        data=b"not gzip at all" * 10,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert 400 <= status < 500
    await asyncio.sleep(0.2)  # aiohttp's read after the answer
    quiet = QuietBadRequests()
    assert not [r for r in caplog.records if quiet.filter(r) and r.exc_info], "a traceback was logged"
    assert (await node.call("GET", "/healthz", token=None))[0] == 200
