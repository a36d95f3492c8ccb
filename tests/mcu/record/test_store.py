"""RecordingStore: listing, retention sweep, recovery of interrupted recordings, safe ids."""

from __future__ import annotations

import json
import time

import pytest

from mcu.record import Recorder, RecordingStore

from tests.mcu.record.media import feed

DAY = 86400.0


async def _record(
    store: RecordingStore, meeting_id: str, seconds: float, stop: bool = True, age_days: float = 0.0
) -> str:
    folder = store.new_dir(meeting_id)
    rec = Recorder(
        folder,
        {"meeting_id": meeting_id, "title": f"Họp {meeting_id}"},
        None,
        None,
        segment_seconds=2,
        wall=lambda: time.time() - age_days * DAY,
    )
    await rec.start()
    feed(rec, seconds)
    if stop:
        await rec.stop()
    else:
        await rec.sync()
    return folder.name


async def test_list_and_retention_sweep(tmp_path):
    store = RecordingStore(tmp_path / "recs", retention_days=30)
    old = await _record(store, "m-old", 1.0, age_days=31)
    young = await _record(store, "m-young", 2.0, age_days=29)
    recs = {r["id"]: r for r in store.list()}
    assert set(recs) == {old, young}
    r = recs[young]
    assert r["meeting_id"] == "m-young" and r["title"] == "Họp m-young" and r["state"] == "done"
    assert abs(r["duration_s"] - 2.0) < 0.2 and r["size_bytes"] > 1000
    assert r["started_at"].endswith("+07:00") and r["expires_at"].endswith("+07:00")
    assert [x["id"] for x in store.list("m-old")] == [old]
    assert store.sweep(active=[old]) == []  # a running recording is never swept
    assert store.sweep() == [old]
    assert [x["id"] for x in store.list()] == [young]
    assert store.sweep(now=time.time() + 2 * DAY) == [young]
    assert store.list() == []


async def test_recover_all_finishes_interrupted_recordings(tmp_path):
    store = RecordingStore(tmp_path / "recs")
    running = await _record(store, "m-live", 3.0, stop=False)
    assert store.get(running)["state"] == "recording" and store.file_of(running) is None
    assert store.recover_all(active=[running]) == []
    assert store.recover_all() == [running]
    info = store.get(running)
    assert info["state"] == "recovered" and 2.0 <= info["duration_s"] <= 3.1
    assert store.file_of(running).name == "recording.webm"


def test_ids_are_checked_and_folders_unique(tmp_path):
    store = RecordingStore(tmp_path / "recs")
    for bad in ("../etc", "", "a/b", ".hidden", "x" * 200):
        with pytest.raises(KeyError):
            store.get(bad)
    a, b = store.new_dir("m/1 ?"), store.new_dir("m/1 ?")
    assert a != b and a.parent == b.parent == store.root and a.name.startswith("m_1-")
    with pytest.raises(ValueError):
        RecordingStore(tmp_path, retention_days=0)


async def test_crash_after_concatenation_and_meetings_in_parallel(tmp_path):
    store = RecordingStore(tmp_path / "recs")
    recs = [Recorder(store.new_dir(m), {"meeting_id": m}, None, None, segment_seconds=2) for m in ("m-a", "m-b")]
    for r in recs:
        await r.start()
    for k in range(3):  # two meetings recording at the same time
        for r in recs:
            feed(r, 1.0, start=30 * k)
    results = [await r.stop() for r in recs]
    assert [x["meeting_id"] for x in results] == ["m-a", "m-b"]
    assert all(2.9 <= x["duration_s"] <= 3.1 and x["state"] == "done" for x in results)
    # a crash between writing the final file and the index: the index still says "recording"
    folder = store.root / results[0]["id"]
    index = json.loads((folder / "recording.json").read_text())
    index.update(state="recording", file=None)
    (folder / "recording.json").write_text(json.dumps(index))
    assert store.recover_all() == [results[0]["id"]]
    info = store.get(results[0]["id"])
    assert info["state"] == "recovered" and info["file"] == "recording.webm" and 2.9 <= info["duration_s"] <= 3.1
