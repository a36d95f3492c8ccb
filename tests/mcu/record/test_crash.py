"""kill -9 during a recording leaves a playable file (recover() after the restart)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcu.record import RecordingStore
from mcu.record.recorder import INDEX
from mcu.record.util import read_json

from tests.mcu.record.media import RED, assert_colour, decode_all, peak_hz

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


def test_sigkill_mid_recording_leaves_a_playable_file(tmp_path):
    folder = tmp_path / "recs" / "m-crash-1"
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.mcu.record.crash_child", str(folder)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "started", child.stderr.read()
        started = time.monotonic()
        time.sleep(4.6)  # two closed 2 s segments and a part of the third
        os.kill(child.pid, signal.SIGKILL)
        recorded = time.monotonic() - started
        assert child.wait(5) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
        child.stderr.close()
    index = read_json(folder / INDEX)
    assert index["state"] == "recording" and len(index["segments"]) >= 1
    store = RecordingStore(tmp_path / "recs")
    assert store.recover_all() == ["m-crash-1"]  # what the service does at start
    info = store.get("m-crash-1")
    assert info["state"] == "recovered" and info["file"] == "recording.webm"
    video, pcm, duration = decode_all(folder / "recording.webm")
    # a crash loses at most the last cluster (~1 s) of the open segment (+ slack for a slow start)
    print(f"recorded {recorded:.2f} s, recovered {duration:.2f} s")
    assert recorded - 2.5 <= duration <= recorded + 0.3, (duration, recorded)
    assert abs(len(video) / 30 - duration) <= 0.5 and abs(pcm.size / 48000 - duration) <= 0.6
    assert_colour(video[-1], RED)
    assert abs(peak_hz(pcm) - 440) <= 5
