"""The recordings on disk: one folder per recording under ``root`` (see ``recorder``), listing,
deletion, crash recovery and the retention sweep."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from mcu.record.recorder import INDEX, VN, recover
from mcu.record.util import read_json

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,150}$")


def _epoch(index: dict[str, Any], folder: Path) -> float:
    for key in ("started_at_utc", "started_at"):
        text = index.get(key)
        if text:
            try:
                return datetime.fromisoformat(text).timestamp()
            except ValueError:
                pass
    return folder.stat().st_mtime


class RecordingStore:
    def __init__(self, root: str | Path, retention_days: float = 30, clock: Callable[[], float] = time.time) -> None:
        if retention_days <= 0:
            raise ValueError("retention_days must be positive")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.retention_days = retention_days
        self._clock = clock

    def new_dir(self, meeting_id: str) -> Path:
        """A fresh folder named after the meeting and the start time (Asia/Ho_Chi_Minh)."""
        safe = re.sub(r"[^A-Za-z0-9_-]+", "_", meeting_id).strip("_")[:80] or "meeting"
        stamp = datetime.fromtimestamp(self._clock(), VN).strftime("%Y%m%d-%H%M%S")
        base, n = f"{safe}-{stamp}", 1
        path = self.root / base
        while path.exists():
            n += 1
            path = self.root / f"{base}-{n}"
        path.mkdir(parents=True)
        return path

    def _folder(self, rec_id: str) -> Path:
        if not ID_RE.match(rec_id or "") or ".." in rec_id:
            raise KeyError(rec_id)
        path = self.root / rec_id
        if not (path / INDEX).is_file():
            raise KeyError(rec_id)
        return path

    def get(self, rec_id: str) -> dict[str, Any]:
        """The index of one recording plus its size on disk; KeyError if unknown."""
        folder = self._folder(rec_id)
        index = read_json(folder / INDEX) or {}
        size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name != INDEX)
        started = _epoch(index, folder)
        return {
            "id": folder.name,
            "meeting_id": index.get("meeting_id"),
            "title": index.get("title"),
            "occurrence_id": index.get("occurrence_id"),
            "participants": index.get("participants", []),
            "started_at": index.get("started_at"),
            "stopped_at": index.get("stopped_at"),
            "duration_s": index.get("duration_s", 0),
            "size_bytes": size,
            "state": index.get("state", "unknown"),
            "file": index.get("file"),
            "expires_at": datetime.fromtimestamp(started + self.retention_days * 86400, VN).isoformat(
                timespec="seconds"
            ),
        }

    def list(self, meeting_id: str | None = None) -> list[dict[str, Any]]:
        out = []
        for folder in self.root.iterdir():
            if folder.is_dir() and (folder / INDEX).is_file():
                try:
                    rec = self.get(folder.name)
                except (KeyError, OSError):
                    continue
                if meeting_id is None or rec["meeting_id"] == meeting_id:
                    out.append(rec)
        out.sort(key=lambda r: r.get("started_at") or "", reverse=True)
        return out

    def file_of(self, rec_id: str) -> Path | None:
        """The final media file, or None while it is being recorded (or if empty)."""
        name = self.get(rec_id).get("file")
        path = self.root / rec_id / name if name else None
        return path if path is not None and path.is_file() else None

    def delete(self, rec_id: str) -> None:
        shutil.rmtree(self._folder(rec_id))

    def recover_all(self, active: Iterable[str] = ()) -> list[str]:
        """Finalise recordings left in state "recording" by a crash (not those in ``active``)."""
        done, active = [], set(active)
        for rec in self.list():
            if rec["state"] == "recording" and rec["id"] not in active:
                recover(self.root / rec["id"])
                done.append(rec["id"])
        return done

    def sweep(self, active: Iterable[str] = (), now: float | None = None) -> list[str]:
        """Delete recordings older than the retention period; returns their ids."""
        now = self._clock() if now is None else now
        limit = now - self.retention_days * 86400
        deleted, active = [], set(active)
        for folder in list(self.root.iterdir()):
            if not folder.is_dir() or folder.name in active or not (folder / INDEX).is_file():
                continue
            if _epoch(read_json(folder / INDEX) or {}, folder) < limit:
                shutil.rmtree(folder, ignore_errors=True)
                deleted.append(folder.name)
        return deleted
