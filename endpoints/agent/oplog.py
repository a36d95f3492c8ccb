"""The operator log: what happened, for the commune operator, Vietnamese first.

Every line reads like ``2026-11-23 07:50:01 INFO  Đã vào cuộc họp Giao ban tuần (joined) meeting=m-1``
and goes to ``<data_dir>/agent.log`` (rotated) and, through the ``giaoban.agent`` logger, to
stderr (journald when run as a service). Extras (meeting id, delays) are key=value at the end,
like ``signaling.logs``. The last events and errors are kept for ``GET /status``.
"""

from __future__ import annotations

import logging
import logging.handlers
import time
from collections import deque
from pathlib import Path
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class OperatorFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_"))
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        text = f"{when} {record.levelname:<7} {record.getMessage()} {extra}".rstrip()
        return text + ("\n" + self.formatException(record.exc_info) if record.exc_info else "")


class OpLog:
    """One agent's operator log (several agents in one process keep separate files)."""

    def __init__(self, data_dir: str | Path, endpoint_id: str, level: str = "info") -> None:
        self.path = Path(data_dir) / "agent.log"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.logger = logging.getLogger(f"giaoban.agent.{endpoint_id}")
        self.logger.setLevel(level.upper())
        self._handler = logging.handlers.RotatingFileHandler(
            self.path, maxBytes=2_000_000, backupCount=5, encoding="utf-8"
        )
        self._handler.setFormatter(OperatorFormatter())
        self.logger.addHandler(self._handler)
        self.events: deque[dict[str, Any]] = deque(maxlen=50)
        self.errors: deque[dict[str, Any]] = deque(maxlen=10)

    def _emit(self, level: int, vi: str, en: str, extra: dict[str, Any]) -> None:
        text = f"{vi} ({en})" if en else vi
        self.logger.log(level, text, extra={k: v for k, v in extra.items() if v is not None})
        item = {"at": round(time.time(), 3), "level": logging.getLevelName(level).lower(), "text": text, **extra}
        self.events.append(item)
        if level >= logging.WARNING:
            self.errors.append(item)

    def info(self, vi: str, en: str = "", **extra: Any) -> None:
        self._emit(logging.INFO, vi, en, extra)

    def warning(self, vi: str, en: str = "", **extra: Any) -> None:
        self._emit(logging.WARNING, vi, en, extra)

    def error(self, vi: str, en: str = "", **extra: Any) -> None:
        self._emit(logging.ERROR, vi, en, extra)

    def debug(self, text: str, **extra: Any) -> None:
        self.logger.debug(text, extra=extra)

    def close(self) -> None:
        self.logger.removeHandler(self._handler)
        self._handler.close()


def setup_stderr(level: str = "info") -> None:
    """For the command line: operator lines on stderr too (journald keeps them)."""
    handler = logging.StreamHandler()
    handler.setFormatter(OperatorFormatter())
    root = logging.getLogger("giaoban.agent")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aioice", "aiortc", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
