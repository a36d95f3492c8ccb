"""Meetings tests: the real SQLite store on tmp_path, the real Hà Giang directory, an injected clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import AsyncIterator

import pytest

from endpoints.directory import Directory, load_directory
from signaling.meetings.model import VN, MeetingSpec
from signaling.meetings.service import MeetingService
from signaling.store.sqlite_store import SqliteStore

HAGIANG = Path(__file__).resolve().parents[3] / "config" / "hagiang.yaml"
# Sunday 2030-01-06 12:00 local; Monday 2030-01-07 is the first briefing day
T0 = datetime(2030, 1, 6, 12, 0, tzinfo=VN)


class FakeClock:
    """A settable clock shared by the service and the schedulers; nothing sleeps."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(scope="session")
def directory() -> Directory:
    return load_directory(HAGIANG)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "store.db"


@pytest.fixture
async def store(db_path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(db_path)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def service(store, directory, clock) -> MeetingService:
    return MeetingService(store, directory, clock=clock, early_join_minutes=10)


def spec(**over) -> MeetingSpec:
    """A valid one-off district meeting on Monday 2030-01-07 09:00-10:00, changed by ``over``."""
    fields = {
        "title": "Họp giao ban huyện Mèo Vạc",
        "chair": "hg-meo-vac",
        "invited": ["tier:commune@hg-meo-vac"],
        "start": "2030-01-07T09:00",
        "duration_minutes": 60,
    }
    return MeetingSpec(**(fields | over))
