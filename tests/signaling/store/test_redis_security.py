"""Redis with a password, an ACL user limited to giaoban's keys, and TLS (``rediss://``).

Whoever can write to giaoban's Redis can sign user tokens (the token key lives there), so a
production Redis has AUTH, an ACL user and, off the machine, TLS. These tests start such a
redis-server on 127.0.0.1 and check that the store works through the ACL documented in
SECURITY.md and over TLS, and that failures name the server without the password.
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest

from signaling.store import StoreError, open_store
from tests.support.redis_server import HOST, free_port, redis_server_binary

pytestmark = pytest.mark.integration

PASSWORD = "acl-pass-9f3b7c1d"
# the ACL line SECURITY.md recommends: giaoban's keys and channels only, nothing dangerous
ACL = ["giaoban", "on", f">{PASSWORD}", "~gb:*", "&gb:*", "+@all", "-@dangerous"]


def _launch(args: list[str], port: int, tls: bool, workdir: str) -> subprocess.Popen:
    cmd = [redis_server_binary(), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", workdir, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # the port is open once the server listens
        assert proc.poll() is None, "redis-server exited"
        try:
            import socket

            with socket.create_connection((HOST, port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise AssertionError("redis-server did not listen in 10 s")


@pytest.fixture(scope="module")
def secured_redis() -> Iterator[tuple[int, int, Path]]:
    """(plain port with ACL, TLS port with ACL, CA file)."""
    with tempfile.TemporaryDirectory(prefix="giaoban-redis-sec-") as work:
        cert, key = Path(work) / "cert.pem", Path(work) / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        port, tls_port = free_port(), free_port()
        acl = ["--user", "default", "off", "--user", *ACL]
        proc = _launch(
            [
                "--port",
                str(port),
                "--tls-port",
                str(tls_port),
                "--tls-cert-file",
                str(cert),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(cert),
                "--tls-auth-clients",
                "no",
                *acl,
            ],
            tls_port,
            True,
            work,
        )
        try:
            yield port, tls_port, cert
        finally:
            proc.kill()
            proc.wait(10)


async def _exercise(url: str) -> None:
    """Each kind of call the store makes (hashes, Lua scripts, TTL keys, lists, pub/sub)."""
    store = open_store(url)
    await store.start()
    try:
        sub = await store.subscribe("events")
        await store.put("operators", "admin", {"hash": "x"})
        assert await store.get("operators", "admin") == {"hash": "x"}
        assert await store.compare_and_put("m", url, None, {"v": 1})  # a key per test: one server
        assert await store.incr_ephemeral("login-failures", url, 30) == 1
        assert (url, {"count": 1}) in await store.list_ephemeral("login-failures")
        assert await store.acquire_lock(url, "node-a", 5)
        assert await store.append(url, {"e": 1}) == 1
        await store.publish("events", {"type": "hello"})
        assert await sub.get(timeout=5) == {"type": "hello"}
        await sub.stop()
    finally:
        await store.stop()


async def test_store_works_as_an_acl_user(secured_redis):
    port, _, _ = secured_redis
    await _exercise(f"redis://giaoban:{PASSWORD}@{HOST}:{port}/0")


async def test_store_works_over_tls(secured_redis):
    _, tls_port, ca = secured_redis
    await _exercise(f"rediss://giaoban:{PASSWORD}@{HOST}:{tls_port}/0?ssl_ca_certs={ca}")


@pytest.mark.parametrize(
    "userinfo, words", [("", ["refused the login"]), ("giaoban:wrong-pass@", ["refused the login"])]
)
async def test_missing_or_wrong_credentials_fail_clearly_without_the_password(secured_redis, userinfo, words):
    port, _, _ = secured_redis
    store = open_store(f"redis://{userinfo}{HOST}:{port}/0")
    with pytest.raises(StoreError) as err:
        await store.start()
    text = str(err.value)
    assert any(w in text for w in words) and "wrong-pass" not in text and f"{HOST}:{port}" in text, text


async def test_tls_port_refuses_a_server_it_cannot_verify(secured_redis):
    _, tls_port, _ = secured_redis
    store = open_store(f"rediss://giaoban:{PASSWORD}@{HOST}:{tls_port}/0")  # no CA: the self-signed cert fails
    with pytest.raises(StoreError) as err:
        await store.start()
    assert PASSWORD not in str(err.value) and "***" in str(err.value), err.value


def test_serve_on_a_password_protected_redis_never_prints_the_password(secured_redis, tmp_path):
    import os
    import signal
    import urllib.request

    from tests.support.cli import serve_command
    from tests.support.harness import ROOT

    port, _, _ = secured_redis
    http_port = free_port()
    store = f"redis://giaoban:{PASSWORD}@{HOST}:{port}/0"
    cmd = serve_command(tmp_path / "d", http_port, "--media", "none", "--node-id", "sec-node", store=store, host=HOST)
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{HOST}:{http_port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=40)[0].decode(errors="replace")
    assert "store=redis://giaoban:***@" in out, out[-2000:]
    assert PASSWORD not in out, out[-2000:]
