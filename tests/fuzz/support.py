"""Fuzz layer plumbing: seeded, bounded drawing of inputs, the count of distinct inputs, and the
invariants every fuzzed input is held to on a real node.

Inputs are drawn with hypothesis (``derandomize=True``: the same inputs on every run, no example
database) into a list, then sent one by one from the async test: the server runs in the test's own
event loop, and hypothesis runs its tests synchronously. Failures print the input that broke.

Invariants (``Checker``):
* no 5xx and no error code ``internal``, on HTTP and WebSocket (503 ``unavailable``, which says
  what this node is not set up for, is the one designed 5xx);
* no traceback and no ERROR record in the log;
* a refused input (4xx, WS error) changes nothing stored: the store's durable tables (documents and
  logs, not TTL entries such as presence or failed-login counters, nor the occurrence states the
  scheduler writes as the clock passes) are the same before and after;
* afterwards the node still serves a meeting: an endpoint logs in, joins and gets an SDP answer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterator

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.support.harness import WsClient
from tests.support.media_clients import offer_sdp

# Per-area budgets: the whole layer stays under 90 s on two loaded cores. GIAOBAN_FUZZ_SCALE
# multiplies them for a longer local run (e.g. 10), never in CI.
SCALE = float(os.environ.get("GIAOBAN_FUZZ_SCALE", "1"))
# written by the scheduler as the clock passes (occurrences opening and closing), whatever a client sends
CLOCK_DRIVEN = ("occurrences", "open-occurrences")
INPUTS: dict[str, set[str]] = defaultdict(set)  # area -> digests of distinct inputs sent


def budget(n: int) -> int:
    return max(1, int(n * SCALE))


def draw(strategy: st.SearchStrategy, n: int) -> list[Any]:
    """``n`` examples of ``strategy``, the same ones on every run (hypothesis, derandomized)."""
    out: list[Any] = []

    @settings(
        max_examples=budget(n),
        derandomize=True,
        database=None,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


def record(area: str, value: Any) -> None:
    """Count ``value`` as one input of ``area`` (duplicates count once)."""
    text = value if isinstance(value, (str, bytes)) else repr(value)
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    INPUTS[area].add(hashlib.sha256(data).hexdigest())


def report(path: Path) -> dict[str, int]:
    counts = {area: len(digests) for area, digests in sorted(INPUTS.items())}
    counts["total"] = sum(counts.values())
    path.write_text(json.dumps(counts, indent=2))
    return counts


class Failures:
    """Collects every input that broke an invariant, so one run reports them all (the first few
    with their exception), instead of stopping at the first."""

    def __init__(self) -> None:
        self.found: list[tuple[Any, BaseException]] = []

    def __enter__(self) -> "Failures":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is None and self.found:
            lines = [f"{type(e).__name__}: {str(e)[:300]} <- {value!r:.300}" for value, e in self.found[:8]]
            raise AssertionError(f"{len(self.found)} inputs broke an invariant:\n" + "\n".join(lines))

    @contextlib.contextmanager
    def on(self, value: Any) -> Iterator[None]:
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - every failure is reported with its input
            self.found.append((value, exc))


class Checker:
    """Holds a node to the invariants; ``caplog`` collects every log record of the test."""

    def __init__(self, node: Any, caplog: Any) -> None:
        self.node, self.caplog = node, caplog
        self.db = node.ctx.settings.store.removeprefix("sqlite:")
        caplog.set_level(logging.INFO)
        self.seen = 0  # log records already checked

    def durable(self) -> tuple:
        """Documents and log lengths: what a refused input must not change (read-only, own connection)."""
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True) as conn:
            docs = [
                d
                for d in conn.execute("SELECT coll, key, value FROM docs ORDER BY coll, key")
                if d[0] not in CLOCK_DRIVEN
            ]
            logs = conn.execute("SELECT log, COUNT(*) FROM logs GROUP BY log ORDER BY log").fetchall()
        return docs, logs

    def http(self, what: Any, status: int, body: Any, before: tuple) -> None:
        assert status < 500 or _designed_503(status, body), f"{status} for {what!r}: {body!r}"
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            assert body["error"].get("code") != "internal", f"internal for {what!r}: {body!r}"
        if 400 <= status < 500:
            self.unchanged(before, what, f"{status} {body!r:.200}")
        self.log_clean(what)

    def unchanged(self, before: tuple, what: Any, answer: str) -> None:
        after = self.durable()
        if after != before:
            docs = sorted({d[:2] for d in set(before[0]) ^ set(after[0])})
            logs = sorted(set(before[1]) ^ set(after[1]))
            raise AssertionError(f"a refused input changed the store ({docs[:4]}, {logs[:4]}): {what!r} -> {answer}")

    def ws_error(self, what: Any, msg: dict) -> None:
        assert msg.get("code") != "internal", f"internal for {what!r}: {msg!r}"

    def log_clean(self, what: Any = None) -> None:
        """No ERROR record and no traceback since the last check (so each is tied to its input)."""
        records, self.seen = self.caplog.records[self.seen :], len(self.caplog.records)
        bad = [r for r in records if r.levelno >= logging.ERROR or r.exc_info]
        assert not bad, f"logged after {what!r}: {[(r.name, r.getMessage(), _last_line(r)) for r in bad][:3]}"


def _last_line(record: logging.LogRecord) -> str:
    if not record.exc_info:
        return ""
    return f"{record.exc_info[0].__name__}: {record.exc_info[1]}"


def _designed_503(status: int, body: Any) -> bool:
    """503 'unavailable' is a designed answer about this node's set-up (media: none, no cluster,
    no media running for the meeting yet), not a fault: it is the one 5xx allowed."""
    return status == 503 and isinstance(body, dict) and body.get("error", {}).get("code") == "unavailable"


async def serves_a_meeting(node: Any, endpoint: str = "hg-ubnd") -> None:
    """The last invariant: a fresh meeting, a real endpoint login, join and SDP offer -> answer."""
    meeting = await node.schedule(endpoint, ["tier:district@hg-ubnd"], minutes_from_now=1)
    node.secrets.pop(endpoint, None)  # new credentials: the fuzz may have rotated them
    ws = await WsClient.connect(node, await node.endpoint_token(endpoint))
    pc, sdp = await offer_sdp()
    try:
        await ws.expect("welcome")
        await ws.send("join", meeting_id=meeting["id"])
        joined = await ws.expect("joined")
        assert joined["role"] == "chair" and joined["media"] is True, joined
        await ws.send("offer", sdp=sdp)
        answer = await ws.expect("answer", timeout=15)
        assert answer["sdp"].startswith("v=0"), answer
    finally:
        await pc.close()
        await ws.close()
