"""Every awaited write survives kill -9 of the writing process, on both backends."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import uuid

import pytest

from signaling.store import RedisStore, SqliteStore

ROOT = Path(__file__).resolve().parents[3]

CHILD = textwrap.dedent("""
    import asyncio, os, signal, sys
    from signaling.store import RedisStore, SqliteStore

    async def main(kind, target, prefix):
        store = SqliteStore(target) if kind == "sqlite" else RedisStore(target, prefix=prefix)
        await store.start()
        for i in range(20):
            await store.put("meetings", f"m{i:02d}", {"i": i, "title": "Giao ban Mèo Vạc"})
            await store.append("attendance", {"i": i})
        await store.put_ephemeral("presence", "ep", {"alive": True}, 60)
        await store.acquire_lock("open:m00", "node-a", 60)
        await store.put("meetings", "last", {"written": "right before the kill"})
        os.kill(os.getpid(), signal.SIGKILL)  # no stop(), no close, no checkpoint

    asyncio.run(main(*sys.argv[1:4]))
""")


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_writes_survive_kill_9(kind: str, tmp_path: Path, request) -> None:
    prefix = f"gbkill-{uuid.uuid4().hex[:8]}:"
    target = str(tmp_path / "giaoban.db") if kind == "sqlite" else request.getfixturevalue("redis_url")
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, kind, target, prefix], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    store = SqliteStore(target) if kind == "sqlite" else RedisStore(target, prefix=prefix)
    await store.start()
    try:
        docs = dict(await store.list("meetings"))
        assert docs["last"] == {"written": "right before the kill"}
        assert [docs[f"m{i:02d}"]["i"] for i in range(20)] == list(range(20))
        assert docs["m07"]["title"] == "Giao ban Mèo Vạc"
        assert await store.read_log("attendance") == [{"i": i} for i in range(20)]
        assert await store.get_ephemeral("presence", "ep") == {"alive": True}
        assert await store.acquire_lock("open:m00", "node-b", 1) is False  # lock survived too
    finally:
        await store.stop()


async def test_reopen_after_clean_stop_and_wal_mode(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "dir" / "g.db"  # missing folders are created
    store = SqliteStore(db)
    await store.start()
    await store.put("c", "k", {"v": "Mèo Vạc"})
    await store.stop()
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT value FROM docs").fetchone()[0] == '{"v":"Mèo Vạc"}'  # canonical
    finally:
        conn.close()
    again = SqliteStore(db)
    await again.start()
    assert await again.get("c", "k") == {"v": "Mèo Vạc"}
    await again.stop()


async def test_unopenable_file_gives_store_error(tmp_path: Path) -> None:
    import pytest

    from signaling.store import StoreError

    (tmp_path / "adir.db").mkdir()  # a directory where the file should be
    store = SqliteStore(tmp_path / "adir.db")
    with pytest.raises(StoreError, match="adir.db"):
        await store.start()
    await store.stop()


async def test_not_started_gives_store_error(tmp_path: Path) -> None:
    import pytest

    from signaling.store import StoreError

    store = SqliteStore(tmp_path / "x.db")
    with pytest.raises(StoreError, match="not started"):
        await store.get("c", "k")
    await store.stop()
    await store.stop()
