"""The embedded single-node store: one SQLite file, durable across ``kill -9``.

* WAL journal with ``synchronous=FULL``: every write is committed (and the WAL fsynced) before
  the awaited call returns.
* All sqlite3 calls run on one dedicated worker thread, so the event loop never waits on fsync
  and the operations of this process are serialised (no lost updates between coroutines).
* Atomic steps (``compare_and_put``, locks) run inside ``BEGIN IMMEDIATE`` so another process
  opening the same file cannot interleave either.
* Ephemeral documents and locks expire by wall clock (``time.time()``); expired rows are
  invisible at once and purged lazily by later writes and listings.
* Pub/sub is in-process (see ``pubsub_local`` for the overflow policy).
* The file holds the token key (whoever reads it can sign an admin token): it is created 0600,
  and SQLite gives its -wal and -shm files the database file's mode. An older, looser file is
  tightened on open.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import signaling.store.codec as codec
from signaling.store.base import Doc, Store, StoreError, Subscription
from signaling.store.pubsub_local import DEFAULT_QUEUE_SIZE, LocalBroker

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS docs(coll TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                                PRIMARY KEY(coll, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs(log TEXT NOT NULL, idx INTEGER NOT NULL, entry TEXT NOT NULL,
                                PRIMARY KEY(log, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ephemeral(coll TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
                                     expires_at REAL NOT NULL, PRIMARY KEY(coll, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS locks(name TEXT PRIMARY KEY, owner TEXT NOT NULL,
                                 expires_at REAL NOT NULL) WITHOUT ROWID;
"""


