"""The multi-node store on an external Redis (redis.asyncio).

Key layout (``p`` is the prefix, ``gb:`` by default):

* ``p doc:<coll>``            hash  key -> canonical JSON
* ``p log:<log>``             list of canonical JSON entries
* ``p eph:<len>:<coll>:<key>`` string with PX expiry; the length prefix keeps ("a:b","c") and
  ("a","b:c") apart
* ``p ephidx:<coll>``         sorted set key -> expiry (ms, Redis server clock), so listing a
  collection needs no SCAN; the string keys' own expiry stays the truth
* ``p lock:<name>``           string holding the owner, PX expiry
* ``p ch:<channel>``          pub/sub channel; every subscription of a store shares one connection
  (``redis_pubsub``), so subscribers never take connections from the request pool

Atomic steps run as Lua scripts, which use the Redis server's clock so nodes with skewed clocks
agree. Every Redis failure surfaces as ``StoreError`` naming the server (password removed); a
call that finds no free pooled connection in time raises ``StoreBusy`` (clients: "busy, retry").
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import random
from typing import Any, Awaitable, TypeVar, cast
from urllib.parse import urlsplit

import redis
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import signaling.store.codec as codec
from signaling.store.base import BeatWriter, Doc, Store, StoreBusy, StoreError, Subscription
from signaling.store.pubsub_local import DEFAULT_QUEUE_SIZE
from signaling.store.redis_pubsub import PubSubHub

log = logging.getLogger("giaoban.store.redis")
T = TypeVar("T")

# KEYS[1]=hash; ARGV: field, has_expected ("0"/"1"), expected text, new text
_CAS = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[3] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[4])
return 1
"""
# KEYS[1]=doc key, KEYS[2]=index; ARGV: value, ttl ms, member
_PUT_EPH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return 1
"""
# KEYS[1]=doc key, KEYS[2]=index; ARGV: step, ttl ms, member. Read, add and write back the
# counter document {"count": n} in one step (INCR alone would store a bare number, which
# get_ephemeral could not read as a document); the text written is codec's canonical JSON.
_INCR_EPH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = 0
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, doc = pcall(cjson.decode, cur)
  if ok and type(doc) == 'table' and type(doc.count) == 'number' and doc.count == math.floor(doc.count) then
    count = doc.count
  end
end
count = count + tonumber(ARGV[1])
redis.call('SET', KEYS[1], '{"count":' .. string.format('%d', count) .. '}', 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return count
"""
# KEYS[1]=index: prune expired members, return the live ones
_LIVE_EPH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
"""
# KEYS[1]=lock; ARGV: owner, ttl ms. Take a free lock or refresh our own, in one step.
_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def redact(url: str) -> str:
    """The URL without a password, for error messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = f"{parts.username}:***@" if parts.username else ":***@"
        return parts._replace(netloc=user + netloc).geturl()
    except ValueError:
        return "<unparseable redis URL>"


# The request pool: subscriptions do not use it (redis_pubsub: one connection of their own). A call
# that finds no free connection within POOL_WAIT_S raises StoreBusy ("busy, retry"); settings
# store_pool_size and store_pool_wait_s.
POOL_SIZE = 128
POOL_WAIT_S = 5.0
RETRY_AFTER_S = (1, 3)  # told to a client that met a dry pool; spread so that retries do not herd


class _PoolDry(RedisConnectionError):
    """No connection came free within the pool's wait."""


class _BlockingPool(aioredis.BlockingConnectionPool):
    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, asyncio.TimeoutError):  # redis-py's "No connection available."
                raise _PoolDry(f"no free connection within {self.timeout} s") from exc
            raise


