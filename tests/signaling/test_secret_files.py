"""Secrets at rest and the node key (issue #11 item 7).

The audit found var/giaoban.db and its WAL 0644 (they hold the token key: a token forged with it
was accepted as admin) and the `credentials --out` CSV 0644. Here `giaoban` runs as an operator
runs it, under the usual umask 022, and the modes of what it wrote are read back. Node tokens are
keyed by settings.node_key: a token derived from the key in the store (what anyone who can write
to Redis could make) is refused by the node API, and a media node listed in Redis without the
node key's signature is never called.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import sqlite3
import stat
import subprocess

import pytest
from aiohttp import web

from signaling.settings import SettingsError
from signaling.auth.tokens import TokenSigner
from tests.support.cluster import flush
from tests.support.cli import giaoban_command
from tests.support.harness import ROOT, free_port, start_node
from tests.signaling.test_server_process import start as start_serve

pytestmark = pytest.mark.integration


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def cli(data, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        giaoban_command(data, *args), cwd=ROOT, capture_output=True, text=True, timeout=120, umask=0o022
    )


def test_state_and_secret_files_are_owner_only_under_umask_022(tmp_path):
    old = os.umask(0o022)  # the server inherits it, as from a login shell
    try:
        data, port = tmp_path / "var", free_port()
        proc = start_serve(data, port, "--log-format", "text")
    finally:
        os.umask(old)
    try:
        assert (data / "giaoban.db-wal").exists()  # WAL mode: the key may sit in the WAL first
        for name in ("giaoban.db", "giaoban.db-wal", "giaoban.db-shm", "admin-password.txt"):
            assert mode(data / name) == 0o600, (name, oct(mode(data / name)))
        assert mode(data) == 0o700
    finally:
        proc.terminate()
        proc.communicate(timeout=30)

    out = tmp_path / "secrets.csv"
    out.write_text("old\n")
    out.chmod(0o644)  # a file left from an earlier run keeps no looser mode
    done = cli(data, "credentials", "tier:commune@hg-meo-vac", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert mode(out) == 0o600 and out.read_text().startswith("endpoint_id,name,secret")


def test_an_older_readable_database_is_tightened_on_open(tmp_path):
    data = tmp_path / "var"
    data.mkdir()
    db = data / "giaoban.db"
    sqlite3.connect(db).close()
    db.chmod(0o644)
    done = cli(data, "operator", "tinh-it", "--password", "a long password")
    assert done.returncode == 0, done.stderr
    assert mode(db) == 0o600


@pytest.fixture
def no_node_key(monkeypatch):
    monkeypatch.delenv("GIAOBAN_NODE_KEY", raising=False)


async def test_a_clustered_node_without_a_node_key_refuses_to_start(tmp_path, redis_url, no_node_key):
    with pytest.raises(SettingsError, match="node_key is not set"):
        await start_node(tmp_path / "a", store=redis_url)
    with pytest.raises(SettingsError, match="fewer than 32"):
        await start_node(tmp_path / "b", store=redis_url, node_key="short")
    done = cli(tmp_path / "c", "--store", redis_url, "serve", "--port", str(free_port()), "--media", "none")
    assert done.returncode == 2 and "GIAOBAN_NODE_KEY" in done.stderr, done.stderr
    # the operator's own commands never talk to other nodes: they need no node key
    done = cli(tmp_path / "c", "--store", redis_url, "credentials", "hg-meo-vac", "--out", str(tmp_path / "s.csv"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s.csv").read_text().startswith("endpoint_id,name,secret")
    (tmp_path / "pw").write_text("mat-khau-dai-9\n")  # from a file: a command line shows in `ps`
    done = cli(tmp_path / "c", "--store", redis_url, "operator", "ninh", "--password-file", str(tmp_path / "pw"))
    await flush(redis_url)  # the Redis server is shared by the session: no operator left behind
    assert done.returncode == 0, done.stderr


async def test_node_tokens_made_from_the_store_are_refused(tmp_path, redis_url):
    node = await start_node(tmp_path / "n", store=redis_url, node_id="sig-n")
    try:
        # what a Redis writer can do: read the token key and derive the node key as before the fix
        store_key = bytes.fromhex((await node.ctx.store.get("secrets", "token-key"))["key"])
        old_way = TokenSigner(hmac.new(store_key, b"giaoban/media-nodes", hashlib.sha256).digest(), kinds=("node",))
        forged, _ = old_way.issue("node", "intruder", 60)
        path = "/internal/media/meetings/m1/floor"
        status, body = await node.call("POST", path, token=forged, json={"endpoint_id": None})
        assert status == 401 and body["error"]["code"] == "unauthorized", body
        good = node.ctx.placement.node_token()  # signed with the shared node key: gets past auth
        status, body = await node.call("POST", path, token=good, json={"endpoint_id": None})
        assert status == 503 and "without media" in body["error"]["message"], body
    finally:
        await node.stop()


async def test_a_media_node_forged_in_redis_is_never_called(tmp_path, redis_url):
    """A Redis writer lists a 'media node' of their own: nodes must send it no token at all."""
    seen: list[str] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"recordings": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", capture)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await flush(redis_url)
    media = await start_node(tmp_path / "m", store=redis_url, node_id="media-real", media="local")
    sig = await start_node(tmp_path / "s", store=redis_url, node_id="sig-r")
    try:
        real = await sig.ctx.store.get_ephemeral("media-nodes", "media-real")
        for rogue_id, sig_field in (("rogue-unsigned", None), ("rogue-copied-sig", real.get("sig", "0" * 64))):
            doc = dict(real, url=f"http://127.0.0.1:{port}")
            doc.pop("sig", None)
            if sig_field:
                doc["sig"] = sig_field  # a genuine node's signature does not cover another entry
            await sig.ctx.store.put_ephemeral("media-nodes", rogue_id, doc, 60)
        await asyncio.sleep(0.6)  # past the registry's read cache
        status, view = await sig.call("GET", "/api/v1/cluster")
        assert status == 200 and set(view["media_nodes"]) == {"media-real"}, view["media_nodes"]
        status, body = await sig.call("GET", "/api/v1/recordings")
        assert status == 200, body
        assert seen == [], seen  # before: the operator's bearer token reached the rogue server
    finally:
        await sig.stop()
        await media.stop()
        await runner.cleanup()
        await flush(redis_url)
