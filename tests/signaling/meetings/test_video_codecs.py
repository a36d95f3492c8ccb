"""The meeting setting ``video_codecs`` (#13): checked, normalised to upper case and stored in both
stores like ``media_modes``; changed by ``update``; given to every media peer by ``media_extra``."""

from __future__ import annotations

from typing import AsyncIterator

import msgspec
import pytest

from signaling.auth.policy import media_extra
from signaling.meetings.errors import MeetingError
from signaling.meetings.model import Meeting, MeetingSpec
from signaling.meetings.service import MEETINGS, MeetingService
from signaling.store import Store
from tests.signaling.meetings.conftest import spec
from tests.signaling.store.conftest import BACKENDS, make_store


@pytest.fixture(params=BACKENDS)
async def any_store(request, tmp_path) -> AsyncIterator[Store]:
    """SQLite (unit) and Redis (integration): the setting must survive both."""
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else ""
    s = make_store(request.param, tmp_path, redis_url)
    await s.start()
    yield s
    await s.stop()


@pytest.fixture
def codecs_service(any_store, directory, clock) -> MeetingService:
    return MeetingService(any_store, directory, clock=clock)


async def test_the_default_is_vp8_then_h264_and_every_peer_gets_it(codecs_service, any_store):
    m = await codecs_service.create(spec())
    assert m.video_codecs == ["VP8", "H264"]
    assert (await any_store.get(MEETINGS, m.id))["video_codecs"] == ["VP8", "H264"]
    for link in ("fibre", "thin", "mobile"):
        assert media_extra(m, link)["video_codecs"] == ["VP8", "H264"]


async def test_any_case_is_stored_upper_case_in_the_given_order(codecs_service, any_store):
    m = await codecs_service.create(spec(video_codecs=["h264", "Vp8"], media_modes={"thin": "mcu"}))
    assert m.video_codecs == ["H264", "VP8"]
    assert (await any_store.get(MEETINGS, m.id))["video_codecs"] == ["H264", "VP8"]
    assert await codecs_service.get(m.id) == m
    assert media_extra(m, "thin") == {"video_codecs": ["H264", "VP8"], "media_mode": "mcu"}
    assert media_extra(m, "fibre") == {"video_codecs": ["H264", "VP8"]}


async def test_update_changes_the_codecs_and_keeps_them_when_not_named(codecs_service, any_store):
    m = await codecs_service.create(spec(video_codecs=["H264"]))
    m = await codecs_service.update(m.id, {"title": "Họp mới"})
    assert m.video_codecs == ["H264"]
    m = await codecs_service.update(m.id, {"video_codecs": ["vp8"]})
    assert m.video_codecs == ["VP8"] and (await any_store.get(MEETINGS, m.id))["video_codecs"] == ["VP8"]
    m = await codecs_service.update(m.id, {"video_codecs": None})  # back to the default
    assert m.video_codecs == ["VP8", "H264"]


@pytest.mark.parametrize(
    "value, words",
    [
        ([], "non-empty list"),
        ("VP8", "non-empty list"),
        (["AV1"], "'AV1' is not a video codec the server knows (VP8 and H264)"),
        (["VP8", 8], "8 is not a video codec"),
        (["VP8", "vp8"], "names a codec twice"),
    ],
)
async def test_a_wrong_value_names_the_field_and_stores_nothing(codecs_service, any_store, value, words):
    with pytest.raises(MeetingError) as err:
        await codecs_service.create(spec(video_codecs=value))
    assert err.value.field == "video_codecs" and words in str(err.value), str(err.value)
    assert await any_store.list(MEETINGS) == []
    m = await codecs_service.create(spec())
    with pytest.raises(MeetingError) as err:  # the schema's words or these: either names the field
        await codecs_service.update(m.id, {"video_codecs": value})
    assert err.value.field == "video_codecs" and "video_codecs" in str(err.value), str(err.value)
    assert (await codecs_service.get(m.id)).video_codecs == ["VP8", "H264"]


def test_a_meeting_stored_before_the_setting_reads_as_the_default():
    doc = msgspec.to_builtins(Meeting.from_dict(_old_doc()))
    assert doc["video_codecs"] == ["VP8", "H264"]


def test_the_schema_limits_the_list_when_decoding():
    body = b'{"title":"x","chair":"hg-meo-vac","invited":["all"],"start":"2030-01-07T08:00",'
    with pytest.raises(msgspec.ValidationError, match="video_codecs"):
        msgspec.json.decode(body + b'"video_codecs":["VP8","H264","VP8"]}', type=MeetingSpec)
    decoded = msgspec.json.decode(body + b'"video_codecs":["h264"]}', type=MeetingSpec)
    assert decoded.video_codecs == ["h264"]  # the service upper-cases it


def _old_doc() -> dict:
    return {
        "id": "m-0000abcd",
        "title": "Họp cũ",
        "chair": "hg-meo-vac",
        "invited": ["all"],
        "start": "2030-01-07T09:00:00+07:00",
        "end": "2030-01-07T10:00:00+07:00",
        "created_at": "2030-01-01T09:00:00+07:00",
        "updated_at": "2030-01-01T09:00:00+07:00",
        "duration_minutes": 60,
    }
