"""The meeting's shared transcodes: every source in a codec each subscriber accepts.

A subscriber that decodes the publisher's codec gets the publisher's packets forwarded untouched
(the SFU's fast path). One that does not is fed from a converted stream: the router asks
``TranscodePool.convert(source, codec)`` (``mcu.sfu.router.Router.convert``, injected where the
meeting is built) and gets the one stream of that source in that codec, shared by every subscriber
that needs it. So a source is decoded once, and encoded once per codec, whatever the number of
subscribers (``mcu.bridge.transcoder``: a worker thread per transcoded source).

The pool is a meeting extension (``mcu.meeting.contracts.MeetingExtension``): on the meeting's tick
it stops an encoder whose converted stream has fed no output for ``GRACE`` seconds (a subscriber
switching back and forth does not restart encoders), a source's transcode when it has no encoder
left or the source closed (freeing its thread), and everything on ``stop()``. PyAV loads with
the first transcode, not with the meeting.

A subscriber whose codec the node may not encode (the server's ``encode_codecs`` setting) gets no
video from a publisher of another codec: its output pauses. That is logged once per codec and
meeting, naming a publisher and the setting, and counted in the stats (``not_encodable``).

A node runs at most ``TranscodeBudget.limit`` transcoded sources over all its meetings (each costs
a thread, about 0.2 core and 40 MiB at 720p: loadtests/README.md, "Codecs"); past it a subscriber
of another codec gets no video from a further source, logged once per meeting (``over_budget``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mcu.api import VIDEO_CODECS
from mcu.sfu.stream import Stream

if TYPE_CHECKING:
    from mcu.bridge.transcoder import Transcoder

log = logging.getLogger("mcu.bridge.transcode")

GRACE = 5.0  # s an encoder outlives its last output


class TranscodeBudget:
    """Transcoded sources a node may run at once, over all its meetings (the limits setting
    ``transcodes_per_node``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self) -> bool:
        if self.used >= self.limit:
            return False
        self.used += 1
        return True

    def give_back(self) -> None:
        self.used = max(0, self.used - 1)


class TranscodePool:
    name = "transcode"  # its key in the meeting's stats
    remote_origin: str | None = None  # it serves the meeting's own sources

    def __init__(
        self,
        encode_codecs: Iterable[str] = VIDEO_CODECS,
        *,
        grace: float = GRACE,
        meeting_id: str = "",
        budget: TranscodeBudget | None = None,
    ) -> None:
        self.meeting_id = meeting_id  # for the logs
        self.budget = budget  # None: no limit
        self.over_budget = 0  # sources not transcoded: the node's budget was spent
        self.encode_codecs = tuple(c.upper() for c in encode_codecs if c.upper() in VIDEO_CODECS)
        self.grace = grace
        self.transcoders: dict[str, Transcoder] = {}  # by source stream id
        self._stopping: set[asyncio.Task[None]] = set()
        self.started = 0  # transcoders started since the pool was made
        self.stopped = False
        self.not_encodable: dict[str, int] = {}  # codec -> conversions refused by encode_codecs

    def convert(self, stream: Stream, codec: str) -> Stream | None:
        """The shared stream of ``stream`` in ``codec``; None when this node does not encode it,
        cannot decode the source, or the source is gone."""
        codec = codec.upper()
        if codec not in self.encode_codecs and stream.kind == "video":  # H.264 to H.264 too (its format)
            self._not_encodable(stream, codec)
            return None
        if self.stopped or stream.kind != "video" or stream.codec not in VIDEO_CODECS or stream.closed:
            return None
        xc = self.transcoders.get(stream.stream_id)
        if xc is not None and (xc.closed or xc.source is not stream):
            self._end(stream.stream_id)  # a stream of the same id that replaced the old one
            xc = None
        if xc is None:
            if self.budget is not None and not self.budget.take():
                self._over_budget(stream, codec)
                return None
            from mcu.bridge.transcoder import Transcoder  # PyAV loads with the first transcode

            xc = self.transcoders[stream.stream_id] = Transcoder(stream)
            self.started += 1
        target = xc.target(codec)
        target.idle_since = None
        return target.stream

    def _not_encodable(self, stream: Stream, codec: str) -> None:
        """A subscriber of ``codec`` cannot get ``stream``: said once per codec (route time, not per packet)."""
        seen = codec in self.not_encodable
        self.not_encodable[codec] = self.not_encodable.get(codec, 0) + 1
        if not seen:
            log.warning(
                "meeting %s: subscribers that decode only %s get no video from %s (%s) nor any other "
                "publisher of another codec: this node may not encode %s (setting encode_codecs = %s)",
                self.meeting_id or "?",
                codec,
                stream.endpoint_id,
                stream.codec,
                codec,
                ", ".join(self.encode_codecs) or "none",
            )

    def _over_budget(self, stream: Stream, codec: str) -> None:
        self.over_budget += 1
        if self.over_budget == 1:
            assert self.budget is not None
            log.warning(
                "meeting %s: %s (%s) is not transcoded to %s: this node runs %d transcodes already "
                "(limits.transcodes_per_node); its subscribers of %s get no video from it",
                self.meeting_id or "?",
                stream.endpoint_id,
                stream.codec,
                codec,
                self.budget.limit,
                codec,
            )

    # -- as a meeting extension ----------------------------------------------------------------

    def published(self) -> Iterable[Stream]:
        return ()  # converted streams feed outputs; the meeting's sources stay the publishers'

    def on_assign(self, sources: Any) -> None:
        pass  # the router asks for conversions while the meeting routes

    def forget(self, endpoint_id: str) -> None:
        pass  # its sources close (and are reaped on the next tick)

    def tick(self, now: float) -> None:
        self.reap(now)

    def reap(self, now: float) -> None:
        """Stop encoders idle for ``grace`` and transcodes with no encoder or no source left."""
        for sid, xc in list(self.transcoders.items()):
            if xc.source.closed:
                self._end(sid)
                continue
            for codec, target in list(xc.targets.items()):
                if target.stream.outputs():
                    target.idle_since = None
                elif target.idle_since is None:
                    target.idle_since = now
                elif now - target.idle_since >= self.grace:
                    xc.drop_target(codec)
            if not xc.targets:
                self._end(sid)

    def _end(self, sid: str) -> None:
        xc = self.transcoders.pop(sid, None)
        if xc is not None:
            if self.budget is not None:
                self.budget.give_back()
            xc.close()  # now: its converted streams close with it
            task = asyncio.get_running_loop().create_task(xc.stop())  # the thread's end, awaited
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def stop(self) -> None:
        """Idempotent: close every transcode and wait (bounded) for its thread."""
        self.stopped = True
        for sid in list(self.transcoders):
            self._end(sid)
        while self._stopping:
            await asyncio.gather(*list(self._stopping), return_exceptions=True)

    def stats(self) -> dict[str, Any]:
        return {
            "transcodes": [xc.stats() for xc in self.transcoders.values()],
            "started": self.started,
            "not_encodable": dict(self.not_encodable),
            "over_budget": self.over_budget,
        }