class SqliteStore(Store):
    def __init__(self, path: str | Path, *, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._broker = LocalBroker(queue_size)
        self._state = "new"  # new -> started -> stopped

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._state == "started":
            return
        if self._state == "stopped":
            raise StoreError(f"{self!r} was stopped; open a new store instead")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._open)
        except (sqlite3.Error, OSError) as exc:
            self._pool.shutdown(wait=False)
            raise StoreError(f"cannot open SQLite store {str(self.path)!r}: {exc}") from exc
        self._state = "started"

    def _open(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        _owner_only(self.path)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves; single statements autocommit.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise StoreError(f"SQLite refused WAL mode for {str(self.path)!r} (got {mode})")
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def stop(self) -> None:
        if self._state == "stopped":
            return
        was_started, self._state = self._state == "started", "stopped"
        self._broker.close_all()
        if was_started and self._pool is not None:
            # Queued after every in-flight call (single FIFO worker), so those finish first.
            await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
            self._pool.shutdown(wait=False)

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        self._check_open()
        assert self._pool is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {str(self.path)!r} failed: {exc}") from exc

    def _check_open(self) -> None:
        if self._state == "new":
            raise StoreError(f"{self!r} is not started; await start() first")
        if self._state == "stopped":
            raise StoreError(f"{self!r} is stopped; no further calls are possible")

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:  # stop() raced ahead of a queued call
            raise StoreError(f"{self!r} is stopped; no further calls are possible")
        return self._conn

    def _transaction(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in BEGIN IMMEDIATE ... COMMIT (on the worker thread)."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = body(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def _exec(self, sql: str, params: tuple[Any, ...]) -> int:
        return self._db().execute(sql, params).rowcount

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        row = self._db().execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _all(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        return self._db().execute(sql, params).fetchall()

    # documents ---------------------------------------------------------------------------
    async def get(self, coll: str, key: str) -> Doc | None:
        _names(coll, key)
        text = await self._run(self._one, "SELECT value FROM docs WHERE coll=? AND key=?", (coll, key))
        return None if text is None else codec.loads(text)

    async def put(self, coll: str, key: str, doc: Doc) -> None:
        _names(coll, key)
        params = (coll, key, codec.encode_doc(doc))
        await self._run(self._exec, "INSERT OR REPLACE INTO docs(coll, key, value) VALUES (?,?,?)", params)

    async def put_if_absent(self, coll: str, key: str, doc: Doc) -> bool:
        _names(coll, key)
        params = (coll, key, codec.encode_doc(doc))
        sql = "INSERT OR IGNORE INTO docs(coll, key, value) VALUES (?,?,?)"
        return await self._run(self._exec, sql, params) == 1

    async def compare_and_put(self, coll: str, key: str, expected: Doc | None, doc: Doc) -> bool:
        _names(coll, key)
        want = None if expected is None else codec.encode_doc(expected)
        new = codec.encode_doc(doc)

        def body(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT value FROM docs WHERE coll=? AND key=?", (coll, key)).fetchone()
            if (row[0] if row else None) != want:
                return False
            conn.execute("INSERT OR REPLACE INTO docs(coll, key, value) VALUES (?,?,?)", (coll, key, new))
            return True

        return await self._run(self._transaction, body)

    async def delete(self, coll: str, key: str) -> bool:
        _names(coll, key)
        return await self._run(self._exec, "DELETE FROM docs WHERE coll=? AND key=?", (coll, key)) > 0

    async def list(self, coll: str) -> list[tuple[str, Doc]]:
        codec.check_name("collection", coll)
        rows = await self._run(self._all, "SELECT key, value FROM docs WHERE coll=?", (coll,))
        return sorted((k, codec.loads(v)) for k, v in rows)

    # append-only logs ----------------------------------------------------------------------
    async def append(self, log: str, entry: Doc) -> int:
        codec.check_name("log", log)
        text = codec.encode_doc(entry)

        def body(conn: sqlite3.Connection) -> int:
            length: int = conn.execute("SELECT COUNT(*) FROM logs WHERE log=?", (log,)).fetchone()[0]
            conn.execute("INSERT INTO logs(log, idx, entry) VALUES (?,?,?)", (log, length, text))
            return length + 1

        return await self._run(self._transaction, body)

    async def read_log(self, log: str, start: int = 0) -> builtins.list[Doc]:
        codec.check_name("log", log)
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        sql = "SELECT entry FROM logs WHERE log=? AND idx>=? ORDER BY idx"
        return [codec.loads(e) for (e,) in await self._run(self._all, sql, (log, start))]

    # ephemeral documents -----------------------------------------------------------------
    async def put_ephemeral(self, coll: str, key: str, doc: Doc, ttl_s: float) -> None:
        _names(coll, key)
        params = (coll, key, codec.encode_doc(doc), time.time() + codec.check_ttl(ttl_s))
        sql = "INSERT OR REPLACE INTO ephemeral(coll, key, value, expires_at) VALUES (?,?,?,?)"
        await self._run(self._exec, sql, params)

    async def get_ephemeral(self, coll: str, key: str) -> Doc | None:
        _names(coll, key)
        sql = "SELECT value FROM ephemeral WHERE coll=? AND key=? AND expires_at>?"
        text = await self._run(self._one, sql, (coll, key, time.time()))
        return None if text is None else codec.loads(text)

    async def incr_ephemeral(self, coll: str, key: str, ttl_s: float, by: int = 1) -> int:
        _names(coll, key)
        ttl, step = codec.check_ttl(ttl_s), codec.check_step(by)

        def body(conn: sqlite3.Connection) -> int:  # read and write in one IMMEDIATE transaction
            now = time.time()
            sql = "SELECT value FROM ephemeral WHERE coll=? AND key=? AND expires_at>?"
            row = conn.execute(sql, (coll, key, now)).fetchone()
            count = codec.counter_value(row[0] if row else None) + step
            sql = "INSERT OR REPLACE INTO ephemeral(coll, key, value, expires_at) VALUES (?,?,?,?)"
            conn.execute(sql, (coll, key, codec.encode_doc({"count": count}), now + ttl))
            return count

        return await self._run(self._transaction, body)

    async def delete_ephemeral(self, coll: str, key: str) -> bool:
        _names(coll, key)
        sql = "DELETE FROM ephemeral WHERE coll=? AND key=? AND expires_at>?"
        return await self._run(self._exec, sql, (coll, key, time.time())) > 0

    async def list_ephemeral(self, coll: str) -> builtins.list[tuple[str, Doc]]:
        codec.check_name("collection", coll)

        def body(conn: sqlite3.Connection) -> list[tuple[str, str]]:
            now = time.time()
            conn.execute("DELETE FROM ephemeral WHERE coll=? AND expires_at<=?", (coll, now))  # lazy purge
            sql = "SELECT key, value FROM ephemeral WHERE coll=? AND expires_at>?"
            return conn.execute(sql, (coll, now)).fetchall()

        rows = await self._run(self._transaction, body)
        return sorted((k, codec.loads(v)) for k, v in rows)

    # locks -------------------------------------------------------------------------------
    async def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        codec.check_name("lock name", name)
        codec.check_name("lock owner", owner)
        ttl = codec.check_ttl(ttl_s)

        def body(conn: sqlite3.Connection) -> bool:
            now = time.time()
            row = conn.execute("SELECT owner, expires_at FROM locks WHERE name=?", (name,)).fetchone()
            if row is not None and row[0] != owner and row[1] > now:
                return False
            sql = "INSERT OR REPLACE INTO locks(name, owner, expires_at) VALUES (?,?,?)"
            conn.execute(sql, (name, owner, now + ttl))
            return True

        return await self._run(self._transaction, body)

    async def release_lock(self, name: str, owner: str) -> bool:
        codec.check_name("lock name", name)
        sql = "DELETE FROM locks WHERE name=? AND owner=? AND expires_at>?"
        return await self._run(self._exec, sql, (name, owner, time.time())) > 0

    # pub/sub -----------------------------------------------------------------------------
    async def publish(self, channel: str, message: Doc) -> None:
        codec.check_name("channel", channel)
        self._check_open()
        self._broker.publish(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        codec.check_name("channel", channel)
        self._check_open()
        return self._broker.subscribe(channel)


def _owner_only(path: Path) -> None:
    """Create the database file 0600 (whatever the umask), and tighten it and its WAL files."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        try:
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)
        except FileNotFoundError:
            pass


def _names(coll: str, key: str) -> None:
    codec.check_name("collection", coll)
    codec.check_name("key", key)
