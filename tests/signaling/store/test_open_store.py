"""open_store picks the backend from the URL and refuses anything else clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from signaling.store import RedisStore, SqliteStore, open_store


@pytest.mark.parametrize(
    "url, path",
    [
        ("sqlite:///var/lib/giaoban/g.db", "/var/lib/giaoban/g.db"),
        ("sqlite:/var/lib/giaoban/g.db", "/var/lib/giaoban/g.db"),
        ("sqlite:data/g.db", "data/g.db"),
        ("sqlite:g.db", "g.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    store = open_store(url)
    assert isinstance(store, SqliteStore)
    assert store.path == Path(path)


def test_redis_url() -> None:
    store = open_store("redis://127.0.0.1:6390/2")
    assert isinstance(store, RedisStore)
    assert store.url == "redis://127.0.0.1:6390/2" and store.prefix == "gb:"


@pytest.mark.parametrize(
    "url", ["", "   ", "postgres://x/y", "/tmp/g.db", "sqlite:", "sqlite://host/g.db", "sqlite:///", "memory:"]
)
def test_bad_urls(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        open_store(url)


async def test_open_store_sqlite_works(tmp_path: Path) -> None:
    store = open_store(f"sqlite:{tmp_path / 'g.db'}")
    await store.start()
    await store.put("c", "k", {"v": 1})
    await store.stop()
    assert (tmp_path / "g.db").exists()
