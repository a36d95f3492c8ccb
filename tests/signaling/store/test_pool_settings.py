"""The Redis request pool's settings (#18): read from the file, checked, passed to the store."""

from __future__ import annotations

import pytest

from signaling.settings import SettingsError, load_settings
from signaling.store import RedisStore, open_store


def test_pool_settings_from_a_file_reach_the_store(tmp_path) -> None:
    path = tmp_path / "server.yaml"
    path.write_text("store_pool_size: 32\nstore_pool_wait_s: 0.5\n", encoding="utf-8")
    settings = load_settings(path)
    assert (settings.store_pool_size, settings.store_pool_wait_s) == (32, 0.5)
    store = open_store("redis://127.0.0.1:6390/0", pool_size=32, pool_wait_s=0.5)
    assert isinstance(store, RedisStore) and (store.pool_size, store.pool_wait_s) == (32, 0.5)


@pytest.mark.parametrize(
    "line, words",
    [
        ("store_pool_size: 1", "store_pool_size must be 2..10000"),
        ("store_pool_wait_s: 0", "store_pool_wait_s must be > 0"),
    ],
)
def test_bad_pool_settings_are_refused(tmp_path, line: str, words: str) -> None:
    path = tmp_path / "server.yaml"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=words):
        load_settings(path)
