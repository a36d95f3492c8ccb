"""No token or secret reaches a log (issue #11 item 12), checked on `giaoban serve`'s own output.

The audit sent a malformed Authorization header and found the whole token in aiohttp's error log.
Here a real server process gets that and its siblings (header spellings aiohttp's parser refuses,
a token in a query string, a WebSocket hello carrying a token, a wrong password), then stops; its
whole stderr is searched for the token, the token's signature and the password.
"""

from __future__ import annotations

import json
import signal
import socket
import urllib.error
import urllib.request

import pytest

from signaling.guard.log_redact import redact
from tests.support.harness import free_port
from tests.signaling.test_server_process import request, start


def raw_http(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(head)
        return s.recv(4096)


def ws_hello(port: int, token: str) -> None:
    """A WebSocket hello carrying the token inside a message the server refuses."""
    import asyncio

    import aiohttp

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send_str(json.dumps({"v": 1, "type": "hello", "id": "h", "token": token, "junk": token}))
                await ws.receive(timeout=5)

    asyncio.run(run())


@pytest.mark.integration
@pytest.mark.parametrize("log_format", ["json", "text"])
def test_malformed_requests_never_put_a_token_or_password_in_the_log(tmp_path, log_format):
    data, port = tmp_path / "data", free_port()
    proc = start(data, port, "--log-format", log_format)
    try:
        password = (data / "admin-password.txt").read_text().strip()
        token = request(port, "POST", "/api/v1/auth/login", {"username": "admin", "password": password})["token"]
        auth = b"Authorization: Bearer " + token.encode()
        for bad in (
            auth + b"\x00x",
            auth + b"\x7f",
            auth.replace(b":", b" :", 1),
            auth + b"\xff",
            auth + b"\r\n folded",
        ):
            answer = raw_http(port, b"GET /api/v1/me HTTP/1.1\r\nHost: x\r\n" + bad + b"\r\n\r\n")
            assert answer.split(b"\r\n")[0].split(b" ")[1] in (b"400", b"401"), answer
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/join?token={token}", timeout=5) as r:
            assert r.status == 200
        raw_http(
            port,
            f"GET /api/v1/me?token={token} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {password}\r\n\r\n".encode(),
        )
        ws_hello(port, token)
        try:
            request(port, "POST", "/api/v1/auth/login", {"username": "admin", "password": password + "x"})
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode(errors="replace")
    assert "Error handling request" in out  # the refused requests were logged ...
    for secret in (token, token.split(".")[1], token.split(".")[2], password):
        assert secret not in out, f"{secret[:12]}... found in the server log:\n{out[-3000:]}"
    assert "Traceback" not in out  # ... as one line each: a client's garbage is no server fault


def test_redact_hides_every_spelling_of_a_credential():
    token = "gb1.eyJraW5kIjoib3AifQ.AbC-_d"
    for text in (
        f"b'Authorization: Bearer {token}\\x00'",
        f"GET /join?token={token}&x=1",
        f"Bearer {token.replace('-', '+')}==",
        '{"secret": "abcdefgh", "password":"p@ss"}',
        "authorization: bearer opaque-thing",
        "cannot reach rediss://giaoban:opaque-thing@10.0.0.5:6380/0",
    ):
        out = redact(text)
        for part in ("eyJraW5kIjoib3AifQ", "AbC", "abcdefgh", "p@ss", "opaque-thing"):
            assert part not in out, out