class RedisStore(Store):
    shared = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gb:",
        queue_size: int = DEFAULT_QUEUE_SIZE,
        connect_timeout_s: float = 5.0,
        pool_size: int = POOL_SIZE,
        pool_wait_s: float = POOL_WAIT_S,
    ) -> None:
        self.url, self.prefix = url, prefix
        self._where = redact(url)
        self._queue_size, self._connect_timeout_s = queue_size, connect_timeout_s
        self.pool_size, self.pool_wait_s = pool_size, pool_wait_s
        self._client: aioredis.Redis | None = None
        self._hub: PubSubHub | None = None
        self._state = "new"  # new -> started -> stopped

    def __repr__(self) -> str:
        return f"RedisStore({self._where!r})"

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._state == "started":
            return
        if self._state == "stopped":
            raise StoreError(f"{self!r} was stopped; open a new store instead")
        try:
            # A blocking pool: a burst (200 terminals joining at 07:50) waits for a free
            # connection instead of failing with "Too many connections", up to pool_wait_s.
            pool = _BlockingPool.from_url(
                self.url,
                decode_responses=True,
                socket_connect_timeout=self._connect_timeout_s,
                max_connections=self.pool_size,
                timeout=self.pool_wait_s,
            )
            client = aioredis.Redis(connection_pool=pool)
            # pub/sub: a client (and pool) of its own, holding one connection for every channel
            sub_pool = aioredis.ConnectionPool.from_url(
                self.url, decode_responses=True, socket_connect_timeout=self._connect_timeout_s, max_connections=1
            )
        except (ValueError, TypeError, RedisError) as exc:
            raise StoreError(f"bad Redis URL {self._where!r}: {exc}") from exc
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            await client.aclose()
            await pool.disconnect()
            raise StoreError(f"cannot reach Redis at {self._where}: {exc}{_login_hint(exc)}") from exc
        self._client = client
        self._hub = PubSubHub(aioredis.Redis(connection_pool=sub_pool), self._where, self._queue_size)
        self._cas, self._put_eph = client.register_script(_CAS), client.register_script(_PUT_EPH)
        self._live_eph, self._acquire = client.register_script(_LIVE_EPH), client.register_script(_ACQUIRE)
        self._release, self._incr_eph = client.register_script(_RELEASE), client.register_script(_INCR_EPH)
        self._state = "started"

    async def stop(self) -> None:
        if self._state == "stopped":
            return
        self._state = "stopped"
        if self._hub is not None:
            await self._hub.stop()
        if self._client is not None:
            await self._client.aclose()
            await self._client.connection_pool.disconnect()
            self._client = None

    def _redis(self) -> aioredis.Redis:
        if self._state == "new":
            raise StoreError(f"{self!r} is not started; await start() first")
        if self._state == "stopped" or self._client is None:
            raise StoreError(f"{self!r} is stopped; no further calls are possible")
        return self._client

    async def _call(self, awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (_PoolDry, RedisTimeoutError) as exc:
            after = random.randint(*RETRY_AFTER_S)
            raise StoreBusy(f"Redis at {self._where} is busy ({exc}); retry in {after} s", after) from exc
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis at {self._where} failed: {exc}") from exc

    def _k(self, kind: str, name: str) -> str:
        return f"{self.prefix}{kind}:{name}"

    def _eph_key(self, coll: str, key: str) -> str:
        return f"{self.prefix}eph:{len(coll)}:{coll}:{key}"

    # documents ---------------------------------------------------------------------------
    async def get(self, coll: str, key: str) -> Doc | None:
        _names(coll, key)
        text = await self._call(self._redis().hget(self._k("doc", coll), key))
        return None if text is None else codec.loads(text)

    async def put(self, coll: str, key: str, doc: Doc) -> None:
        _names(coll, key)
        text = codec.encode_doc(doc)
        await self._call(self._redis().hset(self._k("doc", coll), key, text))

    async def put_if_absent(self, coll: str, key: str, doc: Doc) -> bool:
        _names(coll, key)
        text = codec.encode_doc(doc)
        return bool(await self._call(self._redis().hsetnx(self._k("doc", coll), key, text)))

    async def compare_and_put(self, coll: str, key: str, expected: Doc | None, doc: Doc) -> bool:
        _names(coll, key)
        want = "" if expected is None else codec.encode_doc(expected)
        args = [key, "0" if expected is None else "1", want, codec.encode_doc(doc)]
        self._redis()
        return bool(await self._call(self._cas(keys=[self._k("doc", coll)], args=args)))

    async def delete(self, coll: str, key: str) -> bool:
        _names(coll, key)
        return bool(await self._call(self._redis().hdel(self._k("doc", coll), key)))

    async def list(self, coll: str) -> list[tuple[str, Doc]]:
        codec.check_name("collection", coll)
        raw = await self._call(self._redis().hgetall(self._k("doc", coll)))
        mapping = cast("dict[str, str]", raw)  # the pool decodes responses: keys and values are str
        return sorted((k, codec.loads(v)) for k, v in mapping.items())

    # append-only logs ----------------------------------------------------------------------
    async def append(self, log: str, entry: Doc) -> int:
        codec.check_name("log", log)
        text = codec.encode_doc(entry)
        return int(await self._call(self._redis().rpush(self._k("log", log), text)))

    async def read_log(self, log: str, start: int = 0) -> builtins.list[Doc]:
        codec.check_name("log", log)
        if start < 0:
            raise ValueError(f"start must be >= 0, got {start}")
        entries = await self._call(self._redis().lrange(self._k("log", log), start, -1))
        return [codec.loads(e) for e in entries]

    # ephemeral documents -----------------------------------------------------------------
    async def put_ephemeral(self, coll: str, key: str, doc: Doc, ttl_s: float) -> None:
        _names(coll, key)
        ttl_ms = max(1, round(codec.check_ttl(ttl_s) * 1000))
        keys = [self._eph_key(coll, key), self._k("ephidx", coll)]
        self._redis()
        await self._call(self._put_eph(keys=keys, args=[codec.encode_doc(doc), ttl_ms, key]))

    async def get_ephemeral(self, coll: str, key: str) -> Doc | None:
        _names(coll, key)
        text = await self._call(self._redis().get(self._eph_key(coll, key)))
        return None if text is None else codec.loads(text)

    async def incr_ephemeral(self, coll: str, key: str, ttl_s: float, by: int = 1) -> int:
        _names(coll, key)
        ttl_ms, step = max(1, round(codec.check_ttl(ttl_s) * 1000)), codec.check_step(by)
        keys = [self._eph_key(coll, key), self._k("ephidx", coll)]
        self._redis()
        return int(await self._call(self._incr_eph(keys=keys, args=[step, ttl_ms, key])))

    async def delete_ephemeral(self, coll: str, key: str) -> bool:
        _names(coll, key)
        pipe = self._redis().pipeline(transaction=True)
        pipe.delete(self._eph_key(coll, key))
        pipe.zrem(self._k("ephidx", coll), key)
        deleted, _ = await self._call(pipe.execute())
        return bool(deleted)

    async def list_ephemeral(self, coll: str) -> builtins.list[tuple[str, Doc]]:
        codec.check_name("collection", coll)
        self._redis()
        members: list[str] = await self._call(self._live_eph(keys=[self._k("ephidx", coll)]))
        if not members:
            return []
        texts = await self._call(self._redis().mget([self._eph_key(coll, m) for m in members]))
        # A key can expire between the two calls: its string is gone, so it is skipped.
        return sorted((m, codec.loads(t)) for m, t in zip(members, texts) if t is not None)

    # locks -------------------------------------------------------------------------------
    async def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        codec.check_name("lock name", name)
        codec.check_name("lock owner", owner)
        ttl_ms = max(1, round(codec.check_ttl(ttl_s) * 1000))
        self._redis()
        return bool(await self._call(self._acquire(keys=[self._k("lock", name)], args=[owner, ttl_ms])))

    async def release_lock(self, name: str, owner: str) -> bool:
        codec.check_name("lock name", name)
        self._redis()
        return bool(await self._call(self._release(keys=[self._k("lock", name)], args=[owner])))

    # pub/sub -----------------------------------------------------------------------------
    async def publish(self, channel: str, message: Doc) -> None:
        codec.check_name("channel", channel)
        text = codec.encode_doc(message)
        await self._call(self._redis().publish(self._k("ch", channel), text))

    async def subscribe(self, channel: str) -> Subscription:
        codec.check_name("channel", channel)
        self._redis()
        assert self._hub is not None
        return await self._hub.subscribe(self._k("ch", channel), channel)

    # heartbeats off the event loop -------------------------------------------------------
    def beat_writer(self) -> BeatWriter:
        self._redis()
        return _SyncBeatWriter(self)


class _SyncBeatWriter(BeatWriter):
    """A synchronous Redis connection for a heartbeat thread; the same ephemeral layout and script
    as the store's put_ephemeral. Its socket timeout keeps a stuck Redis from holding the thread."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        try:
            self._client = redis.Redis.from_url(
                store.url, decode_responses=True, socket_connect_timeout=2.0, socket_timeout=2.0
            )
        except (ValueError, TypeError, RedisError) as exc:
            raise StoreError(f"bad Redis URL {store._where!r}: {exc}") from exc
        self._put_eph = self._client.register_script(_PUT_EPH)

    def put_ephemeral(self, coll: str, key: str, doc: Doc, ttl_s: float) -> None:
        _names(coll, key)
        ttl_ms = max(1, round(codec.check_ttl(ttl_s) * 1000))
        keys = [self._store._eph_key(coll, key), self._store._k("ephidx", coll)]
        try:
            self._put_eph(keys=keys, args=[codec.encode_doc(doc), ttl_ms, key])
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis at {self._store._where} failed: {exc}") from exc

    def close(self) -> None:
        self._client.close()


def _login_hint(exc: BaseException) -> str:
    """Redis's own words for a refused login (NOAUTH, WRONGPASS, HELLO ...) do not say what to do."""
    text = str(exc).upper()
    if isinstance(exc, AuthenticationError) or any(w in text for w in ("AUTH", "WRONGPASS", "NOPERM")):
        return (
            "; Redis refused the login: give user and password in the URL "
            "(redis://user:password@host:port/db, rediss:// for TLS) and the ACL in SECURITY.md"
        )
    return ""


def _names(coll: str, key: str) -> None:
    codec.check_name("collection", coll)
    codec.check_name("key", key)
